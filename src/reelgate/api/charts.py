"""The usage page's charts, drawn on the server as SVG: nothing to fetch or bundle, the
same picture for every browser, and text (model names) escaped here, once.

- ``stacked_bars``: one bar per day, stacked by series (spend per model, jobs per
  outcome), a y axis with round ticks, a legend, and a ``<title>`` tooltip on every
  segment;
- ``range_bars``: one row per model, a bar to the 50th percentile and a whisker to the
  95th (time to video).

Colours are the Okabe-Ito palette (told apart with the common colour-vision
deficiencies), then greys.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

__all__ = ["PALETTE", "nice_max", "range_bars", "stacked_bars"]

PALETTE = (
    "#56B4E9",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#0072B2",
    "#D55E00",
    "#F0E442",
    "#BBBBBB",
    "#8B6CFF",
    "#777777",
)
_FONT = 'font-family="system-ui, sans-serif" font-size="11" fill="currentColor"'
# lines in the text's colour, faint: the page's stylesheet sets it (dark or light)
_AXIS = 'stroke="currentColor" stroke-opacity="0.5"'
_GRID = 'stroke="currentColor" stroke-opacity="0.15"'


def nice_max(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 x 10^k at or above ``value`` (an axis's top)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return float(step * power)
    return 10.0 * power


def _steps(top: float) -> int:
    """Grid steps from 0 to ``top`` (a ``nice_max``) that fall on round values: 2 x 10^k
    in 4 (0.5 each), 1, 2.5 and 5 x 10^k in 5."""
    leading = top / 10.0 ** math.floor(math.log10(top))
    return 4 if round(leading, 6) == 2 else 5


def _text(x: float, y: float, body: str, anchor: str = "start", extra: str = "") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {_FONT} {extra}>'
        f"{escape(body)}</text>"
    )


def _legend(
    names: Sequence[str], colors: Sequence[str], top: float, width: float
) -> tuple[str, float]:
    """Legend swatches in rows; returns (svg, its height)."""
    parts, x, y = [], 8.0, top
    for name, color in zip(names, colors, strict=True):
        span = 22 + 6.5 * len(name)
        if x + span > width and x > 8:
            x, y = 8.0, y + 16
        parts.append(
            f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="10" height="10" fill="{color}" rx="2"/>'
        )
        parts.append(_text(x + 14, y, name))
        x += span + 10
    return "".join(parts), y - top + 16


def _frame(width: float, height: float, title: str, body: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="100%" role="img" aria-label="{escape(title)}" class="chart">'
        f"<title>{escape(title)}</title>{body}</svg>"
    )


def stacked_bars(
    title: str,
    days: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    fmt: Callable[[float], str],
    *,
    tip: Callable[[float], str] | None = None,
    colors: Sequence[str] | None = None,
    width: float = 720,
    plot_height: float = 200,
) -> str:
    """Bars per day (``days`` as "YYYY-MM-DD"), stacked in the order of ``series``
    (name, one value per day). ``fmt`` writes a value on the axis, ``tip`` in a
    segment's tooltip (``fmt`` if not given); ``colors`` one per series."""
    tip = tip or fmt
    left, right, top = 64.0, 12.0, 12.0
    plot_w = width - left - right
    totals = [sum(values[i] for _, values in series) for i in range(len(days))]
    top_value = nice_max(max(totals, default=0))
    scale = plot_height / top_value
    parts: list[str] = []
    steps = _steps(top_value)
    for tick in range(steps + 1):
        value = top_value * tick / steps
        y = top + plot_height - value * scale
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
            f"{_GRID if tick else _AXIS}/>"
        )
        parts.append(_text(left - 6, y + 4, fmt(value), "end", 'opacity="0.7"'))
    n = max(1, len(days))
    slot = plot_w / n
    bar = max(1.0, slot * 0.72)
    label_every = max(1, math.ceil(n / 10))
    colors = list(colors or [PALETTE[i % len(PALETTE)] for i in range(len(series))])
    for i, day in enumerate(days):
        x = left + i * slot + (slot - bar) / 2
        base = top + plot_height
        for (name, values), color in zip(series, colors, strict=True):
            value = values[i]
            if value <= 0:
                continue
            h = value * scale
            base -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{base:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{color}"><title>{escape(f"{day} · {name}: {tip(value)}")}</title></rect>'
            )
        last_far = i == n - 1 and (n - 1) % label_every >= label_every / 2
        if i % label_every == 0 or last_far:
            parts.append(
                _text(left + i * slot + slot / 2, top + plot_height + 14, day[5:], "middle")
            )
    if not any(totals):
        parts.append(
            _text(left + plot_w / 2, top + plot_height / 2, "nothing in this period", "middle")
        )
    legend, legend_h = _legend([name for name, _ in series], colors, top + plot_height + 34, width)
    parts.append(legend)
    return _frame(width, top + plot_height + 30 + legend_h, title, "".join(parts))


def range_bars(
    title: str,
    rows: Sequence[tuple[str, float, float, int]],
    *,
    width: float = 720,
) -> str:
    """One row per (name, p50, p95, count): a bar to p50, a whisker to p95, seconds."""
    left, right, top, row_h = 150.0, 90.0, 12.0, 26.0
    plot_w = width - left - right
    top_value = nice_max(max((p95 for _, _, p95, _ in rows), default=0))
    scale = plot_w / top_value
    height = top + row_h * max(1, len(rows)) + 24
    parts: list[str] = []
    steps = _steps(top_value)
    for tick in range(steps + 1):
        value = top_value * tick / steps
        x = left + value * scale
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{height - 20:.1f}" '
            f"{_GRID if tick else _AXIS}/>"
        )
        parts.append(_text(x, height - 6, f"{value:g} s", "middle", 'opacity="0.7"'))
    for i, (name, p50, p95, count) in enumerate(rows):
        y = top + i * row_h
        color = PALETTE[i % len(PALETTE)]
        tip = escape(f"{name}: p50 {p50:.1f} s, p95 {p95:.1f} s over {count} videos")
        label = name if len(name) <= 22 else name[:21] + "…"
        parts.append(_text(left - 8, y + 16, label, "end"))
        parts.append(
            f'<rect x="{left}" y="{y + 6:.1f}" width="{max(1.0, p50 * scale):.1f}" '
            f'height="14" fill="{color}" rx="2"><title>{tip}</title></rect>'
        )
        x95 = left + p95 * scale
        parts.append(
            f'<line x1="{left + p50 * scale:.1f}" x2="{x95:.1f}" y1="{y + 13:.1f}" '
            f'y2="{y + 13:.1f}" stroke="{color}" stroke-width="2"/>'
            f'<line x1="{x95:.1f}" x2="{x95:.1f}" y1="{y + 7:.1f}" y2="{y + 19:.1f}" '
            f'stroke="{color}" stroke-width="2"><title>{tip}</title></line>'
        )
        parts.append(_text(x95 + 6, y + 17, f"{p50:.0f} / {p95:.0f} s", extra='opacity="0.7"'))
    if not rows:
        parts.append(_text(left + plot_w / 2, top + 16, "no videos in this period", "middle"))
    return _frame(width, height, title, "".join(parts))
