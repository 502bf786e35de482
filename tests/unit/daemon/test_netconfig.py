"""netconfig: before a networked step the workspace holds no package-manager config but the daemon's, at any
depth, without following a link; the network settings are pinned on pnpm's command line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.project import isolation, netconfig, toolchain
from daemon.project.buildlog import BuildLog

TC = toolchain.Toolchain(node="/usr/bin/node", pnpm="/x/pnpm", node_version="20", pnpm_version="10.34.9")


def _tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


@pytest.mark.parametrize("name", [".npmrc", ".NPMRC", ".pnpmfile.cjs", ".pnpmfile.mjs", ".yarnrc", ".yarnrc.yml",
                                  "bunfig.toml", "pnpm-workspace.yml", ".pnpm-workspace.yaml"])
def test_config_names_are_foreign_anywhere(name: str) -> None:
    assert netconfig.is_foreign(name, at_root=True) and netconfig.is_foreign(name, at_root=False)


def test_the_workspace_file_is_the_daemons_at_the_root_only() -> None:
    assert not netconfig.is_foreign("pnpm-workspace.yaml", at_root=True)
    assert netconfig.is_foreign("pnpm-workspace.yaml", at_root=False)
    assert not any(netconfig.is_foreign(n, at_root=True) for n in ("package.json", "npmrc.md", "src", "yarn.lock"))


def test_purge_removes_config_at_every_depth_but_leaves_pnpms_node_modules_alone(tmp_path: Path) -> None:
    work = tmp_path / "work"
    _tree(work, {
        ".npmrc": "registry=http://127.0.0.1:1/\n", "src/.npmrc": "x", "packages/a/.pnpmfile.cjs": "x",
        "packages/a/dist/.yarnrc.yml": "x", "packages/a/pnpm-workspace.yaml": "registry: x\n", "bunfig.toml": "x",
        "src/app.ts": "keep", "pnpm-workspace.yaml": "packages: []\n",
        "node_modules/.cache/deep/.npmrc": "x", "node_modules/.vite/.npmrc": "x",
        "packages/a/node_modules/.tmp/.npmrc": "x",
        # pnpm's own: a published package that ships a file of that name is not the workspace's config
        "node_modules/.pnpm/dep@1/node_modules/dep/.yarnrc": "theirs",
    })
    (work / "src" / ".npmrc-dir").mkdir()
    (work / "src" / ".npmrc-dir" / "x").write_text("not config")
    os.symlink("/etc", work / ".yarnrc")  # a link is removed, never followed
    out = netconfig.purge(work, {}, cache_dirs=isolation.CODE_CACHE_DIRS, reclaim=False)
    assert sorted(out.removed) == sorted([
        ".npmrc", ".yarnrc", "bunfig.toml", "src/.npmrc", "packages/a/.pnpmfile.cjs", "packages/a/dist/.yarnrc.yml",
        "packages/a/pnpm-workspace.yaml", "node_modules/.cache/deep/.npmrc", "node_modules/.vite/.npmrc",
        "packages/a/node_modules/.tmp/.npmrc"])
    assert (work / "src" / "app.ts").read_text() == "keep" and (work / "pnpm-workspace.yaml").exists()
    assert (work / "node_modules/.pnpm/dep@1/node_modules/dep/.yarnrc").read_text() == "theirs"
    assert (work / "src" / ".npmrc-dir" / "x").exists() and Path("/etc/passwd").exists()


def test_purge_writes_back_the_daemons_files_when_they_changed(tmp_path: Path) -> None:
    work = tmp_path / "work"
    _tree(work, {"pnpm-workspace.yaml": "registry: http://127.0.0.1:1/\n", "package.json": '{"name": "a"}'})
    want = {"pnpm-workspace.yaml": "onlyBuiltDependencies: []\n", "package.json": '{"name": "a"}'}
    out = netconfig.purge(work, want, cache_dirs=(), reclaim=False)
    assert out.rewritten == ["pnpm-workspace.yaml"]
    assert (work / "pnpm-workspace.yaml").read_text() == "onlyBuiltDependencies: []\n"


def test_purge_gives_the_sources_back_to_the_daemon_but_not_node_modules(tmp_path: Path) -> None:
    assert os.geteuid() == 0, "the suite runs as root (CI does); chown to the build user needs it"
    work = tmp_path / "work"
    _tree(work, {"pnpm-lock.yaml": "lockfileVersion: '9.0'\n", "src/a.ts": "x", "node_modules/.pnpm/x": "x"})
    for p in (work / "pnpm-lock.yaml", work / "src", work / "src" / "a.ts", work / "node_modules" / ".pnpm" / "x"):
        os.lchown(p, 65534, 65534)
    out = netconfig.purge(work, {}, cache_dirs=(), reclaim=True)
    assert out.reclaimed == 3
    assert os.stat(work / "pnpm-lock.yaml").st_uid == 0 and os.stat(work / "src" / "a.ts").st_uid == 0
    assert os.stat(work / "node_modules" / ".pnpm" / "x").st_uid == 65534  # pnpm's tree: not walked


def test_drop_foreign_keeps_history_config_out_of_the_workspace(tmp_path: Path) -> None:
    blog = BuildLog(tmp_path / "b.log")
    files = {"package.json": "{}", ".npmrc": "registry=x", "src/.yarnrc": "x", "pnpm-workspace.yaml": "packages: []"}
    assert netconfig.drop_foreign(files, blog) == {"package.json": "{}", "pnpm-workspace.yaml": "packages: []"}
    blog.close()
    assert "package-manager configuration is the daemon's" in (tmp_path / "b.log").read_text()


def test_install_and_audit_pin_the_network_settings_on_the_command_line(tmp_path: Path) -> None:
    argv = toolchain.install_argv(TC, tmp_path / "store", "", tmp_path / "cache")
    assert argv[argv.index("--registry") + 1] == toolchain.DEFAULT_REGISTRY
    for flag in ("--config.proxy=", "--config.https-proxy=", "--config.noproxy=", "--config.strict-ssl=true",
                 f"--config.cache-dir={tmp_path / 'cache'}", "--ignore-pnpmfile"):
        assert flag in argv
    assert argv[argv.index("--store-dir") + 1] == str(tmp_path / "store")
    assert "--workspace-packages" not in argv  # a single package: pnpm's default is the root alone
    projects = toolchain.install_argv(TC, tmp_path / "store", "", None, (".", "packages/ui"))
    assert [projects[i + 1] for i, a in enumerate(projects) if a == "--workspace-packages"] == [".", "packages/ui"]
    audit = toolchain.audit_argv(TC, "https://audit.example/")
    assert audit[audit.index("--registry") + 1] == "https://audit.example/"
    assert "--config.proxy=" in audit and "--config.strict-ssl=true" in audit
