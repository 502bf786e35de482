"""Deployment backends behind one Protocol: local (served by the daemon) and cloudflare (Pages)."""
