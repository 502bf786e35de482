"""The live alias label (issue 23): one per user and project, a DNS label, stable for plain lower-case ids."""

from __future__ import annotations

import itertools
from pathlib import Path
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.core.db import Project, connect
from daemon.core.layout import Layout
from daemon.deployers.local import LocalDeployer
from daemon.deployers.previewnames import ALIAS_SEP, DEPLOYMENT_ID_RE, alias_ids, alias_label
from daemon.fleet.single import SingleDroplet
from daemon.publish.previewfetch import PreviewResolver

IDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-", min_size=1, max_size=64)
TRICKY = ["alice", "Alice", "alice_", "_alice", "alice-", "a-lice", "a_lice", "a--lice", "ALICE", "x-alice", "xalice",
          "xalice-1", "x", "-", "_", "--", "0", "a-0", "a" * 64, "A" * 64, "a" * 63 + "_", "site--alice", "p-u", "u--x"]


def test_alice_Alice_and_alice_underscore_get_three_aliases() -> None:
    labels = {alias_label(user, "site") for user in ("alice", "Alice", "alice_")}
    assert len(labels) == 3, labels


def test_plain_lowercase_ids_keep_their_label() -> None:
    assert alias_label("u", "p") == "p--u"
    assert alias_label("alice", "my-site") == "my-site--alice"


def test_tricky_pairs_never_share_a_label_and_each_is_a_dns_label() -> None:
    seen: dict[str, tuple[str, str]] = {}
    for user, project in itertools.product(TRICKY, repeat=2):
        label = alias_label(user, project)
        assert DEPLOYMENT_ID_RE.match(label) and ALIAS_SEP in label, label
        assert seen.setdefault(label, (user, project)) == (user, project), (label, seen[label], (user, project))
        assert alias_ids(label) in (None, (user, project))


@settings(max_examples=400, deadline=None)
@given(IDS, IDS, IDS, IDS)
def test_the_label_is_injective_and_decodes(u1: str, p1: str, u2: str, p2: str) -> None:
    a, b = alias_label(u1, p1), alias_label(u2, p2)
    assert DEPLOYMENT_ID_RE.match(a) and len(a) <= 63
    if (u1, p1) != (u2, p2):
        assert a != b
    ids = alias_ids(a)
    assert ids is None or ids == (u1, p1)
    if ids is None:  # only a label too long to spell the ids out is hashed
        assert a.split(ALIAS_SEP)[-1].startswith("h") and len(a.split(ALIAS_SEP)[-1]) == 17


def test_the_resolver_finds_each_users_own_project(tmp_path: Path) -> None:
    layout = Layout.of(tmp_path)
    layout.create()
    connect(tmp_path)
    users = ["alice", "Alice", "alice_", "b" * 64]
    for user in users:
        Project.create(user_id=user, project_id="site")
    deployer = LocalDeployer(layout.previews)
    rt = SimpleNamespace(layout=layout, deployer=deployer, remote_objects=None, replica=None,
                         fleet=SingleDroplet(deployer))
    resolver = PreviewResolver(rt, cap_bytes=1 << 20)  # type: ignore[arg-type]
    for user in users:
        assert resolver._project_of_alias(alias_label(user, "site")) == (user, "site")
    assert resolver._project_of_alias(alias_label("carol", "site")) is None
