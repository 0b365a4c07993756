"""Inline SVG charts: no JavaScript, no library, nothing fetched.

Inputs are already aggregated (a few hundred values at most). Every label goes through `esc`;
tooltips are native SVG <title> elements, so hovering works without a script.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# C0/C1 controls are legal in our data (that is what invalid_customer_id is about) but invisible
# or mangled in a page; show them as \xNN so the reader sees what is wrong with the value.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def esc(value: object) -> str:
    """Text (or attribute value) safe to place anywhere in the page: customer ids are hostile."""
    if value is None:
        return ""
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))
    return html.escape(text, quote=True)


def fmt_int(value: float | int | None) -> str:
    return "–" if value is None else f"{round(value):,}"


def fmt_num(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "–"
    if value >= 10_000:
        return f"{value / 1000:,.1f} s"
    return f"{fmt_num(value)} ms"


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 60:
        return f"{round(value, 1):g} s" if value < 10 else f"{value:.0f} s"
    minutes, seconds = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if minutes else f"{hours} h"


# Steps a clock reader expects on a time axis: never "every 250 s".
_TIME_STEPS = (0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600,
               7200, 10800, 21600, 43200, 86400)  # fmt: skip


def time_ticks(span: float, count: int = 8) -> list[float]:
    """Tick positions (seconds) from 0 to `span` at a round time step, at most count + 1."""
    if span <= 0:
        return [0.0]
    step = next((s for s in _TIME_STEPS if span / s <= count), _TIME_STEPS[-1])
    return [step * i for i in range(math.floor(span / step + 1e-9) + 1)]


def nice_ticks(maximum: float, count: int = 4) -> list[float]:
    """0 and up to `count` round steps (1, 2, 2.5, 5 × 10^n) covering `maximum`."""
    if maximum <= 0:
        return [0.0, 1.0]
    raw = maximum / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    top = step * math.ceil(maximum / step - 1e-9)
    return [step * i for i in range(round(top / step) + 1)]


def _tick_label(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


@dataclass(frozen=True)
class Series:
    name: str
    color: str


@dataclass(frozen=True)
class Marker:
    """A vertical rule at `fraction` (0..1) of the plot width, e.g. a percentile."""

    fraction: float
    label: str
    color: str = "#37474f"


# About the rendered width of a section, so 11px text in the SVG stays ~11px on screen.
_W, _H = 1080, 250
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 30, 18, 40


def _frame(y_ticks: list[float], y_label: str, x_label: str) -> list[str]:
    """Axes, horizontal grid lines and axis titles shared by both chart kinds."""
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    top = y_ticks[-1] or 1.0
    parts: list[str] = []
    for tick in y_ticks:
        y = _TOP + plot_h * (1 - tick / top)
        parts.append(
            f'<line class="grid" x1="{_LEFT}" x2="{_LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{esc(_tick_label(tick))}</text>"
        )
    parts.append(
        f'<text class="axis" x="12" y="{_TOP + plot_h / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 12 {_TOP + plot_h / 2:.1f})">{esc(y_label)}</text>'
        f'<text class="axis" x="{_LEFT + plot_w / 2:.1f}" y="{_H - 4}" text-anchor="middle">'
        f"{esc(x_label)}</text>"
        f'<line class="axisline" x1="{_LEFT}" x2="{_LEFT + plot_w}" y1="{_TOP + plot_h}" '
        f'y2="{_TOP + plot_h}"/>'
    )
    return parts


def _svg(parts: list[str], label: str) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" aria-label="{esc(label)}" '
        f'xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>'
    )


def column_chart(
    columns: Sequence[Sequence[float]],
    series: Sequence[Series],
    *,
    x_ticks: Sequence[tuple[float, str]],
    y_label: str,
    x_label: str,
    tooltips: Sequence[str] | None = None,
    markers: Sequence[Marker] = (),
    label: str = "",
) -> str:
    """Stacked columns: columns[i][k] is series k's value in column i.

    x_ticks are (position, text) in column units: i is column i's left edge, i + 0.5 its centre.
    """
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    highest = max((sum(column) for column in columns), default=0.0)
    y_ticks = nice_ticks(highest)
    top = y_ticks[-1] or 1.0
    parts = _frame(y_ticks, y_label, x_label)
    slot = plot_w / max(len(columns), 1)
    gap = min(2.0, slot * 0.15)
    for i, column in enumerate(columns):
        x = _LEFT + i * slot + gap / 2
        base = _TOP + plot_h
        tip = f"<title>{esc(tooltips[i])}</title>" if tooltips else ""
        for value, serie in zip(column, series, strict=True):
            if value <= 0:
                continue
            height = plot_h * value / top
            base -= height
            parts.append(
                f'<rect x="{x:.2f}" y="{base:.2f}" width="{max(slot - gap, 0.5):.2f}" '
                f'height="{height:.2f}" fill="{serie.color}">{tip}</rect>'
            )
    for position, text in x_ticks:
        x = _LEFT + position * slot
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{_TOP + plot_h + 15}" text-anchor="middle">'
            f"{esc(text)}</text>"
        )
    for n, marker in enumerate(markers):
        x = _LEFT + plot_w * min(max(marker.fraction, 0.0), 1.0)
        # Stagger labels so close percentiles (p95 next to p99) do not overprint.
        y = _TOP + 10 + 13 * (n % 3)
        # Near the right edge the label goes left of its rule instead of off the chart.
        anchor, dx = ("end", -4) if x > _LEFT + plot_w * 0.8 else ("start", 4)
        parts.append(
            f'<line class="marker" x1="{x:.1f}" x2="{x:.1f}" y1="{_TOP}" y2="{_TOP + plot_h}" '
            f'stroke="{marker.color}"/>'
            f'<text class="marker-label" x="{x + dx:.1f}" y="{y}" fill="{marker.color}" '
            f'text-anchor="{anchor}">{esc(marker.label)}</text>'
        )
    return _svg(parts, label)


def line_chart(
    xs: Sequence[float],
    lines: Sequence[tuple[Series, Sequence[float | None]]],
    *,
    x_max: float,
    y_label: str,
    x_label: str,
    x_format: Callable[[float], str] = _tick_label,
    label: str = "",
) -> str:
    """Lines over a shared time axis (seconds); a None breaks the line (an empty bucket)."""
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    highest = max((v for _, values in lines for v in values if v is not None), default=0.0)
    y_ticks = nice_ticks(highest)
    top = y_ticks[-1] or 1.0
    span = x_max or 1.0
    parts = _frame(y_ticks, y_label, x_label)
    for tick in time_ticks(span, 8):
        x = _LEFT + plot_w * tick / span
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{_TOP + plot_h + 15}" text-anchor="middle">'
            f"{esc(x_format(tick))}</text>"
        )
    for serie, values in lines:
        path: list[str] = []
        pen_up = True
        for x_value, y_value in zip(xs, values, strict=True):
            if y_value is None:
                pen_up = True
                continue
            x = _LEFT + plot_w * x_value / span
            y = _TOP + plot_h * (1 - y_value / top)
            path.append(f"{'M' if pen_up else 'L'}{x:.1f} {y:.1f}")
            pen_up = False
        if path:
            parts.append(
                f'<path d="{" ".join(path)}" fill="none" stroke="{serie.color}" '
                f'stroke-width="1.8" stroke-linejoin="round"><title>{esc(serie.name)}</title></path>'
            )
    return _svg(parts, label)


def hbar_rows(items: Sequence[tuple[str, int]], total: int, color: str | Sequence[str]) -> str:
    """Table rows with an inline bar: readable for long labels (osVersion) and copyable text.

    `color` is one colour for every bar or one per item.
    """
    peak = max((n for _, n in items), default=0) or 1
    share = total or 1
    colors = [color] * len(items) if isinstance(color, str) else list(color)
    rows = []
    for (name, count), color in zip(items, colors, strict=True):
        rows.append(
            f'<tr><td class="label">{esc(name)}</td><td class="num">{fmt_int(count)}</td>'
            f'<td class="num muted">{100 * count / share:.1f}%</td>'
            f'<td class="barcell"><span class="bar" style="width:{100 * count / peak:.1f}%;'
            f'background:{color}"></span></td></tr>'
        )
    return "".join(rows)
