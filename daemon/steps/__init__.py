"""The build steps in order: the pipeline that runs them (pipeline.py), what they share (context.py), and one module
per step (prepare, generate, write, install, audit, sources, bundle, export, artifact, deploy, finish) with the
policies they apply (scripts, checks, checking, sandboxed, reclaim)."""
