"""Charts drawn on the server as inline SVG: no chart library, nothing to load, readable without JavaScript."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from html import escape

from markupsafe import Markup

OK_COLOUR = "#2f6f4f"
FAIL_COLOUR = "#b3261e"


def builds_bars(buckets: list[tuple[datetime, int, int]], *, title: str, width: int = 640,
                height: int = 160, narrow: bool = False, start_label: str = "",
                link: Callable[[datetime], str] | None = None) -> Markup:
    """Stacked bars per time bucket: builds that succeeded (green) under those that failed (red). The axis says
    `start_label` ... now (relative, so no timezone is shown wrong); each bar's tooltip gives its UTC hour, and
    with `link` a bar with builds links to the list of the builds it counts."""
    pad_l, pad_b, pad_t = 36, 20, 8
    plot_w, plot_h = width - pad_l - 4, height - pad_b - pad_t
    top = max([n for _, n, _ in buckets] + [1])
    bar_w = plot_w / max(len(buckets), 1)
    kind = "narrow" if narrow else "wide"
    role = "group" if link is not None else "img"  # an img's children are presentational: its links would be lost
    parts = [f'<svg class="chart {kind}" viewBox="0 0 {width} {height}" role="{role}" aria-label="{escape(title)}">'
             f'<title>{escape(title)}</title>',
             f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{width - 4}" y2="{pad_t + plot_h}" class="axis"/>',
             f'<text x="{pad_l - 4}" y="{pad_t + 10}" class="tick" text-anchor="end">{top}</text>',
             f'<text x="{pad_l - 4}" y="{pad_t + plot_h}" class="tick" text-anchor="end">0</text>']
    for i, (start, n, failed) in enumerate(buckets):
        x = pad_l + i * bar_w
        h_all = plot_h * n / top
        h_fail = plot_h * failed / top
        label = f"{start:%Y-%m-%d %H:00} UTC: {n} builds, {failed} failed"
        bars = (f'<rect x="{x + 0.5:.1f}" y="{pad_t + plot_h - h_all:.1f}" width="{max(bar_w - 1, 0.5):.1f}" '
                f'height="{h_all - h_fail:.1f}" fill="{OK_COLOUR}"/>'
                f'<rect x="{x + 0.5:.1f}" y="{pad_t + plot_h - h_fail:.1f}" width="{max(bar_w - 1, 0.5):.1f}" '
                f'height="{h_fail:.1f}" fill="{FAIL_COLOUR}"/>')
        if link is not None and n:
            # The whole column is the target (a 1-build bar is a few pixels high): a transparent hit box under it.
            hit = (f'<rect x="{x:.1f}" y="{pad_t}" width="{max(bar_w, 1):.1f}" height="{plot_h}" '
                   f'fill="transparent" class="hit"/>')
            parts.append(f'<a href="{escape(link(start))}" aria-label="{escape(label)}"><title>{escape(label)}'
                         f'</title>{hit}{bars}</a>')
        else:
            parts.append(f'<g><title>{escape(label)}</title>{bars}</g>')
    if buckets:
        parts.append(f'<text x="{pad_l}" y="{height - 4}" class="tick">{escape(start_label)}</text>')
        parts.append(f'<text x="{width - 4}" y="{height - 4}" class="tick" text-anchor="end">now</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def share_bars(rows: list[tuple[str, int]], *, total: int, title: str, width: int = 640,
               narrow: bool = False) -> Markup:
    """Horizontal bars, one per label, their length the label's share of `total`."""
    row_h = 22
    height = max(row_h * len(rows), row_h) + 4
    label_w = 130 if narrow else 170
    kind = "narrow" if narrow else "wide"
    parts = [f'<svg class="chart {kind}" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">'
             f'<title>{escape(title)}</title>']
    for i, (label, n) in enumerate(rows):
        y = 2 + i * row_h
        share = n / total if total else 0.0
        w = (width - label_w - 70) * share
        parts.append(f'<text x="0" y="{y + 15}" class="label">{escape(label)}</text>'
                     f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" fill="{FAIL_COLOUR}"/>'
                     f'<text x="{label_w + w + 6:.1f}" y="{y + 15}" class="label">{n} ({share:.0%})</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def reason_bars(rows: list[tuple[str, int]], *, total: int, title: str, link: Callable[[str], str]) -> Markup:
    """Failures by reason as an HTML list of bars: text at the page's own size (an SVG's text shrinks with the
    picture), each row a link to the failed builds it counts."""
    parts = [f'<ul class="bars" aria-label="{escape(title)}">']
    for label, n in rows:
        share = n / total if total else 0.0
        parts.append(f'<li><a href="{escape(link(label))}"><span class="bar-label">{escape(label)}</span>'
                     f'<span class="bar-track"><span class="bar" style="width: {share * 100:.1f}%"></span></span>'
                     f'<span class="bar-n">{n} ({share:.0%})</span></a></li>')
    parts.append("</ul>")
    return Markup("".join(parts))
