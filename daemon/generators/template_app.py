
"""The static scaffold of the template generator's app: Vite 6 + React 19 + TypeScript 5.7 + Tailwind v4.

Versions are pinned exactly (checked to install from npm and build on Node 20 with pnpm 10), so the
same prompt always yields the same install. The page model (daemon/generators/page_model.py) lives in
``src/content.ts`` as JSON; the app renders it, and a refinement rewrites that file (plus the favicon and
index.html's title on a rename, and package.json when a dependency is asked for).

The module is long because it embeds the scaffold's TypeScript, TSX, CSS and HTML sources verbatim; the
Python around them is short.
"""

from __future__ import annotations

import json
from typing import Any

from daemon.generators import page_model
from daemon.generators.template_page import APP_TSX, SITE_TS

CONTENT_PATH = "src/content.ts"
FAVICON_PATH = "public/favicon.svg"
_CONTENT_TAIL = "import type { SiteContent } from './site'\n\nexport const content: SiteContent = "
CONTENT_HEADER = (
    "// The page model, written by previewd's template generator; a refinement reads it back and edits it.\n"
    + _CONTENT_TAIL
)
# The first template's header: its projects are still read (and upgraded on their next refinement).
LEGACY_HEADER = "// Page content written by previewd's template generator; a refinement rewrites only this file.\n" \
    + _CONTENT_TAIL

DEPENDENCIES = {"react": "19.1.10", "react-dom": "19.1.10"}
DEV_DEPENDENCIES = {
    "@tailwindcss/vite": "4.1.11",
    "@types/react": "19.1.17",
    "@types/react-dom": "19.1.11",
    "@vitejs/plugin-react": "4.7.0",
    "tailwindcss": "4.1.11",
    "typescript": "5.7.3",
    "vite": "6.4.6",
}
TECH_STACK = ["react", "vite", "typescript", "tailwindcss"]


def package_json(slug: str) -> dict[str, Any]:
    """The project's package.json as data."""
    return {
        "name": slug,
        "private": True,
        "version": "0.1.0",
        "type": "module",
        "scripts": {"dev": "vite", "build": "tsc -b && vite build", "preview": "vite preview"},
        "dependencies": dict(DEPENDENCIES),
        "devDependencies": dict(DEV_DEPENDENCIES),
    }


def dump_json(data: Any) -> str:
    """JSON as the template writes it: two-space indent, trailing newline."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def index_html(title: str) -> str:
    """index.html with the page's title (escaped) and its favicon."""
    html_title = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return INDEX_HTML.replace("{title}", html_title)


def scaffold_files(title: str) -> dict[str, str]:
    """The scaffold (the contract's ``templateFiles``): config, tsconfigs, index.html."""
    return {
        "vite.config.ts": VITE_CONFIG,
        "tsconfig.json": dump_json(
            {"files": [], "references": [{"path": "./tsconfig.app.json"}, {"path": "./tsconfig.node.json"}]}
        ),
        "tsconfig.app.json": dump_json(TSCONFIG_APP),
        "tsconfig.node.json": dump_json(TSCONFIG_NODE),
        "index.html": index_html(title),
        ".gitignore": "node_modules\ndist\n*.local\n",
    }


def source_files() -> dict[str, str]:
    """The app's own sources that do not depend on the prompt (``content.ts`` is added by the generator)."""
    return {
        "src/vite-env.d.ts": '/// <reference types="vite/client" />\n',
        "src/main.tsx": MAIN_TSX,
        "src/index.css": INDEX_CSS,
        "src/site.ts": SITE_TS,
        "src/App.tsx": APP_TSX,
    }


def model_files(model: dict[str, Any]) -> dict[str, str]:
    """The files the page model decides: ``src/content.ts`` and the favicon."""
    return {CONTENT_PATH: content_ts(model), FAVICON_PATH: page_model.favicon_svg(model)}


def content_ts(content: dict[str, Any]) -> str:
    """``src/content.ts`` for one content object (ASCII JSON, so any prompt text is a safe TS literal)."""
    return CONTENT_HEADER + json.dumps(content, indent=2, ensure_ascii=True) + "\n"


def parse_content_ts(text: str) -> dict[str, Any] | None:
    """The content object back from ``src/content.ts``, or None when the file is not the template's."""
    header = next((h for h in (CONTENT_HEADER, LEGACY_HEADER) if text.startswith(h)), None)
    if header is None:
        return None
    try:
        data = json.loads(text[len(header):])
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


VITE_CONFIG = """\
import { defineConfig } from 'vite'
import react from '@vitejs/plugin-react'
import tailwindcss from '@tailwindcss/vite'

export default defineConfig({
  plugins: [react(), tailwindcss()],
})
"""

_STRICT = {
    "skipLibCheck": True,
    "moduleResolution": "bundler",
    "allowImportingTsExtensions": True,
    "isolatedModules": True,
    "moduleDetection": "force",
    "noEmit": True,
    "strict": True,
    "noUnusedLocals": True,
    "noUnusedParameters": True,
    "noFallthroughCasesInSwitch": True,
    "noUncheckedSideEffectImports": True,
}
TSCONFIG_APP = {
    "compilerOptions": {
        # incremental: node_modules survives between builds, so a rebuild re-checks only what changed.
        "incremental": True,
        "tsBuildInfoFile": "./node_modules/.tmp/tsconfig.app.tsbuildinfo",
        "target": "ES2020",
        "useDefineForClassFields": True,
        "lib": ["ES2020", "DOM", "DOM.Iterable"],
        "module": "ESNext",
        "jsx": "react-jsx",
        **_STRICT,
    },
    "include": ["src"],
}
TSCONFIG_NODE = {
    "compilerOptions": {
        "incremental": True,
        "tsBuildInfoFile": "./node_modules/.tmp/tsconfig.node.tsbuildinfo",
        "target": "ES2022",
        "lib": ["ES2023"],
        "module": "ESNext",
        **_STRICT,
    },
    "include": ["vite.config.ts"],
}

INDEX_HTML = """\
<!doctype html>
<html lang="en">
  <head>
    <meta charset="UTF-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1.0" />
    <link rel="icon" type="image/svg+xml" href="/favicon.svg" />
    <title>{title}</title>
  </head>
  <body>
    <div id="root"></div>
    <script type="module" src="/src/main.tsx"></script>
  </body>
</html>
"""

INDEX_CSS = """\
@import "tailwindcss";

html {
  scroll-behavior: smooth;
}
"""

MAIN_TSX = """\
import { StrictMode } from 'react'
import { createRoot } from 'react-dom/client'
import './index.css'
import App from './App.tsx'
import { content } from './content.ts'

document.title = content.title

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App content={content} />
  </StrictMode>,
)
"""

