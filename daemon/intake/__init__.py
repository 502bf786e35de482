"""Taking work in: request bodies validated once, build and rollback requests admitted and queued."""
