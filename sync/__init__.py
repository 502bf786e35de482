"""Push local state outward: Postgres replica, KV pointers, object storage; offline-first."""
