"""Loopback servers that speak real protocols for tests (Cloudflare KV REST, ...)."""
