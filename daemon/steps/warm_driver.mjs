// previewd's warm bundler driver: one Vite build per command on stdin, in one Node process that keeps Rollup's
// module cache for what cannot change between rebuilds (the read-only node_modules); everything of the
// project's own is transformed again each time, so the output is the cold `vite build`'s, byte for byte.
// Commands (one line each): `build <id>`; `prime <id>` builds without writing (fills the cache, dist untouched). Answers (one line on stdout): `@@previewd-warm ready`,
// `@@previewd-warm done <id> ok <ms> <config deps as JSON>` or `@@previewd-warm done <id> failed <ms>`.
// Passed to `node --input-type=module -e`, so no file of it lies where generated code could change it.
import { register } from 'node:module';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';

const MARK = '@@previewd-warm';
const hooks = `
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  if (specifier === 'rollup' && context.parentURL && context.parentURL.includes('/node_modules/vite/')) {
    return { url: 'previewd-rollup:' + encodeURIComponent(r.url), shortCircuit: true };
  }
  return r;
}
export async function load(url, context, next) {
  if (url.startsWith('previewd-rollup:')) {
    const real = JSON.stringify(decodeURIComponent(url.slice('previewd-rollup:'.length)));
    return { format: 'module', shortCircuit: true, source:
      'import * as R from ' + real + '; export * from ' + real + ';' +
      'export async function rollup(o) { const b = await R.rollup({ ...o, cache: globalThis.__previewdCache() });' +
      ' globalThis.__previewdKeep(b.cache); return b; }' };
  }
  return next(url, context);
}`;
register('data:text/javascript,' + encodeURIComponent(hooks));

const root = process.cwd();
const nm = root + '/node_modules/';
let cache;
// Only a module read from node_modules (mounted read-only; a new install means a cold build) keeps its
// transform: a project file, a virtual module or one whose transform read a project file runs again.
const stable = (m) => {
  const ids = [m.id, ...(m.transformDependencies || [])].map((id) => id.replace(/^\0/, '').split('?')[0]);
  return ids.every((id) => id.startsWith(nm));
};
globalThis.__previewdCache = () => {
  if (!cache) return undefined;
  for (const m of cache.modules) if (!stable(m)) m.originalCode = null;
  return cache;
};
globalThis.__previewdKeep = (c) => { cache = c; };

const vite = await import(pathToFileURL(root + '/').href + 'node_modules/vite/dist/node/index.js');
const say = (line) => process.stdout.write(MARK + ' ' + line + '\n');
say('ready');
for await (const line of createInterface({ input: process.stdin })) {
  const [cmd, id] = line.trim().split(/\s+/);
  if ((cmd !== 'build' && cmd !== 'prime') || !/^[0-9A-Za-z]{1,40}$/.test(id || '')) continue;
  const t0 = Date.now();
  try {
    // The same inline config as `vite build` (vite/dist/node/cli.js), so the same resolved config and output.
    const builder = await vite.createBuilder({ root, build: cmd === 'prime' ? { write: false } : {} }, null);
    await builder.buildApp();
    const deps = builder.config.configFileDependencies || [];
    say(`done ${id} ok ${Date.now() - t0} ${JSON.stringify(deps)}`);
  } catch (err) {
    cache = undefined; // a failed build's cache is not trusted for the next
    process.stderr.write(String(err && err.stack || err) + '\n');
    say(`done ${id} failed ${Date.now() - t0}`);
  }
}
