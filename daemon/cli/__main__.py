"""`python -m daemon.cli` runs `previewd`."""

from daemon.cli.previewd import main

raise SystemExit(main())
