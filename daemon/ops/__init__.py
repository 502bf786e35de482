"""Running a droplet: nightly cleanup, metrics, alerts, replication views and every scheduled job."""
