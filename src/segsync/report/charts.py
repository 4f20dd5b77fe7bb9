"""Inline SVG charts, generated server-side: no JavaScript library, no fonts or images to fetch.

Three shapes cover the report: horizontal bars (sizes, per-manager counts, net changes), vertical columns
(monthly series, stacked and diverging) and heatmaps (ABC×XYZ, cohort retention). Every chart is an ``<svg
class="chart" data-chart=ID>`` with a ``<title>``, axes in ``<g class="axis">`` and marks with a ``class="mark"``
— the browser test counts those. Numbers reach a chart already formatted by the caller's formatter.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

Formatter = Callable[[float], str]

TEXT = "#1f2937"
MUTED = "#6b7280"
GRID = "#e5e7eb"
ZERO = "#9ca3af"
FONT_SIZE = 12
_CHAR_W = 6.6  # average glyph width at 12px, for label room


@dataclass
class Series:
    name: str
    color: str
    values: Sequence[float]


@dataclass
class Bar:
    label: str
    values: Sequence[float]  # one per series
    tips: Sequence[str] = ()  # formatted value per series, shown at the bar's end and on hover


@dataclass
class HeatCell:
    intensity: float | None  # 0..1; None = no cell
    lines: Sequence[str]
    tip: str = ""
    fill: str | None = None  # a fixed colour instead of the scale (e.g. the 100 % column of cohorts)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (steps of 1, 2, 2.5 or 5 × 10^n)."""
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(lo / step + 1e-9)
    last = math.ceil(hi / step - 1e-9)
    return [round(i * step, 10) for i in range(first, last + 1)]


def _open(chart_id: str, title: str, width: float, height: float) -> list[str]:
    tid = f"{chart_id}-title"
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="{escape(chart_id)}" role="img" '
        f'aria-labelledby="{tid}" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" '
        f'font-size="{FONT_SIZE}" fill="{TEXT}">',
        f'<title id="{tid}">{escape(title)}</title>',
    ]


def _text(x: float, y: float, text: str, anchor: str = "start", **attrs: str) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{escape(v)}"' for k, v in attrs.items())
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{escape(text)}</text>'


