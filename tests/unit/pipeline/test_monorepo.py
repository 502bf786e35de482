"""pnpm workspaces: the workspace file's merge and refusals, package globs, the target choice, the incremental
selection, and the policies that must hold per workspace package (package.json, scripts, kept dirs, requests)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from daemon.core.contract import ContractError, ContractLimits, check_path
from daemon.core.errors import BadRequest
from daemon.intake.submit import parse_build_request
from daemon.project import isolation, monorepo, packagejson, toolchain
from daemon.project.buildlog import BuildLog
from daemon.project.failures import BuildFailed
from daemon.project.workspace import WorkspaceError, materialize
from daemon.steps import scripts


def _pkg(name: str, build: str | None = None, deps: dict[str, str] | None = None, **extra: Any) -> str:
    data: dict[str, Any] = {"name": name, **extra}
    if build:
        data["scripts"] = {"build": build}
    if deps:
        data["dependencies"] = deps
    return json.dumps(data)


def _workspace(**more: str) -> dict[str, str]:
    files = {
        "package.json": _pkg("root"),
        "pnpm-workspace.yaml": "packages:\n  - apps/*\n  - packages/*\n",
        "apps/web/package.json": _pkg("web", "vite build", {"vite": "6", "@d/ui": "workspace:*",
                                                            "@d/theme": "workspace:^"}),
        "apps/web/src/main.js": "main",
        "packages/ui/package.json": _pkg("@d/ui", "node b.mjs", {"@d/theme": "workspace:*"}),
        "packages/ui/src/index.js": "ui",
        "packages/theme/package.json": _pkg("@d/theme", "node b.mjs"),
        "packages/theme/src/index.js": "theme",
        "packages/lonely/package.json": _pkg("lonely", "node b.mjs"),
    }
    files.update(more)
    return files


@pytest.fixture
def blog(tmp_path: Path) -> BuildLog:
    return BuildLog(tmp_path / "log")


# -- the workspace file ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["onlyBuiltDependencies", "dangerouslyAllowAllBuilds", "neverBuiltDependencies",
                                 "ignoredBuiltDependencies", "only-built-dependencies", "allowBuilds",
                                 "packageManager", "managePackageManagerVersions", "storeDir", "store-dir",
                                 "enable-pre-post-scripts", "pnpmfile", "overrides", "registry", "configDependencies",
                                 "sideEffectsCache", "strictDepBuilds", "patchedDependencies"])
def test_a_generated_workspace_file_that_undoes_the_policy_is_refused(key: str) -> None:
    text = f"packages: ['apps/*']\n{key}: true\n"
    with pytest.raises(BuildFailed) as exc:
        monorepo.parse_workspace(text, strict=True)
    assert exc.value.reason == "invalid_output" and key in exc.value.message
    # The daemon's own file from the base version: its policy keys are replaced, never obeyed.
    assert monorepo.parse_workspace(text, strict=False)[0] == ["apps/*"]


def test_the_merge_keeps_only_the_globs_beside_the_daemons_policy() -> None:
    globs, notes = monorepo.parse_workspace("packages:\n  - ./apps/*\n  - '!apps/old'\ncatalog:\n  react: ^19\n",
                                            strict=True)
    assert globs == ["apps/*", "!apps/old"] and "ignored catalog" in notes[0]
    merged = monorepo.policy_yaml(globs, ["esbuild"])
    assert yaml.safe_load(merged) == {"onlyBuiltDependencies": ["esbuild"], "packages": ["apps/*", "!apps/old"]}
    # merging the daemon's own file again is stable (a rebuild's inherited file)
    again, _ = monorepo.parse_workspace(merged, strict=False)
    assert monorepo.policy_yaml(again, ["esbuild"]) == merged
    assert monorepo.parse_workspace("", strict=True) == ([], [])


@pytest.mark.parametrize("text", [
    "- a\n- b\n",  # not a mapping
    "packages: apps/*\n",  # not a list
    "packages: [1]\n",
    "a: &x [1, 2]\nb: *x\npackages: []\n",  # anchors: a billion laughs
    "packages: [\n",  # broken YAML
    "packages: !!python/object/apply:os.system ['id']\n",
    "packages:\n" + "  - p/*\n" * (monorepo.MAX_PATTERNS + 1),
    "packages: ['" + "a" * monorepo.MAX_YAML_BYTES + "']\n",
])
def test_broken_or_hostile_workspace_files_are_refused(text: str) -> None:
    with pytest.raises(BuildFailed) as exc:
        monorepo.parse_workspace(text, strict=True)
    assert exc.value.reason == "invalid_output"


@pytest.mark.parametrize("glob", ["../other/*", "/etc", "apps/../../x", "apps//web", "./", "node_modules/*",
                                  "apps/node_modules", ".git", "{apps,packages}/*", "apps\\web", "a/./b"])
def test_package_globs_stay_inside_the_workspace(glob: str) -> None:
    with pytest.raises(BuildFailed):
        monorepo.check_glob(glob)


def test_globs_expand_against_the_file_set_only() -> None:
    files = {"package.json": "{}", "apps/web/package.json": "{}", "apps/web/deep/package.json": "{}",
             "packages/a/package.json": "{}", "packages/a/b/package.json": "{}", "packages/skip/package.json": "{}",
             "docs/package.json": "{}", "apps/readme.md": ""}
    assert monorepo.expand(["apps/*"], files) == ["apps/web"]
    assert monorepo.expand(["packages/**", "!packages/skip"], files) == ["packages/a", "packages/a/b"]
    with pytest.raises(BuildFailed):
        monorepo.expand(["apps/*"], {"apps/we}b {x/package.json": "{}"})
    # many `**` against a deep path that does not match: memoised, not exponential
    deep = {"/".join(["d"] * 60) + "/package.json": "{}"}
    assert monorepo.expand(["/".join(["**"] * 70) + "/x"], deep) == []
    many = {f"p/x{i}/package.json": "{}" for i in range(monorepo.MAX_PACKAGES + 1)}
    with pytest.raises(BuildFailed) as exc:
        monorepo.expand(["p/*"], many)
    assert f"over {monorepo.MAX_PACKAGES} packages" in exc.value.message


# -- the target ----------------------------------------------------------------------------------------------

def test_the_only_web_app_is_the_target_and_a_request_names_another(blog: BuildLog) -> None:
    layout = monorepo.prepare(_workspace(), None, None, (), ["esbuild"], blog)
    assert layout.target is not None and layout.target.path == "apps/web"
    # dependencies before dependents, the root first
    assert [p.path for p in layout.packages] == [".", "packages/theme", "packages/ui", "apps/web", "packages/lonely"]
    assert layout.manifests[0] == "package.json" and "packages/ui/package.json" in layout.manifests
    for wanted, path in (("@d/ui", "packages/ui"), ("./packages/ui", "packages/ui"), ("packages/ui/", "packages/ui")):
        chosen = monorepo.prepare(_workspace(), None, wanted, (), [], blog).target
        assert chosen is not None and chosen.path == path
    for outside in ("node_modules/x", "apps", "nope", "."):
        if outside == ".":
            assert monorepo.prepare(_workspace(), None, outside, (), [], blog).target.path == "."  # type: ignore[union-attr]
            continue
        with pytest.raises(BuildFailed) as exc:
            monorepo.prepare(_workspace(), None, outside, (), [], blog)
        assert "is not a package of the workspace" in exc.value.message and "web (apps/web)" in exc.value.message


def test_an_ambiguous_workspace_lists_its_candidates_and_metadata_may_choose(blog: BuildLog) -> None:
    files = _workspace(**{"apps/admin/package.json": _pkg("admin", "vite build", {"react": "19"})})
    with pytest.raises(BuildFailed) as exc:
        monorepo.prepare(dict(files), None, None, (), [], blog)
    assert exc.value.reason == "invalid_output"
    assert "candidates: admin (apps/admin), web (apps/web)" in exc.value.message
    chosen = monorepo.prepare(dict(files), None, None, ("admin",), [], blog).target
    assert chosen is not None and chosen.path == "apps/admin"
    # hints are preferences: one naming no package (a base's target the rebuild removed) gives way to the next
    chosen = monorepo.prepare(dict(files), None, None, (None, "apps/gone", "apps/web"), [], blog).target
    assert chosen is not None and chosen.path == "apps/web"
    none = _workspace(**{"apps/web/package.json": _pkg("web", "tsc")})
    with pytest.raises(BuildFailed) as exc:
        monorepo.prepare(none, None, None, (), [], blog)
    assert "no workspace package has a `build` script and a web framework" in exc.value.message


def test_prepare_is_strict_for_a_generated_file_and_not_for_the_daemons_own(blog: BuildLog) -> None:
    evil = _workspace(**{"pnpm-workspace.yaml": "packages: ['apps/*']\ndangerouslyAllowAllBuilds: true\n"})
    with pytest.raises(BuildFailed):
        monorepo.prepare(dict(evil), None, None, (), ["esbuild"], blog)
    files = _workspace()
    monorepo.prepare(files, None, None, (), ["esbuild"], blog)
    assert "onlyBuiltDependencies" in files["pnpm-workspace.yaml"]
    # the next build inherits that file unchanged from its base: accepted, policy rewritten from today's config
    again = dict(files)
    monorepo.prepare(again, files, None, (), [], blog)
    assert yaml.safe_load(again["pnpm-workspace.yaml"])["onlyBuiltDependencies"] == []
    # the same text arriving from the generator (not the base's) is refused
    with pytest.raises(BuildFailed):
        monorepo.prepare(dict(files), {}, None, (), [], blog)


def test_single_packages_and_duplicate_names(blog: BuildLog) -> None:
    single = {"package.json": _pkg("site", "vite build", {"vite": "6"}), "index.html": ""}
    with pytest.raises(BuildFailed) as exc:
        monorepo.prepare(dict(single), None, "apps/web", (), [], blog)
    assert "single package" in exc.value.message
    assert monorepo.prepare(dict(single), None, "site", (), [], blog).target is None
    assert not monorepo.prepare(dict(single), None, None, ("apps/web",), [], blog).is_workspace  # only a hint
    layout = monorepo.prepare(single, None, None, (), ["esbuild"], blog)
    assert not layout.is_workspace and layout.manifests == ("package.json",)
    assert yaml.safe_load(single["pnpm-workspace.yaml"]) == {"onlyBuiltDependencies": ["esbuild"]}
    dup = _workspace(**{"packages/lonely/package.json": _pkg("@d/ui")})
    with pytest.raises(BuildFailed) as exc:
        monorepo.prepare(dup, None, None, (), [], blog)
    assert "two workspace packages are named '@d/ui'" in exc.value.message


@pytest.mark.parametrize("value", ["../other", "/etc", "apps/../../x", "a//b", "node_modules/x", "apps\\web",
                                   "", "x" * 241, "./..", "apps/web/.."])
def test_a_target_package_outside_the_workspace_is_a_400_naming_the_field(value: str) -> None:
    body = {"userId": "u", "projectId": "p", "prompt": "x", "targetPackage": value}
    with pytest.raises(BadRequest) as exc:
        parse_build_request(body, rebuild=False, max_prompt=100)
    assert exc.value.extra["field"] == "targetPackage"
    ok = parse_build_request({**body, "targetPackage": "./apps/web"}, rebuild=True, max_prompt=100)
    assert ok.target_package == "apps/web"
    assert parse_build_request({**body, "targetPackage": "@s/web"}, rebuild=False, max_prompt=100).target_package \
        == "@s/web"
    with pytest.raises(BadRequest):
        parse_build_request({**body, "targetPackage": 3}, rebuild=False, max_prompt=100)


# -- incremental ---------------------------------------------------------------------------------------------

def test_only_changed_packages_and_their_dependents_are_rebuilt(blog: BuildLog) -> None:
    files = _workspace()
    layout = monorepo.prepare(files, None, None, (), [], blog)
    before = {"target": "apps/web", "packages": monorepo.fingerprints(layout, files)}
    assert monorepo.selection(layout, before["packages"], None) is None  # no good build on disk: everything

    def chosen(**changed: str) -> list[str] | None:
        now = {**files, **changed}
        picked = monorepo.selection(layout, monorepo.fingerprints(layout, now), before)
        return None if picked is None else [p.path for p in picked]

    assert chosen() == ["apps/web"]  # the target is always built
    assert chosen(**{"packages/ui/src/index.js": "new"}) == ["packages/ui", "apps/web"]
    assert chosen(**{"packages/theme/src/index.js": "new"}) == ["packages/theme", "packages/ui", "apps/web"]
    assert chosen(**{"packages/lonely/x.js": "new"}) == ["apps/web"]  # not needed by the target
    assert chosen(**{"tsconfig.base.json": "{}"}) is None  # the root's own files: everything
    assert monorepo.selection(layout, before["packages"], {**before, "target": "apps/admin"}) is None
    tc = type("TC", (), {"pnpm": "pnpm"})()
    assert monorepo.build_argv(tc, layout, None)[:3] == ["pnpm", "--filter", "{./apps/web}..."]  # type: ignore[arg-type]
    picked = monorepo.selection(layout, monorepo.fingerprints(layout, {**files, "packages/ui/src/index.js": "n"}),
                                before)
    assert monorepo.build_argv(tc, layout, picked) == [  # type: ignore[arg-type]
        "pnpm", "--filter", "{./packages/ui}", "--filter", "{./apps/web}", "run", *toolchain.RUN_PINS, "--reporter",
        "append-only", "build"]


def test_kept_dirs_survive_a_rewrite_and_links_there_do_not(tmp_path: Path, blog: BuildLog) -> None:
    files = _workspace()
    layout = monorepo.prepare(files, None, None, (), [], blog)
    keep = monorepo.output_keep(layout, files)
    assert "apps/web/node_modules" in keep and "packages/ui/dist" in keep and "packages/ui/src" not in keep
    lib = {**files, "packages/ui/package.json": _pkg("@d/ui", "tsc", exports={".": {"import": "./lib/i.js"}},
                                                     types="types/i.d.ts", main="../../etc/x.js")}
    lib_keep = monorepo.output_keep(layout, lib)
    assert {"packages/ui/lib", "packages/ui/types"} <= set(lib_keep) and "packages/ui/.." not in lib_keep
    work = tmp_path / "w"
    materialize(work, files, keep=("node_modules", *keep))
    (work / "packages/ui/dist").mkdir()
    (work / "packages/ui/dist/index.js").write_text("built")
    (work / "apps/web/node_modules").mkdir()
    (work / "packages/theme/dist").symlink_to("/etc")
    materialize(work, files, keep=("node_modules", *keep))
    assert (work / "packages/ui/dist/index.js").read_text() == "built" and (work / "apps/web/node_modules").is_dir()
    assert not (work / "packages/theme/dist").exists() and not (work / "packages/theme/dist").is_symlink()
    with pytest.raises(WorkspaceError):
        materialize(work, {**files, "packages/ui/dist/x.js": "x"}, keep=("node_modules", *keep))


# -- the policies per workspace package ----------------------------------------------------------------------

def test_package_json_policy_holds_for_every_workspace_package(tmp_path: Path) -> None:
    blog = BuildLog(tmp_path / "log")
    files = _workspace(**{"packages/ui/package.json": _pkg("@d/ui", packageManager="pnpm@8.0.0",
                                                           pnpm={"onlyBuiltDependencies": ["evil"]})})
    layout = monorepo.prepare(files, None, None, (), [], blog)
    out = packagejson.sanitize(files, blog, layout.manifests, layout.local_names)
    assert set(json.loads(out["packages/ui/package.json"])) == {"name"}
    blog.close()
    assert "packages/ui/package.json: removed `packageManager`, `pnpm`" in (tmp_path / "log").read_text()
    for bad in ({"evil": "workspace:*"}, {"@d/ui": "workspace:../../x"}, {"@d/ui": "link:../ui"},
                {"x": "file:../../../etc"}):
        bad_files = _workspace(**{"apps/web/package.json": _pkg("web", "vite build", bad)})
        with pytest.raises(BuildFailed) as exc:
            packagejson.sanitize(bad_files, blog, layout.manifests, layout.local_names)
        assert "apps/web/package.json" in exc.value.message
    with pytest.raises(BuildFailed):  # no workspace: workspace: is refused as before
        packagejson.sanitize({"package.json": _pkg("x", deps={"@d/ui": "workspace:*"})}, blog)


def test_each_workspace_package_runs_its_own_install_scripts_in_its_directory(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text(json.dumps({"name": "root", "scripts": {"postinstall": "echo r"}}))
    (tmp_path / "packages/ui").mkdir(parents=True)
    (tmp_path / "packages/ui/package.json").write_text(json.dumps({"name": "@d/ui",
                                                                   "scripts": {"prepare": "echo ui"}}))
    plan = scripts.plan(tmp_path, [], (".", "packages/ui"))
    assert [(s.directory, s.package, s.event) for s in plan.scripts] == [
        (tmp_path, "root", "postinstall"), (tmp_path / "packages/ui", "@d/ui", "prepare")]
    assert [s.package for s in scripts.plan(tmp_path, []).scripts] == ["root"]


def test_the_contract_accepts_a_workspace_file_only_at_the_root() -> None:
    limits = ContractLimits()
    assert check_path("pnpm-workspace.yaml", limits) == "pnpm-workspace.yaml"
    for path in ("apps/pnpm-workspace.yaml", "PNPM-WORKSPACE.yaml", "apps/web/.npmrc", "pnpm-lock.yaml"):
        with pytest.raises(ContractError):
            check_path(path, limits)


def test_a_packages_node_modules_is_read_only_to_generated_code_and_stays_the_daemons(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    dirs = isolation.project_dirs(tmp_path / "data", "u", "p")
    nm = dirs.work / "apps/web/node_modules"
    (nm / ".vite").mkdir(parents=True)
    (dirs.work / "apps/link").mkdir()
    (dirs.work / "apps/link/node_modules").symlink_to("/etc")  # a planted link is never a mount
    view = isolation.code_view(tmp_path / "data", Path("/srv/store"), dirs, packages=("apps/web", "apps/link"))
    kinds = [(m.kind, m.path) for m in view.mounts]
    assert kinds.index(("rw", dirs.work)) < kinds.index(("ro", nm)) < kinds.index(("rw", nm / ".vite"))
    assert not any(m.path == dirs.work / "apps/link/node_modules" for m in view.mounts)
    # handing the workspace to the build user skips every node_modules, a package's included
    if os.geteuid() == 0:
        (dirs.work / "apps/web/src").mkdir()
        isolation.give_to_code(dirs.work, (65534, 65534))
        assert (dirs.work / "apps/web/src").stat().st_uid == 65534
        assert nm.stat().st_uid == 0 and (nm / ".vite").stat().st_uid == 0
