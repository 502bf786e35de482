"""Turning a request into a live preview: the pipeline, the one go-live path, rollback, deploy watch, the queue."""
