"""previewd: the build daemon: API, queue, pipeline, versions, scheduler and daemonctl."""
