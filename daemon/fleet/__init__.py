"""The droplets a daemon runs with: the Fleet seam, one droplet alone or one of a fleet (leases, catch-up, drain),
recovery packs, and one project checked across the shared stores."""
