"""Pure parts of the daemon: signatures, ids, framework detection, audit parsing, zip of the output."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest

from daemon.core import ids
from daemon.core import signing as security
from daemon.core.errors import Unauthorized
from daemon.project import frameworks, toolchain
from daemon.project.packagejson import sanitize as _sanitize_package_json
from daemon.publish.artifacts import zip_output


def test_body_only_signature_roundtrip_and_prefix() -> None:
    body = b'{"prompt": "x"}'
    sig = security.sign("k", body)
    for form in (sig, "sha256=" + sig, "SHA256=" + sig.upper()):
        assert security.verify_request("k", "POST", "/generate", body, form, None, body_only_ok=True).form == \
            "body-only"
    with pytest.raises(Unauthorized, match="does not match"):
        security.verify_request("k", "POST", "/generate", body + b" ", sig, None, body_only_ok=True)
    with pytest.raises(Unauthorized, match="missing x-sheen-signature"):
        security.verify_request("k", "POST", "/generate", body, "", None, body_only_ok=True)
    with pytest.raises(Unauthorized, match="x-sheen-timestamp"):  # where the route does not allow it
        security.verify_request("k", "POST", "/generate", body, sig, None, body_only_ok=False)


def test_v2_signature_covers_method_target_timestamp_body_and_skew() -> None:
    sig = security.sign_v2("k", "POST", "/ops/cleanup?dryRun=1", "1000.5", b"{}")
    ok = security.verify_request("k", "POST", "/ops/cleanup?dryRun=1", b"{}", sig, "1000.5", now=1200)
    assert ok.form == "v2" and ok.nonce == sig and ok.expires_at == 1000.5 + security.MAX_SKEW_S
    for method, target, ts, body in (("GET", "/ops/cleanup?dryRun=1", "1000.5", b"{}"),
                                     ("POST", "/ops/cleanup", "1000.5", b"{}"),
                                     ("POST", "/ops/cleanup?dryRun=1", "1000.6", b"{}"),
                                     ("POST", "/ops/cleanup?dryRun=1", "1000.5", b"{ }")):
        with pytest.raises(Unauthorized, match="does not match"):
            security.verify_request("k", method, target, body, sig, ts, now=1200)
    with pytest.raises(Unauthorized, match="5 minutes"):
        security.verify_request("k", "POST", "/ops/cleanup?dryRun=1", b"{}", sig, "1000.5", now=1400)
    with pytest.raises(Unauthorized, match="unix seconds"):
        security.verify_request("k", "POST", "/x", b"", sig, "yesterday", now=1000)


def test_target_is_path_and_query_as_sent() -> None:
    assert security.target_of(b"/a%20b", b"x=1&y=%2F") == "/a%20b?x=1&y=%2F"
    assert security.target_of(b"/a?x=1", b"x=1") == "/a?x=1"  # a server that puts the query in raw_path too
    assert security.target_of(b"/a", b"") == "/a"


def test_read_token_roundtrip() -> None:
    token = security.mint_token("k", "alice", "p1", 2000)
    assert token.startswith("v1.alice.p1.2000.")
    assert security.verify_token("k", token, max_ttl_s=3600, now=1000) == ("alice", "p1")
    with pytest.raises(Unauthorized, match="expired"):
        security.verify_token("k", token, max_ttl_s=3600, now=2000)
    with pytest.raises(Unauthorized, match="longer than"):
        security.verify_token("k", token, max_ttl_s=60, now=1000)
    with pytest.raises(ValueError):
        security.mint_token("k", "al.ice", "p1", 2000)


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
