"""KV backends (local SQLite, Cloudflare Workers KV) and the seed's pointer helpers."""

from sync.kv.base import KV, decode_pointer, encode_pointer, pointer_key, validate_key
from sync.kv.cloudflare import CloudflareKV
from sync.kv.local import LocalKV

__all__ = ["KV", "CloudflareKV", "LocalKV", "decode_pointer", "encode_pointer", "pointer_key", "validate_key"]
