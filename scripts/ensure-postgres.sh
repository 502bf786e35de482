#!/usr/bin/env bash
# Find the PostgreSQL server the integration tests use, or start the local cluster; never skip.
set -euo pipefail
dsn="${PREVIEWD_TEST_PG_DSN:-postgresql://postgres@127.0.0.1:5432/test}"
ready() { pg_isready -q -d "$dsn" 2>/dev/null || pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if ready; then exit 0; fi
if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
  for v in $(ls /etc/postgresql); do
    pg_ctlcluster --skip-systemctl-redirect "$v" main start || true
  done
fi
for _ in $(seq 1 30); do ready && exit 0; sleep 1; done
echo "PostgreSQL is not reachable at $dsn; start it or set PREVIEWD_TEST_PG_DSN" >&2
exit 1