def _truncate(text: str, room: float) -> str:
    limit = max(3, int(room / _CHAR_W))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _legend(series: Sequence[Series], x: float, y: float) -> list[str]:
    out = ['<g class="legend">']
    for s in series:
        out.append(f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="10" height="10" rx="2" fill="{s.color}"/>')
        out.append(_text(x + 14, y, s.name))
        x += 14 + len(s.name) * 7.4 + 20
    out.append("</g>")
    return out


def hbar(
    chart_id: str,
    title: str,
    bars: Sequence[Bar],
    series: Sequence[Series],
    x_title: str,
    fmt: Formatter,
    *,
    width: float = 560,
    label_room: float | None = None,
    negative_color: str | None = None,
) -> Markup:
    """Horizontal bars, one row per item; with two series the second is drawn inside the first (e.g. total and
    this week). Negative values grow to the left of the zero line."""
    longest = max((len(b.label) for b in bars), default=4)
    room = label_room or min(210.0, max(60.0, longest * _CHAR_W + 10))
    value_room = 70.0
    top = 28.0 if len(series) > 1 else 8.0
    row_h, bar_h = 24.0, 16.0
    plot_h = max(1, len(bars)) * row_h
    height = top + plot_h + 44
    values = [v for b in bars for v in b.values] or [0.0]
    lo, hi = min(0.0, min(values)), max(0.0, max(values))
    ticks = nice_ticks(lo, hi, 4)
    lo, hi = min(lo, ticks[0]), max(hi, ticks[-1])
    x0, plot_w = room, width - room - value_room
    left_pad = value_room if lo < 0 else 0.0
    x0 += left_pad
    plot_w -= left_pad

    def sx(v: float) -> float:
        return x0 + (v - lo) / (hi - lo) * plot_w

    out = _open(chart_id, title, width, height)
    if len(series) > 1:
        out += _legend(series, room, 14)
    out.append('<g class="axis axis-x">')
    for tick in ticks:
        out.append(
            f'<line x1="{sx(tick):.1f}" x2="{sx(tick):.1f}" y1="{top:.1f}" y2="{top + plot_h:.1f}" stroke="{GRID}"/>'
        )
        out.append(_text(sx(tick), top + plot_h + 15, fmt(tick), "middle", fill=MUTED))
    out.append(_text(x0 + plot_w / 2, top + plot_h + 34, x_title, "middle", fill=MUTED))
    out.append("</g>")
    out.append('<g class="axis axis-y">')
    for i, bar in enumerate(bars):
        y = top + i * row_h + row_h / 2 + 4
        out.append(_text(room - 8, y, _truncate(bar.label, room - 10), "end"))
    out.append("</g>")
    zero = sx(0.0)
    for i, bar in enumerate(bars):
        y = top + i * row_h + (row_h - bar_h) / 2
        for j, value in enumerate(bar.values):
            if j >= len(series):
                break
            inset = 0.0 if j == 0 else bar_h * 0.25
            h = bar_h - 2 * inset
            x1, x2 = sorted((zero, sx(value)))
            tip = bar.tips[j] if j < len(bar.tips) else fmt(value)
            color = negative_color if value < 0 and negative_color else series[j].color
            out.append(
                f'<rect class="mark" x="{x1:.1f}" y="{y + inset:.1f}" width="{max(x2 - x1, 0.5):.1f}" '
                f'height="{h:.1f}" rx="2" fill="{color}"><title>{escape(bar.label)}: {escape(tip)}</title></rect>'
            )
        main = bar.values[0] if bar.values else 0.0
        tip = bar.tips[0] if bar.tips else fmt(main)
        if main < 0:
            out.append(_text(sx(main) - 5, y + bar_h - 4, tip, "end", fill=MUTED))
        else:
            out.append(_text(sx(main) + 5, y + bar_h - 4, tip, fill=MUTED))
    out.append(f'<line x1="{zero:.1f}" x2="{zero:.1f}" y1="{top:.1f}" y2="{top + plot_h:.1f}" stroke="{ZERO}"/>')
    out.append("</svg>")
    return Markup("".join(out))


def columns(
    chart_id: str,
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    y_title: str,
    x_title: str,
    fmt: Formatter,
    *,
    width: float = 1080,
    height: float = 300,
    tip: Formatter | None = None,
    faded: Sequence[bool] = (),
) -> Markup:
    """Stacked vertical columns per category; negative values stack downwards from the zero line."""
    tip = tip or fmt
    left, right, top, bottom = 74.0, 12.0, 30.0, 52.0
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(1, len(categories))
    ups = [sum(max(0.0, s.values[i]) for s in series) for i in range(len(categories))] or [0.0]
    downs = [sum(min(0.0, s.values[i]) for s in series) for i in range(len(categories))] or [0.0]
    lo, hi = min(0.0, min(downs)), max(0.0, max(ups))
    ticks = nice_ticks(lo, hi, 5)
    lo, hi = min(lo, ticks[0]), max(hi, ticks[-1])

    def sy(v: float) -> float:
        return top + (hi - v) / (hi - lo) * plot_h

    slot = plot_w / n
    col_w = min(42.0, slot * 0.68)
    out = _open(chart_id, title, width, height)
    out += _legend(series, left, 16)
    out.append('<g class="axis axis-y">')
    for t in ticks:
        out.append(
            f'<line x1="{left:.1f}" x2="{left + plot_w:.1f}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="{GRID}"/>'
        )
        out.append(_text(left - 6, sy(t) + 4, fmt(t), "end", fill=MUTED))
    cy = top + plot_h / 2
    out.append(
        f'<text x="14" y="{cy:.1f}" text-anchor="middle" fill="{MUTED}" transform="rotate(-90 14 {cy:.1f})">'
        f"{escape(y_title)}</text>"
    )
    out.append("</g>")
    every = max(1, math.ceil(n * 46 / plot_w))
    out.append('<g class="axis axis-x">')
    for i, cat in enumerate(categories):
        if i % every == 0 or (i == n - 1 and (n - 1) % every >= every / 2 + 0.5):
            out.append(_text(left + slot * (i + 0.5), top + plot_h + 16, cat, "middle", fill=MUTED))
    out.append(_text(left + plot_w / 2, top + plot_h + 40, x_title, "middle", fill=MUTED))
    out.append("</g>")
    for i, cat in enumerate(categories):
        x = left + slot * (i + 0.5) - col_w / 2
        up = down = 0.0
        opacity = ' fill-opacity="0.55"' if i < len(faded) and faded[i] else ""
        for s in series:
            v = s.values[i]
            if v == 0:
                continue
            base = up if v > 0 else down
            end = base + v
            y1, y2 = sorted((sy(base), sy(end)))
            out.append(
                f'<rect class="mark" x="{x:.1f}" y="{y1:.1f}" width="{col_w:.1f}" height="{max(y2 - y1, 0.5):.1f}" '
                f'fill="{s.color}"{opacity}><title>{escape(cat)} · {escape(s.name)}: {escape(tip(abs(v)))}</title>'
                "</rect>"
            )
            if v > 0:
                up = end
            else:
                down = end
    out.append(f'<line x1="{left:.1f}" x2="{left + plot_w:.1f}" y1="{sy(0):.1f}" y2="{sy(0):.1f}" stroke="{ZERO}"/>')
    out.append("</svg>")
    return Markup("".join(out))


def shade(intensity: float) -> str:
    """Light grey-blue (0) to deep blue (1)."""
    low, high = (241, 245, 249), (29, 78, 216)
    t = max(0.0, min(1.0, intensity)) ** 0.8
    r, g, b = (round(a + (z - a) * t) for a, z in zip(low, high, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def heatmap(
    chart_id: str,
    title: str,
    rows: Sequence[str],
    cols: Sequence[str],
    cells: dict[tuple[int, int], HeatCell],
    x_title: str,
    y_title: str,
    *,
    cell_w: float = 120,
    cell_h: float = 52,
    row_room: float = 150,
    legend: tuple[str, str] | None = None,
) -> Markup:
    """A grid of coloured cells with up to two lines of text each; rows down the left, columns on top."""
    two_lines = any(" — " in c for c in cols)
    left, top = row_room + 12, 62.0 if two_lines else 44.0
    width = left + cell_w * len(cols) + 8
    height = top + cell_h * len(rows) + (46 if legend else 14)
    out = _open(chart_id, title, width, height)
    out.append('<g class="axis axis-x">')
    out.append(_text(left + cell_w * len(cols) / 2, 14, x_title, "middle", fill=MUTED))
    for j, col in enumerate(cols):
        x = left + cell_w * (j + 0.5)
        head, _, hint = col.partition(" — ")
        if hint:
            out.append(_text(x, top - 24, head, "middle", font_weight="700", font_size="14"))
            out.append(_text(x, top - 9, _truncate(hint, cell_w - 4), "middle", fill=MUTED))
        else:
            out.append(_text(x, top - 9, _truncate(col, cell_w - 4), "middle", font_weight="600"))
    out.append("</g>")
    out.append('<g class="axis axis-y">')
    out.append(_text(left - 8, top - 9, _truncate(y_title, row_room), "end", fill=MUTED))
    for i, row in enumerate(rows):
        out.append(_text(left - 8, top + cell_h * (i + 0.5) + 4, _truncate(row, row_room), "end", font_weight="600"))
    out.append("</g>")
    for (i, j), cell in sorted(cells.items()):
        if cell.intensity is None:
            continue
        x, y = left + cell_w * j, top + cell_h * i
        color = cell.fill or shade(cell.intensity)
        ink = "#ffffff" if cell.fill is None and cell.intensity > 0.5 else TEXT
        out.append(
            f'<rect class="mark" x="{x + 1:.1f}" y="{y + 1:.1f}" width="{cell_w - 2:.1f}" height="{cell_h - 2:.1f}" '
            f'rx="3" fill="{color}"><title>{escape(cell.tip)}</title></rect>'
        )
        lines = list(cell.lines)
        step = 15.0
        first = y + cell_h / 2 - step * (len(lines) - 1) / 2 + 4
        for n, line in enumerate(lines):
            weight = {"font_weight": "600"} if n == 0 else {}
            out.append(_text(x + cell_w / 2, first + n * step, line, "middle", fill=ink, **weight))
    if legend:
        y = top + cell_h * len(rows) + 16
        gid = f"{chart_id}-scale"
        out.append(
            f'<defs><linearGradient id="{gid}"><stop offset="0" stop-color="{shade(0)}"/>'
            f'<stop offset="0.5" stop-color="{shade(0.5)}"/><stop offset="1" stop-color="{shade(1)}"/>'
            "</linearGradient></defs>"
        )
        out.append(
            f'<g class="legend"><rect x="{left:.1f}" y="{y:.1f}" width="160" height="10" rx="2" fill="url(#{gid})"/>'
        )
        out.append(_text(left, y + 24, legend[0], fill=MUTED))
        out.append(_text(left + 160, y + 24, legend[1], "end", fill=MUTED))
        out.append("</g>")
    out.append("</svg>")
    return Markup("".join(out))
