"""The template's app really installs and builds with pnpm 10 on Node 20; a refinement rebuilds without install."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from daemon.core.contract import apply_contract
from daemon.generators import GenerationRequest, make_generator
from daemon.project.workspace import materialize, read_tree

PNPM = Path(__file__).resolve().parents[3] / ".tools" / "node_modules" / ".bin" / "pnpm"


def _pnpm(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(PNPM), *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CI": "1"}, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"pnpm {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.pnpm
def test_template_installs_builds_and_refines(tmp_path: Path) -> None:
    assert PNPM.exists(), f"pnpm is expected at {PNPM}"
    ws, store = tmp_path / "ws", tmp_path / "store"
    gen = make_generator("template")
    first = gen.generate(GenerationRequest("A landing page for an otter sanctuary with pricing"), lambda _l: None)
    materialize(ws, apply_contract({}, first.contract))
    install = _pnpm(ws, "install", "--no-frozen-lockfile", "--store-dir", str(store))
    # pnpm 10 skips dependency build scripts (esbuild, @tailwindcss/oxide); their binaries come from optional deps
    assert "Ignored build scripts" in install.stdout
    _pnpm(ws, "build")
    html = (ws / "dist" / "index.html").read_text()
    assets = sorted(p.name for p in (ws / "dist" / "assets").iterdir())
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    assert "/assets/" in html
    js = next((ws / "dist" / "assets").glob("*.js")).read_text()
    assert "Otter Sanctuary" in js
    css = next((ws / "dist" / "assets").glob("*.css")).read_text()
    assert "bg-" in css  # Tailwind generated utilities from the app's classes

    pkg_before = (ws / "package.json").read_text()
    lock_before = (ws / "pnpm-lock.yaml").read_text()
    base = read_tree(ws, ["node_modules", "dist"])
    second = gen.generate(GenerationRequest("Add a team section", base_files=base), lambda _l: None)
    assert set(second.contract.files) == {"src/content.ts"}
    materialize(ws, apply_contract(base, second.contract))
    assert (ws / "package.json").read_text() == pkg_before
    assert (ws / "pnpm-lock.yaml").read_text() == lock_before  # kept: the lockfile is part of the base tree
    _pnpm(ws, "build")  # no install: node_modules was kept
    js = next((ws / "dist" / "assets").glob("*.js")).read_text()
    assert "Meet the team" in js
    assert json.loads(pkg_before)["scripts"]["build"] == "tsc -b && vite build"
