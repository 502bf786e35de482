"""Command lines: `previewd` (serve, doctor, config), `daemonctl` and the signing HTTP client they share."""
