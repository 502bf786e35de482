"""The Cloudflare room's shared half: one REST client (`http`) and the Workers KV backend (`kv`).

The Pages deployer (daemon/deployers/cloudflare/) uses the same client; `sync` never imports `daemon`.
"""
