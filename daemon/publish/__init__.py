"""After a build: the one go-live path, artifacts, deploy confirmation, the live alias, screenshots and diffs."""
