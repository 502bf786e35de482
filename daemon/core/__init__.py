"""The domain's ground floor: rows, versions, ids, errors, the generator contract, rate caps, config and paths.

Nothing here imports from the rooms above it (`daemon.project` .. `daemon.intake`, ops, api, ui, cli).
"""
