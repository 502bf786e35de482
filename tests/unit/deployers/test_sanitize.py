"""The sanitised copy every deployer gets: regular files only, links resolved only inside, server code removed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.deployers.base import DeployError, DeployRequest
from daemon.deployers.local import LocalDeployer
from daemon.deployers.sanitize import SanitizingDeployer, sanitized_copy


def _output(root: Path) -> Path:
    out = root / "dist"
    (out / "assets").mkdir(parents=True)
    (out / "index.html").write_text("<h1>hi</h1>")
    (out / "assets" / "app.js").write_text("console.log(1)")
    (out / "env.txt").symlink_to("/proc/self/environ")
    (out / "passwd.txt").symlink_to("/etc/passwd")
    (out / "alias.html").symlink_to("index.html")
    (out / "assets" / "up.html").symlink_to("../index.html")
    (out / "assets" / "chain.js").symlink_to("../alias.html")  # a link to a link: not followed twice
    (out / "out.html").symlink_to("../secret.txt")
    (root / "secret.txt").write_text("outside")
    (out / "dirlink").symlink_to("assets")
    os.mkfifo(out / "pipe")
    (out / "_worker.js").write_text("export default {}")
    (out / "functions" / "api").mkdir(parents=True)
    (out / "functions" / "api" / "x.js").write_text("export function onRequest() {}")
    (out / "_routes.json").write_text("{}")
    (out / "sub").mkdir()
    (out / "sub" / "functions").mkdir()  # only the top level is Pages' server code
    (out / "sub" / "functions" / "ok.txt").write_text("static")
    return out


def _tree(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = "link" if p.is_symlink() else "dir" if p.is_dir() else p.read_text()
    return out


def test_copy_keeps_regular_files_and_inside_links_only(tmp_path: Path) -> None:
    lines: list[str] = []
    report = sanitized_copy(_output(tmp_path), tmp_path / "copy", lines.append)
    assert _tree(tmp_path / "copy") == {
        "alias.html": "<h1>hi</h1>", "assets": "dir", "assets/app.js": "console.log(1)",
        "assets/up.html": "<h1>hi</h1>", "index.html": "<h1>hi</h1>", "sub": "dir", "sub/functions": "dir",
        "sub/functions/ok.txt": "static",
    }
    assert report.files == 5 and report.dropped == 9
    text = "\n".join(lines)
    for needle in ("dropped link env.txt -> /proc/self/environ", "dropped link passwd.txt -> /etc/passwd",
                   "dropped link out.html -> ../secret.txt", "dropped link dirlink -> assets",
                   "dropped link assets/chain.js -> ../alias.html", "dropped pipe: not a regular file",
                   "removed _worker.js: server code", "removed functions/", "removed _routes.json",
                   "resolved link alias.html -> index.html"):
        assert needle in text, (needle, text)


def test_allow_functions_keeps_server_code(tmp_path: Path) -> None:
    sanitized_copy(_output(tmp_path), tmp_path / "copy", lambda _line: None, allow_functions=True)
    assert {"_worker.js", "functions", "_routes.json"} <= set(os.listdir(tmp_path / "copy"))


def test_worker_directory_is_removed_too(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    (out / "_worker.js").mkdir(parents=True)
    (out / "_worker.js" / "index.js").write_text("x")
    (out / "index.html").write_text("i")
    lines: list[str] = []
    sanitized_copy(out, tmp_path / "copy", lines.append)
    assert os.listdir(tmp_path / "copy") == ["index.html"] and "removed _worker.js/" in lines[0]


def test_an_output_dir_that_is_a_link_is_refused(tmp_path: Path) -> None:
    (tmp_path / "dist").symlink_to("/etc")
    with pytest.raises(DeployError, match="is a link"):
        sanitized_copy(tmp_path / "dist", tmp_path / "copy", lambda _line: None)


def test_the_copy_has_a_size_cap(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    out.mkdir()
    (out / "big.bin").write_bytes(b"x" * 5000)
    with pytest.raises(DeployError, match="4096 byte cap"):
        sanitized_copy(out, tmp_path / "copy", lambda _line: None, max_bytes=4096)


def test_every_deploy_goes_through_a_copy_that_is_removed_afterwards(tmp_path: Path) -> None:
    inner = LocalDeployer(tmp_path / "previews")
    scratch = tmp_path / "scratch"
    deployer = SanitizingDeployer(inner, scratch)
    lines: list[str] = []
    dep = deployer.deploy(DeployRequest(out_dir=_output(tmp_path), user_id="u", project_id="p",
                                        version_id="01ARZ3NDEKTSV4RRFFQ69G5FAV", message="m"), lines.append)
    published = tmp_path / "previews" / dep.deployment_id
    assert sorted(os.listdir(published)) == ["alias.html", "assets", "index.html", "sub"]
    assert any(line.startswith("deploying a sanitised copy: 5 files") for line in lines)
    assert os.listdir(scratch) == []
    assert deployer.name == "local" and deployer.status(dep.deployment_id).state == "deployed"
    deployer.delete(dep.deployment_id)
    assert not published.exists()


def test_the_daemons_own_unshared_files_are_linked_never_a_shared_or_foreign_inode(tmp_path: Path) -> None:
    out = _output(tmp_path)
    os.link(out / "assets" / "app.js", tmp_path / "second-name.js")  # an inode with another name: copied
    dst = tmp_path / "copy"
    sanitized_copy(out, dst, lambda _l: None)
    assert (dst / "index.html").stat().st_ino == (out / "index.html").stat().st_ino
    assert (dst / "assets" / "app.js").stat().st_ino != (out / "assets" / "app.js").stat().st_ino
    assert (dst / "assets" / "app.js").read_text() == "console.log(1)"
    assert (dst / "alias.html").stat().st_ino != (out / "index.html").stat().st_ino  # a link's target: a copy
