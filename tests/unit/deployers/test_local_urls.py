"""Pure rules of the local deployer and the preview server: ids, URLs, hosts, content types, cache rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.api.previews import content_type_for, host_label, is_hashed_asset
from daemon.deployers.base import DeployError
from daemon.deployers.local import LocalDeployer
from daemon.deployers.previewnames import DEPLOYMENT_ID_RE, deployment_id_for, preview_url

ULID = "01JDQ8Z5V7K3M9QX2R4T6W8Y0A"


def test_deployment_id_is_a_lowercase_dns_label_holding_the_version() -> None:
    dep = deployment_id_for("My_Project", ULID)
    assert dep == "my-project-" + ULID.lower()
    assert DEPLOYMENT_ID_RE.match(dep)


def test_deployment_ids_differ_per_version() -> None:
    assert deployment_id_for("p", ULID) != deployment_id_for("p", "01JDQ8Z5V7K3M9QX2R4T6W8Y0B")


def test_long_project_ids_are_cut_to_fit_63_chars() -> None:
    dep = deployment_id_for("x" * 64, ULID)
    assert len(dep) <= 63
    assert dep.endswith("-" + ULID.lower())
    assert DEPLOYMENT_ID_RE.match(dep)


def test_project_id_of_only_symbols_leaves_the_version_alone() -> None:
    assert deployment_id_for("___", ULID) == ULID.lower()


@pytest.mark.parametrize("version", ["", "---", "v" * 41])
def test_unusable_version_ids_are_refused(version: str) -> None:
    with pytest.raises(DeployError):
        deployment_id_for("p", version)


def test_localhost_urls_carry_the_label_and_port(tmp_path: Path) -> None:
    deployer = LocalDeployer(tmp_path, preview_domain="localhost", port=8080)
    assert deployer.url_for("p-abc") == "http://p-abc.localhost:8080/"
    assert preview_url("p-abc", "preview.example.com", 443, "https") == "https://p-abc.preview.example.com/"
    assert preview_url("p-abc", "localhost", 80) == "http://p-abc.localhost/"
    assert preview_url("p-abc", "localhost", 9000, "https") == "https://p-abc.localhost:9000/"


@pytest.mark.parametrize(
    ("host", "label"),
    [
        ("abc-123.localhost", "abc-123"),
        ("abc-123.localhost:8080", "abc-123"),
        ("ABC-123.LocalHost:8080", "abc-123"),
        ("abc-123.localhost.", "abc-123"),
        ("localhost:8080", None),
        ("127.0.0.1:8080", None),
        ("a.b.localhost", None),
        ("-abc.localhost", None),
        ("abc-.localhost", None),
        ("abc_1.localhost", None),
        ("abc.localhost:80x", None),
        ("abc.localhostx", None),
        ("[::1]:8080", None),
        (".localhost", None),
    ],
)
def test_host_label(host: str, label: str | None) -> None:
    assert host_label(host, "localhost") == label


def test_host_label_with_a_dotted_domain() -> None:
    assert host_label("abc.preview.example.com:443", "preview.example.com") == "abc"
    assert host_label("abc.example.com", "preview.example.com") is None


@pytest.mark.parametrize(
    ("name", "ctype"),
    [
        ("index.html", "text/html; charset=utf-8"),
        ("a.js", "text/javascript; charset=utf-8"),
        ("a.mjs", "text/javascript; charset=utf-8"),
        ("a.css", "text/css; charset=utf-8"),
        ("a.svg", "image/svg+xml"),
        ("a.wasm", "application/wasm"),
        ("a.json", "application/json"),
        ("site.webmanifest", "application/manifest+json"),
        ("A.PNG", "image/png"),
        ("font.woff2", "font/woff2"),
        ("no-extension", "application/octet-stream"),
    ],
)
def test_content_types(name: str, ctype: str) -> None:
    assert content_type_for(name) == ctype


@pytest.mark.parametrize(
    ("path", "hashed"),
    [
        ("assets/index-abc123.js", True),
        ("assets/index-BfK3tX9a.css", True),
        ("assets/logo-D_x-9aQ2.svg", True),
        ("index.html", False),
        ("favicon-abc123.svg", False),
        ("assets/logo.svg", False),
        ("assets/a-b.js", False),
    ],
)
def test_hashed_asset_rule(path: str, hashed: bool) -> None:
    assert is_hashed_asset(path) is hashed
