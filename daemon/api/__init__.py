"""The HTTP surface: the app factory, guards, and routes grouped by resource, thin over the domain."""
