"""A generated project as the daemon handles it: its files, package.json policy, toolchain, views, log and output."""
