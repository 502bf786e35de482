"""The domain's ground floor: rows, versions, ids, errors, the generator contract, rate caps, config and paths.

Nothing here imports from `daemon.build`, `daemon.ops`, `daemon.api` or `daemon.cli`.
"""
