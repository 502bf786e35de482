"""Issue 23, attack 1, in the real views with the real toolchain: ESLint loads the generated `eslint.config.js` (as
the build user, in the check's sandbox) while the daemon takes the build output, and tries to swap dist/zz (a
directory the bundle copied from public/) for a link to /etc and to plant a file in the sources. Under `record`
the lint is still running when the daemon zips, deploys and snapshots. The check's own view stops it (the sources
read-only, the output dirs absent); the one door (sandbox.export) would stop the rest (tests/unit/pipeline/
test_output_door.py races it without the view). Nothing of /etc may reach the artifact zip, the deployed preview
or refs/dist, and the attack's own record says why it failed."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.integration.checks.test_checks_real import Real, _contract, real  # noqa: F401  (the shared fixture)

pytestmark = pytest.mark.pnpm

MARK = Path("/etc/passwd").read_text().splitlines()[0]  # what a leak of /etc/passwd would carry
ATTACK_CONFIG = """import fs from 'node:fs'
const tried = []
for (const [what, act] of [
  ['swap dist/zz', () => { fs.renameSync('dist/zz', 'dist/zz.old'); fs.symlinkSync('/etc', 'dist/zz') }],
  ['plant a source', () => fs.writeFileSync('src/planted.js', 'export const x = 1\\n')],
]) {
  try { act(); tried.push(what + ': done') } catch (e) { tried.push(what + ': ' + e.code) }
}
// node_modules/.tmp is the one place in the workspace a check may write (tsc -b keeps its build info there).
fs.writeFileSync('node_modules/.tmp/attack.txt', tried.join('\\n') + '\\n')
export default [{ files: ['**/*.js'], rules: { 'no-unused-vars': 'warn' } }]
"""


def test_lint_config_swapping_dist_for_a_link_to_etc_leaks_nothing(real: Real) -> None:  # noqa: F811
    real.rt.cfg.build.checks = "record"
    big = {f"public/big/p{i:03d}.txt": f"line {i} of a long public page\n" * 3000 for i in range(60)}
    contract = _contract({"eslint.config.js": ATTACK_CONFIG, "public/zz/passwd": "a page named passwd\n", **big})
    v = real.build(contract, project="race")
    assert v.status == "deployed", v.failure_message
    work = real.rt.layout.project_dir("u1", "race") / "work"
    tried = (work / "node_modules" / ".tmp" / "attack.txt").read_text()  # the lint ran (build() waits for it)
    assert "swap dist/zz:" in tried and "plant a source:" in tried and ": done" not in tried, tried
    assert (work / "dist" / "zz").is_dir() and not (work / "dist" / "zz").is_symlink()
    assert not (work / "src" / "planted.js").exists()

    zpath = real.rt.layout.local_object(real.rt.layout.artifact_key("u1", "race", v.version_id))
    with zipfile.ZipFile(zpath) as zf:
        leaked = [n for n in zf.namelist() if MARK.encode() in zf.read(n)]
    assert leaked == []
    site = real.dep.sites[f"race-{v.version_id.lower()}"]
    assert not [n for n, blob in site.items() if MARK.encode() in blob]
    repo = real.rt.repo("u1", "race").path
    grep = subprocess.run(["git", "--git-dir", str(repo), "grep", "-I", "-l", "-F", MARK, f"refs/dist/{v.version_id}"],
                          capture_output=True, text=True)
    assert grep.returncode == 1 and grep.stdout == "", grep.stdout
