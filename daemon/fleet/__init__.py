"""One droplet of a fleet: leases and catch-up before a project write, restore from packs."""
