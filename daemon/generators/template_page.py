# ruff: noqa: E501  (embedded TypeScript/TSX sources keep their natural line lengths)
"""The React sources that render the template's page model: its types (site.ts) and the page (App.tsx).

Long because it embeds the two TypeScript sources verbatim. The page has a sticky header whose
navigation folds into a menu button below the md breakpoint (so it works at 390 px), a hero, one
block per section kind, and a footer with the contact details; it prints only what the model holds.
"""

SITE_TS = """\
// The shape of the page model (src/content.ts) and the accent palette (class names spelled out so Tailwind sees them).
export type SectionKind =
  | 'about'
  | 'features'
  | 'services'
  | 'menu'
  | 'schedule'
  | 'gallery'
  | 'stats'
  | 'team'
  | 'testimonials'
  | 'pricing'
  | 'hours'
  | 'faq'
  | 'contact'

export type Accent = 'blue' | 'emerald' | 'violet' | 'rose' | 'amber' | 'teal' | 'indigo' | 'orange'
export type Font = 'sans' | 'serif' | 'mono'

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

export interface Contact {
  email: string
  phone: string
  address: string
}

export interface SiteContent {
  schema: number
  kind: string
  title: string
  headline: string
  subheadline: string
  tagline: string
  cta: string
  ctaTarget: string
  accent: Accent
  dark: boolean
  font: Font
  contact: Contact
  sections: Section[]
}

export interface Palette {
  text: string
  textDark: string
  button: string
  soft: string
  border: string
  badge: string
}

export const fonts: Record<Font, string> = { sans: 'font-sans', serif: 'font-serif', mono: 'font-mono' }

export const palettes: Record<Accent, Palette> = {
  blue: { text: 'text-blue-600', button: 'bg-blue-600 hover:bg-blue-700', soft: 'bg-blue-50', border: 'border-blue-300', textDark: 'text-blue-400', badge: 'bg-blue-600' },
  emerald: { text: 'text-emerald-600', button: 'bg-emerald-600 hover:bg-emerald-700', soft: 'bg-emerald-50', border: 'border-emerald-300', textDark: 'text-emerald-400', badge: 'bg-emerald-600' },
  violet: { text: 'text-violet-600', button: 'bg-violet-600 hover:bg-violet-700', soft: 'bg-violet-50', border: 'border-violet-300', textDark: 'text-violet-400', badge: 'bg-violet-600' },
  rose: { text: 'text-rose-600', button: 'bg-rose-600 hover:bg-rose-700', soft: 'bg-rose-50', border: 'border-rose-300', textDark: 'text-rose-400', badge: 'bg-rose-600' },
  amber: { text: 'text-amber-700', button: 'bg-amber-700 hover:bg-amber-800', soft: 'bg-amber-50', border: 'border-amber-300', textDark: 'text-amber-400', badge: 'bg-amber-700' },
  teal: { text: 'text-teal-700', button: 'bg-teal-700 hover:bg-teal-800', soft: 'bg-teal-50', border: 'border-teal-300', textDark: 'text-teal-400', badge: 'bg-teal-700' },
  indigo: { text: 'text-indigo-600', button: 'bg-indigo-600 hover:bg-indigo-700', soft: 'bg-indigo-50', border: 'border-indigo-300', textDark: 'text-indigo-400', badge: 'bg-indigo-600' },
  orange: { text: 'text-orange-700', button: 'bg-orange-700 hover:bg-orange-800', soft: 'bg-orange-50', border: 'border-orange-300', textDark: 'text-orange-400', badge: 'bg-orange-700' },
}
"""

