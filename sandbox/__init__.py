"""Run one command under hard limits on its whole process tree; knows nothing of builds."""
