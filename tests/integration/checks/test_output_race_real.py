"""Issue 23, attack 1, in the real views with the real toolchain: ESLint loads the generated `eslint.config.js` (as
the build user, in the check's sandbox) while the daemon takes the build output. The config waits until the
daemon starts reading dist/ (the first read moves a file's atime past its mtime), then swaps dist/zz, a directory
the bundle copied from public/, for a link to /etc. The vite config holds the bundle until the config watches, so
the read always comes after. Nothing of /etc may reach the artifact zip, the deployed preview or refs/dist."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.integration.checks.test_checks_real import Real, _contract, real  # noqa: F401  (the shared fixture)

pytestmark = pytest.mark.pnpm

MARK = Path("/etc/passwd").read_text().splitlines()[0]  # what a leak of /etc/passwd would carry
ATTACK_CONFIG = """import fs from 'node:fs'
import path from 'node:path'
const nap = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
fs.writeFileSync('.watching', '')
const deadline = Date.now() + 120000
let read = false
while (!read && Date.now() < deadline) {
  nap(5)
  if (!fs.existsSync('.built')) continue
  for (const dir of ['dist/assets', 'dist/big']) {
    let names = []
    try { names = fs.readdirSync(dir) } catch { continue }
    for (const n of names) {
      try {
        const st = fs.statSync(path.join(dir, n))
        if (st.atimeMs > st.mtimeMs) read = true
      } catch {}
    }
  }
}
if (read) {
  fs.renameSync('dist/zz', 'dist/zz.old')
  fs.symlinkSync('/etc', 'dist/zz')
  fs.writeFileSync('.swapped', '')
}
export default [{ files: ['**/*.js'], rules: { 'no-unused-vars': 'warn' } }]
"""
# The bundle ends only once the lint watches; its own reads of dist/ are forgotten (atime set back to the mtime).
VITE_CONFIG = """import { defineConfig } from 'vite'
import react from '@vitejs/plugin-react'
import tailwindcss from '@tailwindcss/vite'
// @ts-expect-error: no @types/node in this project
import fs from 'node:fs'

const nap = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
const waitForLint = {
  name: 'wait-for-lint',
  closeBundle() {
    const end = Date.now() + 120000
    while (!fs.existsSync('.watching') && Date.now() < end) nap(50)
    for (const dir of ['dist/assets', 'dist/big']) {
      for (const n of fs.readdirSync(dir)) {
        const st = fs.statSync(dir + '/' + n)
        fs.utimesSync(dir + '/' + n, st.mtime, st.mtime)
      }
    }
    fs.writeFileSync('.built', '')
  },
}

export default defineConfig({
  plugins: [react(), tailwindcss(), waitForLint],
})
"""


def test_lint_config_swapping_dist_for_a_link_to_etc_leaks_nothing(real: Real) -> None:  # noqa: F811
    real.rt.cfg.build.checks = "record"
    big = {f"public/big/p{i:03d}.txt": f"line {i} of a long public page\n" * 3000 for i in range(60)}
    contract = _contract({"eslint.config.js": ATTACK_CONFIG, "vite.config.ts": VITE_CONFIG,
                          "public/zz/passwd": "a page named passwd\n", **big})
    v = real.build(contract, project="race")
    assert v.status == "deployed", v.failure_message
    work = real.rt.layout.project_dir("u1", "race") / "work"
    assert (work / ".swapped").exists() and (work / "dist" / "zz").is_symlink(), real.log(v)  # the attack ran

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
