"""Seams hide their backend (issue 25): every backend declares each capability of its Protocol, and the capabilities
say exactly what the name checks they replaced said (behaviour unchanged)."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.deployers.base import Deployer
from daemon.deployers.cloudflare.deployer import CloudflareDeployer
from daemon.deployers.local import LocalDeployer
from daemon.deployers.sanitize import SanitizingDeployer
from sync.cloudflare.http import parse_retry_after
from sync.cloudflare.kv import CloudflareKV
from sync.kv import KV, LocalKV
from tests.unit.pipeline.fakes import MemoryDeployer


def _capabilities(protocol: type) -> list[str]:
    return sorted(name for name, kind in protocol.__annotations__.items() if kind == "bool")


def _deployers(tmp_path: Path) -> list[Deployer]:
    return [LocalDeployer(tmp_path / "previews"), CloudflareDeployer("acc", "token", "pages-project"),
            MemoryDeployer()]


def test_the_protocols_declare_their_capabilities() -> None:
    assert _capabilities(Deployer) == ["counts_pages_quota", "records_deployment_id", "serves_previews",
                                       "supports_alias"]
    assert _capabilities(KV) == ["answers_locally"]


def test_every_deployer_declares_every_capability_as_the_name_checks_did(tmp_path: Path) -> None:
    for dep in _deployers(tmp_path):
        for cap in _capabilities(Deployer):
            assert isinstance(getattr(dep, cap), bool), (dep.name, cap)
        # the branches these replaced: name == "local", name == "cloudflare", name != "local"
        assert dep.serves_previews == (dep.name == "local"), dep.name
        assert dep.supports_alias == (dep.name == "cloudflare"), dep.name
        assert dep.counts_pages_quota == (dep.name == "cloudflare"), dep.name
        assert dep.records_deployment_id == (dep.name != "local"), dep.name
        if not dep.supports_alias:
            assert dep.alias_url("u1", "p1") is None


def test_the_sanitising_wrapper_passes_every_capability_through(tmp_path: Path) -> None:
    for dep in _deployers(tmp_path):
        wrapped = SanitizingDeployer(dep, tmp_path / "scratch")
        assert [getattr(wrapped, c) for c in _capabilities(Deployer)] == [getattr(dep, c)
                                                                         for c in _capabilities(Deployer)]


def test_kv_backends_declare_whether_they_answer_locally(tmp_path: Path) -> None:
    local = LocalKV(tmp_path / "kv.db")
    remote = CloudflareKV("acc", "ns", "token", base_url="http://127.0.0.1:9")
    try:
        assert local.answers_locally is True and remote.answers_locally is False
        local.put("u:p", b"v1")
        assert local.get_nowait("u:p") == b"v1"
        with pytest.raises(BlockingIOError):  # the event loop's fast path must never wait on the network
            remote.get_nowait("u:p")
    finally:
        local.close()
        remote.close()


def test_one_retry_after_parser_with_the_callers_default() -> None:
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after(None, default=300.0) == 300.0
    assert parse_retry_after(" 7 ") == 7.0 and parse_retry_after("-1") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412460.0) == 20.0
