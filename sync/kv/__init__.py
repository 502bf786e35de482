"""The KV seam, its local SQLite backend and the seed's pointer helpers (Workers KV: sync/cloudflare/kv.py)."""

from sync.kv.base import KV, decode_pointer, encode_pointer, pointer_key, validate_key
from sync.kv.local import LocalKV

__all__ = ["KV", "LocalKV", "decode_pointer", "encode_pointer", "pointer_key", "validate_key"]
