"""Line charts as inline SVG, drawn on the server: no chart library, no CDN, works offline.

Pure: series of points in, an accessible `<svg>` out (a `<title>`, a `<desc>` with the numbers'
range, and a legend as text), readable in a screenshot.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from markupsafe import Markup, escape

PALETTE = ("#2456d6", "#d6452f", "#067647", "#b45309", "#7a3fd1", "#0e7490")
WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 16, 44


def line_chart(
    title: str,
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    y_min: float | None = None,
    y_max: float | None = None,
    x_label: str = "",
    y_format: str = "{:.2f}",
) -> Markup:
    """`series`: name -> [(x, y)], x increasing. The y range is the data's unless given."""
    points = [p for values in series.values() for p in values]
    if not points:
        return Markup(f'<p class="muted">{escape(title)}: no data yet.</p>')
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    low = min(ys) if y_min is None else y_min
    high = max(ys) if y_max is None else y_max
    if high == low:
        high, low = high + 0.5, low - 0.5
    x_low, x_high = min(xs), max(xs)
    if x_high == x_low:
        x_high = x_low + 1

    def sx(x: float) -> float:
        return LEFT + (x - x_low) / (x_high - x_low) * (WIDTH - LEFT - RIGHT)

    def sy(y: float) -> float:
        return TOP + (high - y) / (high - low) * (HEIGHT - TOP - BOTTOM)

    key = hashlib.sha1(title.encode()).hexdigest()[:8]  # unique ids when a page has several charts
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="t{key} d{key}">',
        f'<title id="t{key}">{escape(title)}</title>',
        f'<desc id="d{key}">{escape(_description(series, y_format))}</desc>',
        f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" height="{HEIGHT - TOP - BOTTOM}" '
        'fill="#fff" stroke="#d9dde5"/>',
    ]
    for index in range(5):
        value = low + (high - low) * index / 4
        y = sy(value)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eef1f6"/>')
        parts.append(_text(LEFT - 6, y + 4, y_format.format(value), "end"))
    parts.append(_text(LEFT, HEIGHT - 24, _number(x_low), "start"))
    parts.append(_text(WIDTH - RIGHT, HEIGHT - 24, _number(x_high), "end"))
    if x_label:
        parts.append(_text((LEFT + WIDTH - RIGHT) / 2, HEIGHT - 24, x_label, "middle"))
    legend_x = LEFT
    for index, (name, values) in enumerate(series.items()):
        color = PALETTE[index % len(PALETTE)]
        path = " ".join(f"{'M' if i == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}" for i, (x, y) in enumerate(values))
        if path:
            parts.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
            for x, y in values[-60:]:
                parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{color}"/>')
        parts.append(f'<rect x="{legend_x}" y="{HEIGHT - 14}" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{legend_x + 14}" y="{HEIGHT - 5}" font-size="12">{escape(name)}</text>')
        legend_x += 24 + 7 * len(name)
    parts.append("</svg>")
    return Markup("".join(parts))


def _text(x: float, y: float, text: str, anchor: str) -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" font-size="11" text-anchor="{anchor}">{escape(text)}</text>'


def _number(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"


def _description(series: Mapping[str, Sequence[tuple[float, float]]], y_format: str) -> str:
    lines = []
    for name, values in series.items():
        if values:
            ys = [y for _, y in values]
            low, high, last = (y_format.format(v) for v in (min(ys), max(ys), ys[-1]))
            lines.append(f"{name}: {len(values)} points from {low} to {high}, last {last}")
    return "; ".join(lines)
