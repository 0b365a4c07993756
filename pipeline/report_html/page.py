"""report.html sections. Each function returns an HTML fragment; every value goes through `esc`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import polars as pl

from pipeline.exits import MEANINGS as EXIT_MEANINGS
from pipeline.outcomes import OUTCOMES, REASONS
from pipeline.report_html import data, sending
from pipeline.report_html.charts import (
    esc,
    fmt_int,
    fmt_seconds,
)
from pipeline.report_html.style import (
    ACCENT,
    CSS,
    OUTCOME_COLORS,
    UNKNOWN_COLOR,
)

# Nothing may load or run: a hostile value that slipped past escaping still cannot execute or
# phone home, and the browser test sees any such attempt as a CSP violation in the console.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
# Problems are what a reader opens the report for: their samples start expanded.
_OPEN_OUTCOMES = {"invalid", "rejected", "failed", "aborted"}
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
        shown = f"first {sample.height} of {fmt_int(n)} rows" if n > sample.height else fmt_int(n)
        shown += "" if n > sample.height else " row" if n == 1 else " rows"
        blocks.append(
            f"<details{' open' if outcome in _OPEN_OUTCOMES else ''}>"
            f"<summary>{_badge(outcome)} <code>{esc(reason)}</code> "
            f'<span class="muted">· {shown}</span></summary>'
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
            sending.sent(table, summary),
            sending.sending(table, summary),
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
