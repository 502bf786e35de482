"""The build steps in order: the pipeline that runs them, and each step (sources, scripts, audit, checks, reclaim)."""
