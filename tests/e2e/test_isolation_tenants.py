"""Attacks between tenants through the real daemon and real pnpm: reading and changing another user's project,
planting a `.bin` shim in it, writing through node_modules' hard links into the shared store, poisoning the caches."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.isolation_support import (
    VICTIM_PAGE,
    build,
    page,
    start_daemon,
    tree_digest,
    victim_still_fine,
)
from tests.support.live import LiveDaemon

pytestmark = pytest.mark.pnpm

VICTIM = "@DATA@/projects/alice/site"
IS_NUMBER = "node_modules/.pnpm/is-number@7.0.0/node_modules/is-number/index.js"
# Each attack writes what it managed into its own page, one `name=yes|no` per line.
ATTACKS = {
    "read-write": {"build": (
        "mkdir -p dist && {"
        f" cat {VICTIM}/work/index.html > stolen.txt 2>/dev/null && echo read=yes || echo read=no;"
        f" (echo '<h1>pwned</h1>' > {VICTIM}/work/index.html) 2>/dev/null && echo write=yes || echo write=no;"
        f" (echo junk > {VICTIM}/repo.git/HEAD) 2>/dev/null && echo repo=yes || echo repo=no;"
        " ls @DATA@/projects 2>/dev/null | grep -q alice && echo list=yes || echo list=no;"
        " } > dist/index.html")},
    "shim": {"build": (
        "mkdir -p dist && {"
        f" (mkdir -p {VICTIM}/work/node_modules/.bin &&"
        f"  printf '#!/bin/sh\\n/bin/mkdir \"$@\"; echo \"<h1>pwned</h1>\" > index.html\\n'"
        f"  > {VICTIM}/work/node_modules/.bin/mkdir && chmod +x {VICTIM}/work/node_modules/.bin/mkdir) 2>/dev/null"
        " && echo shim=yes || echo shim=no;"
        " (printf '#!/bin/sh\\necho hi\\n' > node_modules/.bin/mkdir) 2>/dev/null && echo own=yes || echo own=no;"
        " } > dist/index.html")},
    "store": {"deps": {"is-number": "7.0.0"}, "build": (
        "mkdir -p dist && {"
        f" (echo 'module.exports = () => \"pwned\"' >> {IS_NUMBER}) 2>/dev/null && echo append=yes || echo append=no;"
        " (find @DATA@/pnpm-store -type f -name '*-index.json' -exec sh -c 'echo junk >> \"$1\"' _ {} \\;"
        "  -print 2>/dev/null | grep -q . ) && echo store=yes || echo store=no;"
        " } > dist/index.html")},
    "cache": {"build": (
        "mkdir -p dist && {"
        " for d in @DATA@/cache @DATA@/cache/audit @DATA@/audit-cache @DATA@/pnpm-store; do"
        "  (mkdir -p $d && echo poisoned > $d/poison) 2>/dev/null && echo \"poison=yes\";"
        " done;"
        " find @DATA@/cache @DATA@/audit-cache -type f -exec sh -c 'echo junk >> \"$1\"' _ {} \\; 2>/dev/null;"
        " echo done; } > dist/index.html")},
    "dep": {"deps": {"is-number": "7.0.0"}, "build": (
        "mkdir -p dist && node -e 'console.log(String(require(\"is-number\")(5)))' > dist/index.html")},
}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDaemon]:
    tmp = tmp_path_factory.mktemp("tenants")
    d = start_daemon(tmp, ATTACKS, store_in_data_dir=True)
    try:
        first = build(d, "alice", "site", "victim")
        assert page(d, first) == VICTIM_PAGE
        yield d
    finally:
        d.stop()


def _lines(text: str) -> list[str]:
    return text.split()


def test_cross_project_read_and_write_is_impossible(live: LiveDaemon) -> None:
    data = live.tmp / "data"
    victim = data / "projects" / "alice" / "site"
    head = (victim / "repo.git" / "HEAD").read_bytes()
    body = build(live, "mallory", "rw", "read-write")
    assert _lines(page(live, body)) == ["read=no", "write=no", "repo=no", "list=no"]
    assert (victim / "work" / "index.html").read_text() == VICTIM_PAGE
    assert (victim / "repo.git" / "HEAD").read_bytes() == head
    victim_still_fine(live)


def test_planted_bin_shim_never_reaches_another_project(live: LiveDaemon) -> None:
    victim_bin = live.tmp / "data" / "projects" / "alice" / "site" / "work" / "node_modules" / ".bin"
    body = build(live, "mallory", "shim", "shim")
    # Not in alice's project, and not even in its own node_modules (read-only to generated code).
    assert _lines(page(live, body)) == ["shim=no", "own=no"]
    assert not (victim_bin / "mkdir").exists()
    victim_still_fine(live)


def _store_file(data: Path, inode: int) -> Path | None:
    for dirpath, _dirs, names in os.walk(data / "pnpm-store"):
        for name in names:
            p = Path(dirpath) / name
            if os.lstat(p).st_ino == inode:
                return p
    return None


def test_store_poisoning_through_hard_links_is_impossible(live: LiveDaemon) -> None:
    data = live.tmp / "data"
    body = build(live, "alice", "deps", "dep")
    assert page(live, body).strip() == "true"
    victim_copy = data / "projects" / "alice" / "deps" / "work" / IS_NUMBER
    st = os.stat(victim_copy)
    store_copy = _store_file(data, st.st_ino)
    # The install still hard-links from the shared store: the same inode, in the store and in the project.
    assert store_copy is not None and st.st_nlink >= 2, (st.st_nlink, store_copy)
    original = hashlib.sha256(victim_copy.read_bytes()).hexdigest()
    store_before = tree_digest(data / "pnpm-store")

    attack = build(live, "mallory", "store", "store")
    assert _lines(page(live, attack)) == ["append=no", "store=no"]
    assert hashlib.sha256(victim_copy.read_bytes()).hexdigest() == original
    assert hashlib.sha256(store_copy.read_bytes()).hexdigest() == original
    assert tree_digest(data / "pnpm-store") == store_before
    # A project installed after the attack gets the same, unchanged inode.
    late = build(live, "bob", "late", "dep")
    assert page(live, late).strip() == "true"
    late_copy = data / "projects" / "bob" / "late" / "work" / IS_NUMBER
    assert hashlib.sha256(late_copy.read_bytes()).hexdigest() == original
    assert os.stat(late_copy).st_ino == st.st_ino
    victim_still_fine(live)


def test_cache_poisoning_is_impossible(live: LiveDaemon) -> None:
    data = live.tmp / "data"
    build(live, "carol", "deps", "dep")  # the shared registry metadata cache holds entries
    caches = {name: tree_digest(data / name) for name in ("cache", "audit-cache", "pnpm-store")
              if (data / name).is_dir()}
    body = build(live, "mallory", "cachebox", "cache")  # `cache` itself is a reserved id
    assert _lines(page(live, body)) == ["done"]
    for name, before in caches.items():
        assert tree_digest(data / name) == before, name
    assert not any(p.name == "poison" for p in data.rglob("poison"))
    victim_still_fine(live)
