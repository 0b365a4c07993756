"""The sending sections of report.html: what Masivo registered, throughput, latency, retries.

Only sync runs have these numbers; other modes get one line saying what would have been sent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import polars as pl

from pipeline.report_html import data
from pipeline.report_html.charts import (
    Marker,
    Series,
    column_chart,
    esc,
    fmt_int,
    fmt_ms,
    fmt_num,
    fmt_seconds,
    hbar_rows,
    line_chart,
    time_ticks,
)
from pipeline.report_html.style import ACCENT, ACCENT_2, OUTCOME_COLORS

SENDING_MODES = {"sync"}


def sent(table: pl.DataFrame, summary: Mapping[str, Any]) -> str:
    title = '<section id="sent"><h2>Registered in Masivo</h2>'
    if summary.get("mode") not in SENDING_MODES:
        return ""  # the Sending section says so once
    platforms = data.sent_by_platform(table)
    total = int(platforms["rows"].sum())
    if not total:
        return f'{title}<p class="empty">No row succeeded in this run.</p></section>'
    color = OUTCOME_COLORS["succeeded"]
    by_platform = hbar_rows(
        [(p if p is not None else "(none)", n) for p, n in platforms.iter_rows()], total, color
    )
    versions, rest_rows, rest_versions = data.sent_by_os_version(table)
    items = [
        (f"{p or '(none)'} · {v if v is not None else '(no osVersion)'}", n)
        for p, v, n in versions.iter_rows()
    ]
    if rest_rows:
        items.append((f"{rest_versions} other osVersions", rest_rows))
    head = '<thead><tr><th>{}</th><th class="num">rows</th><th class="num">share</th><th></th></tr></thead>'
    return (
        f'{title}<p class="muted">Succeeded rows: {fmt_int(total)}.</p><div class="grid2">'
        f"<div><h3>By platform</h3><table>{head.format('platform')}<tbody>{by_platform}</tbody>"
        f"</table></div><div><h3>By osVersion</h3><table>{head.format('platform · osVersion')}"
        f"<tbody>{hbar_rows(items, total, color)}</tbody></table></div></div></section>"
    )


def sending(table: pl.DataFrame, summary: Mapping[str, Any]) -> str:
    title = '<section id="sending"><h2>Sending</h2>'
    stats = summary.get("send") or {}
    timeline = data.timeline(table)
    latency = data.latency(table)
    if summary.get("mode") not in SENDING_MODES and not stats and timeline is None:
        would = (summary.get("reasons") or {}).get("dry_run", 0)
        return (
            f'{title}<p class="empty">Nothing is sent in a {esc(summary.get("mode"))} run; '
            f"{fmt_int(would)} rows would have been sent (reason <code>dry_run</code>).</p></section>"
        )
    parts = [title, _send_cards(stats, latency)]
    if timeline is not None:
        parts.append(_throughput(timeline))
    if latency is not None:
        parts.append(_latency(latency, timeline))
    parts.append(_attempts_and_status(table))
    if timeline is None and latency is None:
        parts.append('<p class="empty">No row reached Masivo in this run.</p>')
    parts.append("</section>")
    return "".join(parts)


def _card(key: str, value: str, sub: str = "", color: str = ACCENT, ident: str = "") -> str:
    attr = f' id="{ident}"' if ident else ""
    return (
        f'<div class="card" style="border-left-color:{color}"><div class="k">{esc(key)}</div>'
        f'<div class="v"{attr}>{value}</div><div class="s">{esc(sub)}</div></div>'
    )


def _send_cards(stats: Mapping[str, Any], latency: data.Latency | None) -> str:
    def num(key: str) -> float | None:
        value = stats.get(key)
        return float(value) if isinstance(value, int | float) else None

    cards = [
        _card("rows sent", fmt_int(num("sent")), "rows with a Masivo answer", ident="send-sent"),
        _card("HTTP calls", fmt_int(num("attempts")), "429 answers included"),
        _card(
            "retries",
            fmt_int(num("retries")),
            "after 5xx / timeouts / drops",
            ACCENT_2,
            "send-retries",
        ),
        _card(
            "429 answers",
            fmt_int(num("rate_limit_waits")),
            f"{fmt_int(num('rate_limit_pauses'))} run-wide pauses",
            ACCENT_2,
            "send-429",
        ),
        _card(
            "waited on 429",
            esc(fmt_seconds(num("rate_limit_wait_s"))),
            "Retry-After total",
            ACCENT_2,
        ),
        _card("token renewals", fmt_int(num("token_renewals")), "access token refreshed"),
        _card(
            "rows / s",
            esc(fmt_num(num("rows_per_s"))),
            f"over {fmt_seconds(num('elapsed_s'))} of sending",
            ident="send-rate",
        ),
    ]
    if latency is not None:
        cards += [
            _card("latency p50", esc(fmt_ms(latency.p50)), "final call per row", ident="lat-p50"),
            _card("latency p95", esc(fmt_ms(latency.p95)), "", ident="lat-p95"),
            _card(
                "latency p99",
                esc(fmt_ms(latency.p99)),
                f"max {fmt_ms(latency.max)}",
                ident="lat-p99",
            ),
        ]
    transport = stats.get("transport")
    note = f'<p class="legend">transport: {esc(transport)}</p>' if transport else ""
    return f'<div class="cards">{"".join(cards)}</div>{note}'


def _legend(series: list[Series]) -> str:
    items = "".join(f'<i style="background:{s.color}"></i>{esc(s.name)}' for s in series)
    return f'<p class="legend">{items}</p>'


def _throughput(timeline: data.Timeline) -> str:
    width = timeline.width_s
    ok = Series("succeeded", OUTCOME_COLORS["succeeded"])
    other = Series("rejected / failed", OUTCOME_COLORS["rejected"])
    frame = timeline.buckets
    columns = [
        [s / width, (r - s) / width]
        for s, r in zip(frame["succeeded"].to_list(), frame["rows"].to_list(), strict=True)
    ]
    tooltips = [
        f"{fmt_seconds(start)}–{fmt_seconds(start + width)}: {fmt_int(rows)} rows "
        f"({fmt_int(succ)} succeeded), {fmt_num(rows / width)} rows/s"
        for start, rows, succ in zip(
            frame["start_s"].to_list(),
            frame["rows"].to_list(),
            frame["succeeded"].to_list(),
            strict=True,
        )
    ]
    span = frame.height * width
    ticks = [(t / width, fmt_seconds(t)) for t in time_ticks(span, 8)]
    bucket = "second" if width == 1 else fmt_seconds(width)
    chart = column_chart(
        columns,
        [ok, other],
        x_ticks=ticks,
        y_label="rows / s",
        x_label=f"time since sending started (one column per {bucket})",
        tooltips=tooltips,
        label="throughput over the run",
    )
    return f"<h3>Throughput</h3>{chart}{_legend([ok, other])}"


def _latency(latency: data.Latency, timeline: data.Timeline | None) -> str:
    edges = latency.edges
    if latency.log_scale:
        lo, hi = math.log10(edges[0]), math.log10(edges[-1])

        def where(v: float) -> float:
            return (math.log10(v) - lo) / ((hi - lo) or 1)
    else:

        def where(v: float) -> float:
            return (v - edges[0]) / ((edges[-1] - edges[0]) or 1)

    bins = len(latency.counts)
    markers = [
        Marker(where(latency.p50), f"p50 {fmt_ms(latency.p50)}", "#1b5e20"),
        Marker(where(latency.p95), f"p95 {fmt_ms(latency.p95)}", "#e65100"),
        Marker(where(latency.p99), f"p99 {fmt_ms(latency.p99)}", "#b71c1c"),
    ]
    step = max(1, bins // 6)
    ticks = [(float(i), fmt_ms(edges[i])) for i in range(0, bins + 1, step)]
    tooltips = [
        f"{fmt_ms(edges[i])}–{fmt_ms(edges[i + 1])}: {fmt_int(n)} rows"
        for i, n in enumerate(latency.counts)
    ]
    histogram = column_chart(
        [[float(n)] for n in latency.counts],
        [Series("rows", ACCENT)],
        x_ticks=ticks,
        y_label="rows",
        x_label="latency of the final call" + (" (log scale)" if latency.log_scale else ""),
        tooltips=tooltips,
        markers=markers,
        label="latency histogram",
    )
    parts = [f"<h3>Latency ({fmt_int(latency.count)} rows)</h3>{histogram}"]
    if timeline is not None and timeline.buckets.height >= 3:
        frame = timeline.buckets
        middle = [s + timeline.width_s / 2 for s in frame["start_s"].to_list()]
        p50 = Series("p50", "#2e7d32")
        p95 = Series("p95", ACCENT_2)
        parts.append(
            "<h3>Latency over the run</h3>"
            + line_chart(
                middle,
                [(p50, frame["p50_ms"].to_list()), (p95, frame["p95_ms"].to_list())],
                x_max=frame.height * timeline.width_s,
                y_label="ms",
                x_label="time since sending started",
                x_format=fmt_seconds,
                label="latency over time",
            )
            + _legend([p50, p95])
        )
    return "".join(parts)


def _status_color(status: int) -> str:
    if 200 <= status < 300:
        return OUTCOME_COLORS["succeeded"]
    if status == 429 or status >= 500:
        return OUTCOME_COLORS["failed"]
    return OUTCOME_COLORS["rejected"]


def _attempts_and_status(table: pl.DataFrame) -> str:
    attempts = data.value_counts(table, "attempts")
    statuses = data.value_counts(table, "http_status")
    if attempts.is_empty() and statuses.is_empty():
        return ""
    total = int(attempts["rows"].sum()) if not attempts.is_empty() else 0
    head = '<thead><tr><th>{}</th><th class="num">rows</th><th class="num">share</th><th></th></tr></thead>'
    attempt_rows = hbar_rows(
        [(f"{a} call{'s' if a != 1 else ''}", n) for a, n in attempts.iter_rows()], total, ACCENT
    )
    status_total = int(statuses["rows"].sum()) if not statuses.is_empty() else 0
    status_rows = hbar_rows(
        [(f"HTTP {s}", n) for s, n in statuses.iter_rows()],
        status_total,
        [_status_color(s) for s in statuses[statuses.columns[0]].to_list()],
    )
    return (
        f'<div class="grid2"><div><h3>Calls per row</h3><table>{head.format("calls")}'
        f"<tbody>{attempt_rows}</tbody></table></div><div><h3>Final HTTP status</h3>"
        f"<table>{head.format('status')}<tbody>{status_rows}</tbody></table></div></div>"
    )
