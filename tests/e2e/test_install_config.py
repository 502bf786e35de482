"""Only the daemon configures a networked install (issue 23, attack 2): a project's postinstall writes `.npmrc`
files pointing pnpm at a server of its own (as the registry, or as the proxy in front of the real one); the
project's next install, with new dependencies and the network, must not ask that server anything, the shared
metadata cache must hold nothing from it, and a neighbour's install must be as it would have been."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.tiny_generator import generator_config
from tests.support.live import LiveDaemon
from tests.support.recorder import Recorder

REPO = Path(__file__).resolve().parents[2]

# The first build plants the files (its own postinstall, as the build user, after the install); the rebuild is a
# delta that adds a dependency, so pnpm must fetch metadata it has not cached.
GEN = '''
import json, sys
sys.path.insert(0, @REPO@)
from tests.fakes.tiny_generator import contract_json
req = json.load(sys.stdin)
p = req["prompt"]
npmrc = @NPMRC@
plant = ("const fs = require('fs');\\n"
         "for (const f of ['.npmrc', 'src/.npmrc', 'node_modules/.cache/.npmrc', 'node_modules/.vite/.npmrc']) {\\n"
         "  try { fs.writeFileSync(f, " + json.dumps(npmrc) + "); console.log('planted ' + f) }\\n"
         "  catch (e) { console.log('not planted ' + f + ': ' + e.code) }\\n"
         "}\\n")
build = "mkdir -p dist && cp index.html dist/"
files = {"index.html": "<h1>" + p + "</h1>", "plant.js": plant, "src/keep.txt": "a source dir"}
extra = {"scripts": {"postinstall": "node plant.js"}}
if p == "neighbour":
    print(contract_json(build, {"index.html": "<h1>n</h1>"}, deps={"isobject": "3.0.1"}))
elif p == "first":
    print(contract_json(build, files, deps={"is-number": "7.0.0"}, extra=extra))
else:
    full = json.loads(contract_json(build, files, deps={"is-number": "7.0.0", "isobject": "3.0.1"}, extra=extra))
    print(json.dumps({"delta": True, "files": full["templateFiles"]}))
'''


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    r = Recorder()
    yield r
    r.close()


VARIANTS = {
    "registry": "registry={url}\n@scope:registry={url}\n",
    "proxy": "registry=https://registry.npmjs.org/\nproxy={url}\nhttps-proxy={url}\nstrict-ssl=false\n",
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_config_planted_by_a_postinstall_is_not_obeyed_by_the_next_install(
        tmp_path: Path, recorder: Recorder, variant: str) -> None:
    npmrc = VARIANTS[variant].format(url=recorder.url)
    gen = tmp_path / "gen.py"
    gen.write_text(GEN.replace("@REPO@", repr(str(REPO))).replace("@NPMRC@", repr(npmrc)))
    d = LiveDaemon(tmp_path, generator_config(gen, "[render]\nenabled = false\n")).start()
    data = tmp_path / "data"
    try:
        first = d.post("/build-preview-for-new-project", {"userId": "u", "projectId": "p", "prompt": "first"}).json()
        assert first["success"] is True, first
        planted = (data / "logs" / f"{first['versionId']}.log").read_text()
        assert "planted .npmrc" in planted and "planted src/.npmrc" in planted  # the attack's first half worked
        assert "planted node_modules/.cache/.npmrc" in planted

        again = d.post("/rebuild-preview", {"userId": "u", "projectId": "p", "prompt": "second"}).json()
        log = (data / "logs" / f"{again['versionId']}.log").read_text()
        assert recorder.hits == [], (recorder.hits, log[-3000:])
        assert again["success"] is True, (again, log[-3000:])
        purged = next(line for line in log.splitlines() if "before the install: removed package-manager config" in line)
        assert "node_modules/.cache/.npmrc" in purged  # from where writing the sources does not reach
        assert "pnpm-lock.yaml dropped" not in log  # pnpm's own lockfile names only the registry's packages
        lock = (data / "projects" / "u" / "p" / "work" / "pnpm-lock.yaml").read_text()
        assert "isobject@3.0.1" in lock and "127.0.0.1" not in lock

        # A neighbour's new project installs what the registry serves, from a metadata cache the attacker never
        # wrote: pnpm names each cache folder after the registry's host only.
        other = d.post("/build-preview-for-new-project",
                       {"userId": "v", "projectId": "n", "prompt": "neighbour"}).json()
        assert other["success"] is True, other
        installed = data / "projects" / "v" / "n" / "work" / "node_modules" / "isobject" / "package.json"
        assert json.loads(installed.read_text())["version"] == "3.0.1"
        hosts = {h.name for h in (data / "cache" / "pnpm").glob("metadata*/*")}
        assert hosts and all("127.0.0.1" not in h for h in hosts), hosts
        assert recorder.hits == []
    finally:
        d.stop()
