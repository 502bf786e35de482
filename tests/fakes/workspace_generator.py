"""A command generator emitting a pnpm workspace: a Vite app in apps/web importing two local packages
(packages/ui, packages/theme, each with its own build). The prompt picks the project: `new` (the workspace),
`ui:<text>` (a rebuild's delta: the UI package says <text>), `root:<text>` (a delta touching a root file),
`ambiguous` (a second web app), `allow-all` (a workspace file that allows every build script).
Used by tests/e2e/test_monorepo.py and bench/monorepo_rebuild.py: write GENERATOR to a file and run it.
"""

from __future__ import annotations

GENERATOR = r'''
import json, sys
req = json.load(sys.stdin)
p = req["prompt"]

def pkg(name, build=None, deps=None, dev=None, extra=None):
    d = {"name": name, "version": "0.0.0", "private": True, "type": "module"}
    if build:
        d["scripts"] = {"build": build}
    if deps:
        d["dependencies"] = deps
    if dev:
        d["devDependencies"] = dev
    d.update(extra or {})
    return json.dumps(d)

COPY = "import {mkdirSync, readFileSync, writeFileSync} from 'node:fs'; mkdirSync('dist', {recursive: true}); " \
       "writeFileSync('dist/index.js', readFileSync('src/index.js'))"
text = p.split(":", 1)[1] if p.startswith("ui:") else "Hello from the UI package"
files = {
    "package.json": pkg("demo-root"),
    "pnpm-workspace.yaml": "packages:\n  - 'apps/*'\n  - 'packages/*'\n",
    "apps/web/package.json": pkg("web", "vite build", {"@demo/ui": "workspace:*", "@demo/theme": "workspace:*"},
                                 {"vite": "6.4.6"}),
    "apps/web/index.html": '<!doctype html><html><body><div id="app"></div>'
                           '<script type="module" src="/src/main.js"></script></body></html>',
    "apps/web/src/main.js": "import {banner} from '@demo/ui'\nimport {color} from '@demo/theme'\n"
                            "document.getElementById('app').textContent = banner() + ' in ' + color\n",
    "packages/ui/package.json": pkg("@demo/ui", "node build.mjs", extra={"main": "dist/index.js"}),
    "packages/ui/build.mjs": COPY,
    "packages/ui/src/index.js": "export function banner() { return " + json.dumps(text) + " }\n",
    "packages/theme/package.json": pkg("@demo/theme", "node build.mjs", extra={"main": "dist/index.js"}),
    "packages/theme/build.mjs": COPY,
    "packages/theme/src/index.js": "export const color = 'teal'\n",
}
if p == "ambiguous":
    files["apps/admin/package.json"] = pkg("admin", "vite build", dev={"vite": "6.4.6"})
elif p == "allow-all":
    files["pnpm-workspace.yaml"] += "dangerouslyAllowAllBuilds: true\nonlyBuiltDependencies: ['*']\n"
if p.startswith("ui:"):  # a rebuild's delta: one source file of the UI package
    print(json.dumps({"delta": True, "files": [{"path": "packages/ui/src/index.js",
                                                 "content": files["packages/ui/src/index.js"]}]}))
    raise SystemExit(0)
if p.startswith("root:"):  # a rebuild's delta: a file of the root (every package may depend on it)
    print(json.dumps({"delta": True, "files": [{"path": "NOTES.md", "content": p}]}))
    raise SystemExit(0)
meta = {"tags": [], "industry_tags": [], "style_tags": [], "core_pages": {}, "components": [], "design_tokens": {},
        "rsc_path": ""}
print(json.dumps({"name": "demo", "slug": "demo", "description": "a workspace", "version": "0.1.0",
                  "author": "tests", "repository": "", "license": "MIT", "tech_stack": ["vite"], "metadata": meta,
                  "templateFiles": [], "files": [{"path": k, "content": v} for k, v in files.items()]}))
'''