APP_TSX = """\
import { useState, type FormEvent } from 'react'
import { fonts, palettes, type Contact as ContactInfo, type Item, type Palette, type Section, type SiteContent } from './site'

// accent: the accent's text colour for this background (a lighter shade on dark, for contrast)
type Look = { palette: Palette; dark: boolean; accent: string }

function Cards({ items, look }: { items: Item[]; look: Look }) {
  return (
    <div className="mt-10 grid gap-6 sm:grid-cols-2 lg:grid-cols-3">
      {items.map((item) => (
        <article
          key={item.title}
          className={`rounded-2xl border p-6 shadow-sm ${look.dark ? 'border-slate-800 bg-slate-900' : 'border-slate-200 bg-white'}`}
        >
          <div className="flex items-baseline justify-between gap-4">
            <h3 className="text-lg font-semibold">{item.title}</h3>
            {item.meta && <p className={`shrink-0 text-sm font-semibold ${look.accent}`}>{item.meta}</p>}
          </div>
          {item.text && <p className="mt-2 text-sm opacity-80">{item.text}</p>}
        </article>
      ))}
    </div>
  )
}

function Pricing({ items, look }: { items: Item[]; look: Look }) {
  return (
    <div className="mt-10 grid gap-6 md:grid-cols-3">
      {items.map((item, i) => (
        <article
          key={item.title}
          className={`rounded-2xl border p-8 ${i === 1 ? look.palette.border + ' border-2' : look.dark ? 'border-slate-800' : 'border-slate-200'}`}
        >
          <h3 className="text-lg font-semibold">{item.title}</h3>
          <p className={`mt-4 text-3xl font-bold ${look.accent}`}>{item.meta}</p>
          {item.text && <p className="mt-4 text-sm opacity-80">{item.text}</p>}
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

function Stats({ items, look }: { items: Item[]; look: Look }) {
  return (
    <dl className="mt-10 grid gap-6 sm:grid-cols-3">
      {items.map((item) => (
        <div key={item.title} className="text-center">
          <dt className="text-sm opacity-70">{item.title}</dt>
          <dd className={`mt-2 text-4xl font-bold ${look.accent}`}>{item.meta}</dd>
          <dd className="mt-1 text-sm opacity-80">{item.text}</dd>
        </div>
      ))}
    </dl>
  )
}

function Table({ items, look }: { items: Item[]; look: Look }) {
  return (
    <dl className={`mt-8 max-w-2xl divide-y rounded-2xl border ${look.dark ? 'divide-slate-800 border-slate-800' : 'divide-slate-200 border-slate-200'}`}>
      {items.map((item) => (
        <div key={item.title + item.meta} className="flex flex-wrap items-baseline justify-between gap-x-6 gap-y-1 px-5 py-4">
          <dt className="font-semibold">{item.title}</dt>
          <dd className="flex gap-3">
            <span className={`font-semibold ${look.accent}`}>{item.meta}</span>
            {item.text && <span className="opacity-80">{item.text}</span>}
          </dd>
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

function Details({ contact }: { contact: ContactInfo }) {
  if (!contact.email && !contact.phone && !contact.address) {
    return null
  }
  return (
    <ul className="space-y-1">
      {contact.address && <li>{contact.address}</li>}
      {contact.phone && (
        <li>
          <a href={`tel:${contact.phone.replace(/[^+0-9]/g, '')}`} className="underline">{contact.phone}</a>
        </li>
      )}
      {contact.email && (
        <li>
          <a href={`mailto:${contact.email}`} className="underline">{contact.email}</a>
        </li>
      )}
    </ul>
  )
}

function Contact({ look, contact }: { look: Look; contact: ContactInfo }) {
  const [sent, setSent] = useState(false)
  const onSubmit = (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault()
    setSent(true)
  }
  return (
    <div className="mt-8 grid gap-10 md:grid-cols-2">
      {sent ? (
        <p className={`text-lg font-semibold ${look.accent}`}>Thanks! We will be in touch shortly.</p>
      ) : (
        <form onSubmit={onSubmit} className="grid max-w-xl gap-4">
          <label className="grid gap-1 text-sm font-medium">
            Name
            <input required name="name" autoComplete="name" className="rounded-lg border border-slate-300 bg-white px-4 py-2 text-slate-900" />
          </label>
          <label className="grid gap-1 text-sm font-medium">
            Email
            <input required type="email" name="email" autoComplete="email" className="rounded-lg border border-slate-300 bg-white px-4 py-2 text-slate-900" />
          </label>
          <label className="grid gap-1 text-sm font-medium">
            Message
            <textarea name="message" rows={4} className="rounded-lg border border-slate-300 bg-white px-4 py-2 text-slate-900" />
          </label>
          <button type="submit" className={`rounded-lg px-5 py-3 font-semibold text-white ${look.palette.button}`}>
            Send message
          </button>
        </form>
      )}
      <Details contact={contact} />
    </div>
  )
}

function SectionBody({ section, look, content }: { section: Section; look: Look; content: SiteContent }) {
  switch (section.kind) {
    case 'about':
      return section.items.length ? <Cards items={section.items} look={look} /> : null
    case 'pricing':
      return <Pricing items={section.items} look={look} />
    case 'testimonials':
      return <Quotes items={section.items} palette={look.palette} />
    case 'stats':
      return <Stats items={section.items} look={look} />
    case 'hours':
    case 'schedule':
      return <Table items={section.items} look={look} />
    case 'faq':
      return <Faq items={section.items} />
    case 'contact':
      return <Contact look={look} contact={content.contact} />
    default:
      return <Cards items={section.items} look={look} />
  }
}

function Nav({ content, look }: { content: SiteContent; look: Look }) {
  const [open, setOpen] = useState(false)
  const links = content.sections.map((section) => (
    <a key={section.id} href={`#${section.id}`} onClick={() => setOpen(false)} className="block py-2 opacity-80 hover:opacity-100 md:py-0">
      {section.heading}
    </a>
  ))
  return (
    <header className={`sticky top-0 z-10 border-b backdrop-blur ${look.dark ? 'border-slate-800 bg-slate-950/90' : 'border-slate-200 bg-white/90'}`}>
      <div className="mx-auto flex max-w-6xl items-center justify-between gap-4 px-5 py-4">
        <a href="#top" className="flex min-w-0 items-center gap-3 text-lg font-bold tracking-tight">
          <span aria-hidden="true" className={`grid h-8 w-8 shrink-0 place-items-center rounded-lg text-white ${look.palette.badge}`}>
            {content.title.slice(0, 1)}
          </span>
          <span className="truncate">{content.title}</span>
        </a>
        <nav aria-label="Sections" className="hidden gap-6 text-sm md:flex">
          {links}
        </nav>
        <button
          type="button"
          className="rounded-lg border border-current/20 px-3 py-2 text-sm font-semibold md:hidden"
          aria-expanded={open}
          aria-controls="mobile-nav"
          onClick={() => setOpen(!open)}
        >
          {open ? 'Close' : 'Menu'}
        </button>
      </div>
      {open && (
        <nav id="mobile-nav" aria-label="Sections" className="border-t border-current/10 px-5 pb-4 text-base md:hidden">
          {links}
        </nav>
      )}
    </header>
  )
}

export default function App({ content }: { content: SiteContent }) {
  const palette = palettes[content.accent]
  const look: Look = { palette, dark: content.dark, accent: content.dark ? palette.textDark : palette.text }
  const goal = content.sections.find((s) => s.kind === content.ctaTarget) ?? content.sections.find((s) => s.kind === 'contact')
  const target = `#${(goal ?? content.sections[0])?.id ?? 'top'}`
  return (
    <div className={`min-h-screen ${fonts[content.font]} ${look.dark ? 'bg-slate-950 text-slate-100' : 'bg-white text-slate-900'}`}>
      <Nav content={content} look={look} />
      <main id="top">
        <section className="mx-auto max-w-6xl px-5 py-16 text-center sm:py-24">
          <p className={`text-sm font-semibold uppercase tracking-widest ${look.accent}`}>{content.tagline}</p>
          <h1 className="mx-auto mt-4 max-w-3xl text-4xl font-bold tracking-tight sm:text-6xl">{content.headline}</h1>
          <p className="mx-auto mt-6 max-w-2xl text-lg opacity-80">{content.subheadline}</p>
          <a href={target} className={`mt-10 inline-block rounded-lg px-6 py-3 font-semibold text-white ${look.palette.button}`}>
            {content.cta}
          </a>
        </section>
        {content.sections.map((section) => (
          <section key={section.id} id={section.id} className="mx-auto max-w-6xl scroll-mt-20 px-5 py-14">
            <h2 className="text-3xl font-bold tracking-tight">{section.heading}</h2>
            {section.intro && <p className="mt-3 max-w-2xl opacity-80">{section.intro}</p>}
            <SectionBody section={section} look={look} content={content} />
          </section>
        ))}
      </main>
      <footer className={`mt-16 border-t py-10 text-sm ${look.dark ? 'border-slate-800' : 'border-slate-200'}`}>
        <div className="mx-auto flex max-w-6xl flex-col gap-4 px-5 sm:flex-row sm:justify-between">
          <p className="font-semibold">&copy; {content.title}</p>
          <Details contact={content.contact} />
        </div>
      </footer>
    </div>
  )
}
"""
