"""Shared by the isolation attack tests: one daemon per module, a victim project, and the after-attack checks."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from tests.fakes.tiny_generator import generator_config, write_generator
from tests.support.live import LiveDaemon

VICTIM_PAGE = "<h1>alice's page</h1>"

# One generator for a whole module: prompts starting with an attack's name get that attack's project, any other
# prompt gets alice's plain page. In an attack, "@DATA@" is the data dir and "@TARGET@" the text of <tmp>/target.txt
# when it exists (for what is only known once the daemon runs: the victim's deployment id, the daemon's port).
_BODY = '''
import json as _json
import pathlib
DATA = @DATA_DIR@
TMP = pathlib.Path(@TMP_DIR@)
p = req["prompt"]
files = {"index.html": "<h1>alice's page</h1>"}
build = "mkdir -p dist && cp index.html dist/"
ATTACKS = @ATTACKS@
target = (TMP / "target.txt").read_text().strip() if (TMP / "target.txt").exists() else ""
for key, spec in ATTACKS.items():
    if p.startswith(key):
        spec = _json.loads(_json.dumps(spec).replace("@DATA@", DATA).replace("@TARGET@", target))
        build = spec["build"]
        files = spec.get("files", files)
        deps = spec.get("deps")
        extra = spec.get("extra")
'''


def start_daemon(tmp: Path, attacks: dict[str, dict[str, Any]], extra_config: str = "",
                 *, store_in_data_dir: bool = False) -> LiveDaemon:
    """A daemon on `tmp` whose command generator serves the victim and the given attacks (render check off)."""
    data = tmp / "data"
    body = (_BODY.replace("@DATA_DIR@", repr(str(data))).replace("@TMP_DIR@", repr(str(tmp)))
            .replace("@ATTACKS@", repr(attacks)))
    gen = write_generator(tmp, body)
    d = LiveDaemon(tmp, generator_config(gen, "[render]\nenabled = false\n" + extra_config))
    if store_in_data_dir:
        # One file system mount with the workspaces: pnpm hard-links from the store (the default layout).
        text = d.config.read_text()
        start = text.index("pnpm_store = ")
        end = text.index("\n", start)
        d.config.write_text(text[:start] + f'pnpm_store = "{data / "pnpm-store"}"' + text[end:])
    return d.start()


def build(d: LiveDaemon, user: str, project: str, prompt: str, *, new: bool = True) -> dict[str, Any]:
    path = "/build-preview-for-new-project" if new else "/rebuild-preview"
    r = d.post(path, {"userId": user, "projectId": project, "prompt": prompt})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def page(d: LiveDaemon, body: dict[str, Any], path: str = "/") -> str:
    assert body["success"] is True, body
    return d.preview(body["previewUrl"], path).text


def victim_still_fine(d: LiveDaemon, user: str = "alice", project: str = "site") -> None:
    """After an attack: the victim's next build deploys the same page and the daemon is healthy."""
    again = build(d, user, project, "victim again", new=False)
    assert again["success"] is True, again
    assert page(d, again) == VICTIM_PAGE
    assert d.get("/healthz").json() == {"ok": True}
    detail = d.get("/healthz", params={"detail": "1"}).json()
    assert detail["isolation"]["confined"] is True, detail


def log_of(d: LiveDaemon, version_id: str) -> str:
    return d.get(f"/versions/{version_id}/log").text


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> sha256 (or the link target) of everything under root, links never followed."""
    out: dict[str, str] = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            out[rel] = "link:" + os.readlink(p) if p.is_symlink() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out
