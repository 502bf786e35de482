"""Pure parts of the daemon: signatures, ids, framework detection, audit parsing, zip of the output."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest

from daemon.build import frameworks, toolchain
from daemon.build.pipeline import _sanitize_package_json, zip_output
from daemon.core import ids
from daemon.core import signing as security
from daemon.core.errors import Unauthorized


def test_signature_roundtrip_and_prefix() -> None:
    sig = security.sign("k", b"{}")
    security.verify("k", b"{}", sig)
    security.verify("k", b"{}", "sha256=" + sig)
    security.verify("k", b"{}", "SHA256=" + sig.upper())
    with pytest.raises(Unauthorized):
        security.verify("k", b"{} ", sig)
    with pytest.raises(Unauthorized):
        security.verify("k", b"{}", "")


def test_timestamped_signature_and_skew() -> None:
    sig = security.sign("k", b"x", "1000")
    security.verify("k", b"x", sig, "1000", now=1200)
    with pytest.raises(Unauthorized, match="5 minutes"):
        security.verify("k", b"x", sig, "1000", now=1400)
    with pytest.raises(Unauthorized, match="unix seconds"):
        security.verify("k", b"x", sig, "yesterday", now=1000)


def test_ids() -> None:
    vid = ids.new_version_id()
    assert ids.valid_version_id(vid) and len(vid) == 26
    for good in ("a", "A-b_9", "x" * 64):
        assert ids.valid_id(good)
    for bad in ("", "x" * 65, "../a", "a/b", "a b", "é", None, 5, "a\n"):
        assert not ids.valid_id(bad)


@pytest.mark.parametrize(("deps", "made", "framework", "out"), [
    ({"react": "19", "vite": "6"}, ["dist/index.html"], "react", "dist"),
    ({"next": "15"}, ["out/index.html"], "nextjs", "out"),
    ({"@sveltejs/kit": "2"}, [".svelte-kit/cloudflare/index.html"], "sveltekit", ".svelte-kit/cloudflare"),
    ({"vue": "3"}, ["dist/index.html"], "vue", "dist"),
    ({"react": "19"}, ["build/index.html"], "react", "build"),
    ({}, ["out/index.html"], None, "out"),
])
def test_framework_detection_picks_output_dir(tmp_path: Path, deps: dict[str, str], made: list[str],
                                              framework: str | None, out: str) -> None:
    (tmp_path / "package.json").write_text(json.dumps({"dependencies": deps}))
    for rel in made:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("<html></html>")
    assert frameworks.find_output(tmp_path) == (framework, out)


def test_no_output_found(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text(json.dumps({"dependencies": {"react": "19"}}))
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "favicon.svg").write_text("<svg/>")
    assert frameworks.find_output(tmp_path) == ("react", None)


def test_audit_outcomes() -> None:
    unavailable = '{"error": {"code": "ERR_PNPM_AUDIT_BAD_RESPONSE", "message": "responded with 405"}}'
    assert toolchain.parse_audit(1, unavailable).status == "unavailable"
    assert toolchain.parse_audit(1, "").status == "unavailable"
    passed = json.dumps({"advisories": {}, "metadata": {"vulnerabilities": {"low": 2, "critical": 0}}})
    assert toolchain.parse_audit(0, passed).status == "passed"
    critical = json.dumps({"advisories": {"1": {}}, "metadata": {"vulnerabilities": {"critical": 3}}})
    out = toolchain.parse_audit(1, critical)
    assert out.status == "critical" and out.critical == 3


def test_workspace_yaml_allow_list() -> None:
    text = toolchain.workspace_yaml(["esbuild", "@tailwindcss/oxide"])
    assert 'onlyBuiltDependencies:\n  - "esbuild"\n  - "@tailwindcss/oxide"\n' in text
    assert "onlyBuiltDependencies: []" in toolchain.workspace_yaml([])


def test_generated_pnpm_settings_are_dropped() -> None:
    class Log:
        lines: list[str] = []

        def step(self, s: str) -> None:
            self.lines.append(s)

    pkg = {"name": "x", "pnpm": {"onlyBuiltDependencies": ["evil-postinstall"]}}
    out = _sanitize_package_json({"package.json": json.dumps(pkg)}, Log())  # type: ignore[arg-type]
    assert "pnpm" not in json.loads(out["package.json"])


def test_zip_output_skips_links_and_git(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    (out / "assets").mkdir(parents=True)
    (out / "index.html").write_text("hi")
    (out / "assets" / "a.js").write_text("js")
    (out / ".git").mkdir()
    (out / ".git" / "config").write_text("secret")
    os.symlink("/etc/passwd", out / "passwd")
    z = tmp_path / "a.zip"
    zip_output(out, z)
    assert sorted(zipfile.ZipFile(z).namelist()) == ["assets/a.js", "index.html"]
