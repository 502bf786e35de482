# ruff: noqa: E501  (embedded TypeScript/TSX sources keep their natural line lengths)
"""The static scaffold of the template generator's app: Vite 6 + React 19 + TypeScript 5.7 + Tailwind v4.

Versions are pinned exactly (checked to install from npm and build on Node 20 with pnpm 10), so the
same prompt always yields the same install. Only ``src/content.ts`` carries prompt-derived content;
a refinement rewrites that file alone (plus package.json when a dependency is asked for).

The module is long because it embeds the scaffold's TypeScript, TSX, CSS and HTML sources verbatim; the
Python around them is short.
"""

from __future__ import annotations

import json
from typing import Any

CONTENT_PATH = "src/content.ts"
CONTENT_HEADER = (
    "// Page content written by previewd's template generator; a refinement rewrites only this file.\n"
    "import type { SiteContent } from './site'\n\n"
    "export const content: SiteContent = "
)

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


def scaffold_files(title: str) -> dict[str, str]:
    """The scaffold (the contract's ``templateFiles``): config, tsconfigs, index.html."""
    html_title = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return {
        "vite.config.ts": VITE_CONFIG,
        "tsconfig.json": dump_json(
            {"files": [], "references": [{"path": "./tsconfig.app.json"}, {"path": "./tsconfig.node.json"}]}
        ),
        "tsconfig.app.json": dump_json(TSCONFIG_APP),
        "tsconfig.node.json": dump_json(TSCONFIG_NODE),
        "index.html": INDEX_HTML.replace("{title}", html_title),
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


def content_ts(content: dict[str, Any]) -> str:
    """``src/content.ts`` for one content object (ASCII JSON, so any prompt text is a safe TS literal)."""
    return CONTENT_HEADER + json.dumps(content, indent=2, ensure_ascii=True) + "\n"


def parse_content_ts(text: str) -> dict[str, Any] | None:
    """The content object back from ``src/content.ts``, or None when the file is not the template's."""
    if not text.startswith(CONTENT_HEADER):
        return None
    try:
        data = json.loads(text[len(CONTENT_HEADER):])
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

SITE_TS = """\
// The shape of the page content and the accent palette (class names spelled out so Tailwind sees them).
export type SectionKind =
  | 'features'
  | 'services'
  | 'menu'
  | 'gallery'
  | 'stats'
  | 'team'
  | 'testimonials'
  | 'pricing'
  | 'faq'
  | 'contact'

export type Accent = 'blue' | 'emerald' | 'violet' | 'rose' | 'amber' | 'teal' | 'indigo' | 'orange'

export interface Item {
  title: string
  text: string
  meta: string
}

export interface Section {
  id: string
  kind: SectionKind
  heading: string
  intro: string
  items: Item[]
}

export interface SiteContent {
  title: string
  tagline: string
  hero: string
  cta: string
  accent: Accent
  dark: boolean
  sections: Section[]
  updates: string[]
}

export interface Palette {
  text: string
  button: string
  soft: string
  border: string
}

export const palettes: Record<Accent, Palette> = {
  blue: { text: 'text-blue-600', button: 'bg-blue-600 hover:bg-blue-700', soft: 'bg-blue-50', border: 'border-blue-200' },
  emerald: {
    text: 'text-emerald-600',
    button: 'bg-emerald-600 hover:bg-emerald-700',
    soft: 'bg-emerald-50',
    border: 'border-emerald-200',
  },
  violet: {
    text: 'text-violet-600',
    button: 'bg-violet-600 hover:bg-violet-700',
    soft: 'bg-violet-50',
    border: 'border-violet-200',
  },
  rose: { text: 'text-rose-600', button: 'bg-rose-600 hover:bg-rose-700', soft: 'bg-rose-50', border: 'border-rose-200' },
  amber: { text: 'text-amber-600', button: 'bg-amber-600 hover:bg-amber-700', soft: 'bg-amber-50', border: 'border-amber-200' },
  teal: { text: 'text-teal-600', button: 'bg-teal-600 hover:bg-teal-700', soft: 'bg-teal-50', border: 'border-teal-200' },
  indigo: {
    text: 'text-indigo-600',
    button: 'bg-indigo-600 hover:bg-indigo-700',
    soft: 'bg-indigo-50',
    border: 'border-indigo-200',
  },
  orange: {
    text: 'text-orange-600',
    button: 'bg-orange-600 hover:bg-orange-700',
    soft: 'bg-orange-50',
    border: 'border-orange-200',
  },
}
"""

APP_TSX = """\
import { useState, type FormEvent } from 'react'
import { palettes, type Item, type Palette, type Section, type SiteContent } from './site'

function Cards({ items, palette, dark }: { items: Item[]; palette: Palette; dark: boolean }) {
  return (
    <div className="mt-10 grid gap-6 sm:grid-cols-2 lg:grid-cols-3">
      {items.map((item) => (
        <article
          key={item.title}
          className={`rounded-2xl border p-6 shadow-sm ${dark ? 'border-slate-800 bg-slate-900' : 'border-slate-200 bg-white'}`}
        >
          {item.meta && <p className={`text-sm font-semibold ${palette.text}`}>{item.meta}</p>}
          <h3 className="mt-2 text-lg font-semibold">{item.title}</h3>
          <p className="mt-2 text-sm opacity-80">{item.text}</p>
        </article>
      ))}
    </div>
  )
}

function Pricing({ items, palette, dark }: { items: Item[]; palette: Palette; dark: boolean }) {
  return (
    <div className="mt-10 grid gap-6 md:grid-cols-3">
      {items.map((item, i) => (
        <article
          key={item.title}
          className={`rounded-2xl border p-8 ${i === 1 ? palette.border + ' border-2' : dark ? 'border-slate-800' : 'border-slate-200'}`}
        >
          <h3 className="text-lg font-semibold">{item.title}</h3>
          <p className={`mt-4 text-4xl font-bold ${palette.text}`}>{item.meta}</p>
          <p className="mt-4 text-sm opacity-80">{item.text}</p>
          <a href="#contact" className={`mt-6 inline-block rounded-lg px-4 py-2 text-sm font-semibold text-white ${palette.button}`}>
            Choose {item.title}
          </a>
        </article>
      ))}
    </div>
  )
}

function Quotes({ items, palette }: { items: Item[]; palette: Palette }) {
  return (
    <div className="mt-10 grid gap-6 md:grid-cols-3">
      {items.map((item) => (
        <figure key={item.title} className={`rounded-2xl p-6 ${palette.soft} text-slate-900`}>
          <blockquote className="text-base">&ldquo;{item.text}&rdquo;</blockquote>
          <figcaption className="mt-4 text-sm font-semibold">
            {item.title} <span className="font-normal opacity-70">{item.meta}</span>
          </figcaption>
        </figure>
      ))}
    </div>
  )
}

function Stats({ items, palette }: { items: Item[]; palette: Palette }) {
  return (
    <dl className="mt-10 grid gap-6 sm:grid-cols-3">
      {items.map((item) => (
        <div key={item.title} className="text-center">
          <dt className="text-sm opacity-70">{item.title}</dt>
          <dd className={`mt-2 text-4xl font-bold ${palette.text}`}>{item.meta}</dd>
          <dd className="mt-1 text-sm opacity-80">{item.text}</dd>
        </div>
      ))}
    </dl>
  )
}

function Faq({ items }: { items: Item[] }) {
  return (
    <div className="mt-10 space-y-4">
      {items.map((item) => (
        <details key={item.title} className="rounded-xl border border-slate-300/40 p-5">
          <summary className="cursor-pointer font-semibold">{item.title}</summary>
          <p className="mt-3 text-sm opacity-80">{item.text}</p>
        </details>
      ))}
    </div>
  )
}

function Contact({ palette, cta }: { palette: Palette; cta: string }) {
  const [sent, setSent] = useState(false)
  const onSubmit = (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault()
    setSent(true)
  }
  if (sent) {
    return <p className={`mt-8 text-lg font-semibold ${palette.text}`}>Thanks! We will be in touch shortly.</p>
  }
  return (
    <form onSubmit={onSubmit} className="mt-8 grid max-w-xl gap-4">
      <input required name="name" placeholder="Your name" className="rounded-lg border border-slate-300 px-4 py-2 text-slate-900" />
      <input required type="email" name="email" placeholder="you@example.com" className="rounded-lg border border-slate-300 px-4 py-2 text-slate-900" />
      <textarea name="message" rows={4} placeholder="How can we help?" className="rounded-lg border border-slate-300 px-4 py-2 text-slate-900" />
      <button type="submit" className={`rounded-lg px-5 py-3 font-semibold text-white ${palette.button}`}>
        {cta}
      </button>
    </form>
  )
}

function SectionBody({ section, palette, dark, cta }: { section: Section; palette: Palette; dark: boolean; cta: string }) {
  switch (section.kind) {
    case 'pricing':
      return <Pricing items={section.items} palette={palette} dark={dark} />
    case 'testimonials':
      return <Quotes items={section.items} palette={palette} />
    case 'stats':
      return <Stats items={section.items} palette={palette} />
    case 'faq':
      return <Faq items={section.items} />
    case 'contact':
      return <Contact palette={palette} cta={cta} />
    default:
      return <Cards items={section.items} palette={palette} dark={dark} />
  }
}

export default function App({ content }: { content: SiteContent }) {
  const palette = palettes[content.accent]
  const dark = content.dark
  return (
    <div className={dark ? 'min-h-screen bg-slate-950 text-slate-100' : 'min-h-screen bg-white text-slate-900'}>
      <header className="mx-auto flex max-w-6xl items-center justify-between px-6 py-6">
        <a href="#top" className="text-xl font-bold tracking-tight">
          {content.title}
        </a>
        <nav className="hidden gap-6 text-sm md:flex">
          {content.sections.map((section) => (
            <a key={section.id} href={`#${section.id}`} className="opacity-80 hover:opacity-100">
              {section.heading}
            </a>
          ))}
        </nav>
      </header>
      <main id="top">
        <section className="mx-auto max-w-6xl px-6 py-20 text-center">
          <p className={`text-sm font-semibold uppercase tracking-widest ${palette.text}`}>{content.tagline}</p>
          <h1 className="mx-auto mt-4 max-w-3xl text-4xl font-bold tracking-tight sm:text-6xl">{content.title}</h1>
          <p className="mx-auto mt-6 max-w-2xl text-lg opacity-80">{content.hero}</p>
          <a href="#contact" className={`mt-10 inline-block rounded-lg px-6 py-3 font-semibold text-white ${palette.button}`}>
            {content.cta}
          </a>
        </section>
        {content.sections.map((section) => (
          <section key={section.id} id={section.id} className="mx-auto max-w-6xl scroll-mt-8 px-6 py-16">
            <h2 className="text-3xl font-bold tracking-tight">{section.heading}</h2>
            <p className="mt-3 max-w-2xl opacity-80">{section.intro}</p>
            <SectionBody section={section} palette={palette} dark={dark} cta={content.cta} />
          </section>
        ))}
      </main>
      <footer className={`mt-16 border-t px-6 py-10 text-sm ${dark ? 'border-slate-800' : 'border-slate-200'}`}>
        <div className="mx-auto max-w-6xl">
          <p className="font-semibold">{content.title}</p>
          {content.updates.length > 0 && (
            <ul className="mt-3 space-y-1 opacity-70">
              {content.updates.map((update, i) => (
                <li key={i}>Update: {update}</li>
              ))}
            </ul>
          )}
        </div>
      </footer>
    </div>
  )
}
"""
