"""report.html sections. Each function returns an HTML fragment; every value goes through `esc`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import polars as pl

from pipeline.outcomes import OUTCOMES, REASONS
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
    nice_ticks,
)
from pipeline.report_html.style import (
    ACCENT,
    ACCENT_2,
    CSS,
    OUTCOME_COLORS,
    UNKNOWN_COLOR,
)
from pipeline.terminal import EXIT_MEANINGS

# Nothing may load or run: a hostile value that slipped past escaping still cannot execute or
# phone home, and the browser test sees any such attempt as a CSP violation in the console.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
# Problems are what a reader opens the report for: their samples start expanded.
_OPEN_OUTCOMES = {"invalid", "rejected", "failed", "aborted"}
_SENDING_MODES = {"sync"}
# Same column widths in every sample table, so the stacked tables line up when scanned.
_SAMPLE_COLS = (
    "<colgroup>"
    + "".join(f'<col style="width:{w}%">' for w in (21, 6, 15, 13, 8, 9, 28))
    + "</colgroup>"
)


def _color(outcome: str | None) -> str:
    return OUTCOME_COLORS.get(outcome or "", UNKNOWN_COLOR)


def _badge(outcome: str | None) -> str:
    return f'<span class="badge" style="background:{_color(outcome)}">{esc(outcome or "?")}</span>'


def _when(value: Any) -> str:
    """ISO timestamps as `2026-12-04 17:37:13 UTC`; anything else verbatim."""
    if not value:
        return "–"
    try:
        moment = datetime.fromisoformat(str(value)).astimezone(UTC)
    except ValueError:
        return esc(value)
    return esc(moment.strftime("%Y-%m-%d %H:%M:%S UTC"))


def _duration(summary: Mapping[str, Any]) -> float | None:
    if isinstance(summary.get("duration_s"), int | float):
        return float(summary["duration_s"])
    try:
        start = datetime.fromisoformat(str(summary["started_at"]))
        end = datetime.fromisoformat(str(summary["finished_at"]))
    except (KeyError, ValueError):
        return None
    return (end - start).total_seconds()


def _exit_pill(code: Any) -> str:
    kind = "ok" if code == 0 else "warn" if code == 1 else "bad"
    meaning = EXIT_MEANINGS.get(code, "unknown exit code") if isinstance(code, int) else "unknown"
    return f'<span class="pill {kind}" title="{esc(meaning)}">exit {esc(code)}</span>'


def header(summary: Mapping[str, Any]) -> str:
    mode = summary.get("mode", "?")
    return (
        '<header class="top">'
        f'<h1>masivo-sync run <span class="runid">{esc(summary.get("run_id", "?"))}</span></h1>'
        f'<span class="pill" id="mode">{esc(mode)}</span>{_exit_pill(summary.get("exit_code"))}'
        "</header>"
        f'<div class="muted">{_when(summary.get("started_at"))} → '
        f"{_when(summary.get('finished_at'))} · {esc(fmt_seconds(_duration(summary)))}</div>"
    )


def banners(summary: Mapping[str, Any], table: pl.DataFrame, counts: Mapping[str, int]) -> str:
    parts: list[str] = []
    stop = summary.get("stop_reason")
    if stop:
        meaning = REASONS[stop][1] if stop in REASONS else ""
        parts.append(
            f'<div class="banner bad"><strong>The run stopped early: <code>{esc(stop)}</code>'
            f"</strong> {esc(meaning)}<br>{esc(summary.get('stop_message') or '')}</div>"
        )
    stated = summary.get("outcomes") or {}
    # summary.json and results.parquet are written together; if they disagree the reader must
    # know which numbers to trust before reading any of them.
    if summary.get("input_rows", table.height) != table.height or any(
        stated.get(name, 0) != counts[name] for name in OUTCOMES if stated
    ):
        parts.append(
            '<div class="banner warn">summary.json says '
            f"{esc(fmt_int(summary.get('input_rows')))} input rows; results.parquet holds "
            f"{esc(fmt_int(table.height))}. Headline numbers come from summary.json, breakdowns "
            "and samples from results.parquet.</div>"
        )
    return "".join(parts)


def outcome_cards(summary: Mapping[str, Any], counts: Mapping[str, int]) -> str:
    stated = summary.get("outcomes") or counts
    total = int(summary.get("input_rows", sum(counts.values())))
    cards = [
        f'<div class="card" style="border-left-color:{ACCENT}"><div class="k">input rows</div>'
        f'<div class="v" id="input-rows" data-value="{total}">{fmt_int(total)}</div>'
        '<div class="s">every row has one outcome</div></div>'
    ]
    stack = []
    for name in OUTCOMES:
        n = int(stated.get(name, 0))
        share = 100 * n / total if total else 0.0
        cards.append(
            f'<div class="card" style="border-left-color:{_color(name)}"><div class="k">{name}</div>'
            f'<div class="v" id="outcome-{name}" data-value="{n}">{fmt_int(n)}</div>'
            f'<div class="s">{share:.1f}% of rows</div></div>'
        )
        if n:
            stack.append(
                f'<span style="width:{share:.3f}%;background:{_color(name)}" '
                f'title="{name}: {fmt_int(n)}"></span>'
            )
    return (
        f'<section id="outcomes"><h2>Outcomes</h2><div class="cards">{"".join(cards)}</div>'
        f'<div class="stack">{"".join(stack)}</div></section>'
    )


def run_details(summary: Mapping[str, Any]) -> str:
    code = summary.get("exit_code")
    meaning = EXIT_MEANINGS.get(code, "unknown exit code") if isinstance(code, int) else ""
    rows: list[tuple[str, str]] = [
        ("run id", f'<span class="mono">{esc(summary.get("run_id"))}</span>'),
        ("mode", esc(summary.get("mode"))),
        ("started", _when(summary.get("started_at"))),
        ("finished", _when(summary.get("finished_at"))),
        ("duration", esc(fmt_seconds(_duration(summary)))),
        ("base URL", f'<span class="mono">{esc(summary.get("base_url", "–"))}</span>'),
        ("exit code", f"<strong>{esc(code)}</strong> {esc(meaning)}"),
    ]
    stop = summary.get("stop_reason")
    rows.append(("stop reason", f"<code>{esc(stop)}</code>" if stop else "none (ran to the end)"))
    if summary.get("stop_message"):
        rows.append(("stop message", esc(summary["stop_message"])))
    changes = summary.get("changes")
    if isinstance(changes, Mapping) and summary.get("mode") != "validate":
        rows.append(
            (
                "changes vs state",
                " · ".join(f"{esc(k)} {fmt_int(v)}" for k, v in changes.items()),
            )
        )
    if summary.get("apns_tokens_needing_conversion"):
        rows.append(
            (
                "APNs tokens",
                f"{fmt_int(summary['apns_tokens_needing_conversion'])} need conversion to FCM "
                "before Masivo can use them",
            )
        )
    reconcile = summary.get("reconcile")
    if isinstance(reconcile, Mapping):
        rows.append(
            ("reconcile", " · ".join(f"{esc(k)} {fmt_int(v)}" for k, v in reconcile.items()))
        )
    body = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    return f'<section id="run"><h2>Run</h2><dl class="meta">{body}</dl>{_inputs(summary)}</section>'


def _inputs(summary: Mapping[str, Any]) -> str:
    files = [f for f in summary.get("files") or [] if isinstance(f, Mapping)]
    if not files:
        given = ", ".join(str(p) for p in summary.get("inputs") or [])
        return f'<h3>Inputs</h3><p class="mono">{esc(given or "–")}</p>'
    delimiters = {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe"}
    rows = "".join(
        f'<tr><td class="mono wrap">{esc(f.get("path"))}</td><td>{esc(f.get("profile"))}'
        f"{'' if f.get('detected', True) else ' <span class=muted>(given)</span>'}</td>"
        f"<td>{esc(f.get('format'))}</td>"
        f"<td>{esc(delimiters.get(f.get('delimiter'), f.get('delimiter') or '–'))}</td>"
        f'<td class="num">{fmt_int(f.get("rows"))}</td></tr>'
        for f in files
    )
    return (
        "<h3>Inputs</h3><table><thead><tr><th>file</th><th>profile</th><th>format</th>"
        f'<th>delimiter</th><th class="num">rows</th></tr></thead><tbody>{rows}</tbody></table>'
    )


def reasons(table: pl.DataFrame) -> str:
    counts = data.reason_counts(table)
    if counts.is_empty():
        return '<section id="reasons"><h2>Reasons</h2><p class="empty">No input rows.</p></section>'
    total = table.height
    summary_rows = []
    for outcome, reason, n in counts.iter_rows():
        meaning = REASONS[reason][1] if reason in REASONS else "(not a documented reason code)"
        summary_rows.append(
            f"<tr><td>{_badge(outcome)}</td><td><code>{esc(reason)}</code></td>"
            f'<td>{esc(meaning)}</td><td class="num">{fmt_int(n)}</td>'
            f'<td class="num muted">{100 * n / total:.1f}%</td></tr>'
        )
    groups = data.samples(table).partition_by("outcome", "reason", as_dict=True)
    blocks = []
    for outcome, reason, n in counts.iter_rows():
        sample = groups.get((outcome, reason))
        if sample is None:
            continue
        rows = "".join(
            f'<tr><td class="mono wrap">{esc(r["source_file"])}</td>'
            f'<td class="num">{fmt_int(r["source_row"])}</td>'
            f'<td class="mono wrap">{esc(r["customer_id"])}</td>'
            f'<td class="mono">{esc(r["device_token_masked"])}</td>'
            f"<td>{esc(r['platform'])}</td><td>{esc(r['os_version'])}</td>"
            f'<td class="wrap">{esc(r["detail"])}</td></tr>'
            for r in sample.iter_rows(named=True)
        )
        shown = f"first {sample.height} of {fmt_int(n)}" if n > sample.height else fmt_int(n)
        blocks.append(
            f"<details{' open' if outcome in _OPEN_OUTCOMES else ''}>"
            f"<summary>{_badge(outcome)} <code>{esc(reason)}</code> "
            f'<span class="muted">· {shown} rows</span></summary>'
            f'<table class="samples">{_SAMPLE_COLS}<thead><tr><th>source file</th>'
            '<th class="num">row</th><th>customer id</th>'
            "<th>token (masked)</th><th>platform</th><th>osVersion</th><th>detail</th></tr>"
            f"</thead><tbody>{rows}</tbody></table></details>"
        )
    return (
        '<section id="reasons"><h2>Reasons</h2><table><thead><tr><th>outcome</th><th>reason</th>'
        '<th>meaning</th><th class="num">rows</th><th class="num">share</th></tr></thead>'
        f"<tbody>{''.join(summary_rows)}</tbody></table>"
        f"<h3>Sample rows (up to {data.SAMPLES_PER_REASON} per reason, in input order)</h3>"
        f"{''.join(blocks)}</section>"
    )


def sent(table: pl.DataFrame, summary: Mapping[str, Any]) -> str:
    title = '<section id="sent"><h2>Registered in Masivo</h2>'
    if summary.get("mode") not in _SENDING_MODES:
        return f'{title}<p class="empty">Nothing is sent in a {esc(summary.get("mode"))} run.</p></section>'
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
    if summary.get("mode") not in _SENDING_MODES and not stats and timeline is None:
        return f'{title}<p class="empty">Nothing is sent in a {esc(summary.get("mode"))} run.</p></section>'
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
    ticks = [(t / width, fmt_seconds(t)) for t in nice_ticks(span, 8) if t <= span + 1e-9]
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


def document(summary: Mapping[str, Any], table: pl.DataFrame) -> str:
    counts = data.outcome_counts(table)
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    body = "".join(
        (
            header(summary),
            banners(summary, table, counts),
            outcome_cards(summary, counts),
            run_details(summary),
            reasons(table),
            sent(table, summary),
            sending(table, summary),
        )
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>masivo-sync {esc(summary.get('mode', ''))} {esc(summary.get('run_id', ''))}"
        f"</title><style>{CSS}</style></head><body><main>{body}"
        f"<footer>Generated {generated} by masivo-sync from summary.json and results.parquet. "
        "Device tokens are masked; customer ids and details are shown as they were read."
        "</footer></main></body></html>\n"
    )
