"""Report stage: every input row joined with its decided outcome, written as files.

The report is built from the work frame (every input row, by construction) left-joined with the
send results, so "input rows = sum of outcomes" holds by construction; `write_report` checks it
anyway and refuses to write a report that would break it.

Files in the report directory (the contract; later work extends it, never breaks it):
- `summary.json`: run metadata, `input_rows`, `outcomes` (all six keys), `reasons`.
- `results.parquet` and `results.csv`: one row per input row.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from pipeline.outcomes import OUTCOME_DTYPE, OUTCOMES, REASON_DTYPE, REASONS

log = logging.getLogger("pipeline.report")

RESULT_COLUMNS: tuple[str, ...] = (
    "source_file",
    "source_row",
    "customer_id",
    "device_token_masked",
    "platform",
    "os_version",
    "outcome",
    "reason",
    "detail",
    "http_status",
    "attempts",
    "change",
    "latency_ms",
    "completed_s",
)

SEND_RESULT_SCHEMA: dict[str, pl.DataType] = {
    "row_id": pl.Int64(),
    "outcome": OUTCOME_DTYPE,
    "reason": REASON_DTYPE,
    "http_status": pl.Int64(),
    "attempts": pl.Int64(),
    "error": pl.String(),
    "latency_ms": pl.Float64(),
    "completed_s": pl.Float64(),
}

# Spreadsheets execute cells that start with these; a leading apostrophe makes them text.
_FORMULA_TRIGGERS = r"^[=+\-@\t\r]"


@dataclass
class Summary:
    """What `summary.json` holds; `as_dict()` is exactly the file's content."""

    run_id: str
    started_at: str
    finished_at: str
    mode: str
    input_rows: int
    outcomes: dict[str, int]
    reasons: dict[str, int]
    exit_code: int = 0
    stop_reason: str | None = None
    stop_message: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "run_id": self.run_id,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "mode": self.mode,
            "input_rows": self.input_rows,
            "outcomes": self.outcomes,
            "reasons": self.reasons,
            "exit_code": self.exit_code,
            "stop_reason": self.stop_reason,
            "stop_message": self.stop_message,
        }
        data.update(self.extra)
        return data


def mask_token(token: pl.Expr) -> pl.Expr:
    """`abcdef…wxyz`: enough to recognise a token in support, not enough to use it."""
    length = token.str.len_chars()
    return (
        pl.when(token.is_null() | (length == 0))
        .then(pl.lit(""))
        .when(length < 16)
        .then(pl.lit("…"))
        .otherwise(pl.concat_str(token.str.slice(0, 6), pl.lit("…"), token.str.slice(-4)))
    )


def apply_send_results(frame: pl.DataFrame, results: pl.DataFrame) -> pl.DataFrame:
    """Give each sent row the sender's outcome, reason, status and attempts."""
    if results.is_empty():
        return frame.with_columns(
            pl.lit(None, pl.Int64).alias("http_status"),
            pl.lit(None, pl.Int64).alias("attempts"),
            pl.lit(None, pl.String).alias("error"),
            pl.lit(None, pl.Float64).alias("latency_ms"),
            pl.lit(None, pl.Float64).alias("completed_s"),
        )
    joined = frame.join(
        results.rename({"outcome": "_sent_outcome", "reason": "_sent_reason"}),
        on="row_id",
        how="left",
    )
    return joined.with_columns(
        pl.coalesce("_sent_outcome", "outcome").alias("outcome"),
        pl.coalesce("_sent_reason", "reason").alias("reason"),
        pl.coalesce("error", "detail").alias("detail"),
    ).drop("_sent_outcome", "_sent_reason")


def mark_undecided(frame: pl.DataFrame, reason: str) -> pl.DataFrame:
    """Rows still without an outcome (planned but never finished) get `reason`'s outcome."""
    outcome = REASONS[reason][0].value
    undecided = pl.col("outcome").is_null()
    return frame.with_columns(
        pl.when(undecided).then(pl.lit(outcome)).otherwise(pl.col("outcome")).alias("outcome"),
        pl.when(undecided).then(pl.lit(reason)).otherwise(pl.col("reason")).alias("reason"),
    )


# Types of the report columns, the same in every mode (a validate run has no HTTP columns, but
# readers should not see them change type).
_RESULT_TYPES: dict[str, pl.DataType] = {
    "source_row": pl.Int64(),
    "http_status": pl.Int64(),
    "attempts": pl.Int64(),
    "latency_ms": pl.Float64(),
    "completed_s": pl.Float64(),
}


def results_table(frame: pl.DataFrame, *, unmask_tokens: bool = False) -> pl.DataFrame:
    """The per-row report table, in input order."""
    present = set(frame.columns)
    exprs: list[pl.Expr] = []
    for name in RESULT_COLUMNS:
        dtype = _RESULT_TYPES.get(name, pl.String())
        if name == "device_token_masked":
            exprs.append(mask_token(pl.col("device_token")).alias(name))
        elif name in present:
            exprs.append(pl.col(name).cast(dtype))
        else:
            exprs.append(pl.lit(None, dtype).alias(name))
    if unmask_tokens:
        exprs.insert(RESULT_COLUMNS.index("device_token_masked") + 1, pl.col("device_token"))
    table = frame.select(exprs)
    # rows keep their input order through every stage; sorting 10M rows copies every column
    return table if frame["row_id"].is_sorted() else table.sort(frame["row_id"])


def spreadsheet_safe(table: pl.LazyFrame) -> pl.LazyFrame:
    """Neutralise cells a spreadsheet would run as a formula (lazily: the CSV writer streams it,
    so a 10M-row report is not copied whole first)."""
    text_columns = [name for name, dtype in table.collect_schema().items() if dtype == pl.String]
    return table.with_columns(
        pl.when(pl.col(name).str.contains(_FORMULA_TRIGGERS))
        .then(pl.concat_str(pl.lit("'"), pl.col(name)))
        .otherwise(pl.col(name))
        .alias(name)
        for name in text_columns
    )


def count_outcomes(frame: pl.DataFrame) -> tuple[dict[str, int], dict[str, int]]:
    counts = frame.group_by("outcome", "reason").len()
    outcomes = dict.fromkeys(OUTCOMES, 0)
    reasons: dict[str, int] = {}
    for outcome, reason, n in counts.iter_rows():
        outcomes[outcome] = outcomes.get(outcome, 0) + n
        reasons[reason] = reasons.get(reason, 0) + n
    return outcomes, dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))


def check_complete(frame: pl.DataFrame) -> None:
    """The report's invariant: every row has a known outcome and a known reason."""
    bad = frame.filter(
        pl.col("outcome").is_null()
        | pl.col("reason").is_null()
        | ~pl.col("outcome").is_in(list(OUTCOMES))
        | ~pl.col("reason").is_in(list(REASONS))
    )
    if not bad.is_empty():
        sample = bad.select("source_file", "source_row", "outcome", "reason").head(3).to_dicts()
        raise AssertionError(
            f"{bad.height} rows reached the report without a valid outcome: {sample}"
        )


def build_summary(
    frame: pl.DataFrame, *, meta: Mapping[str, Any], extra: Mapping[str, Any] | None = None
) -> Summary:
    check_complete(frame)
    outcomes, reasons = count_outcomes(frame)
    summary = Summary(
        run_id=str(meta["run_id"]),
        started_at=str(meta["started_at"]),
        finished_at=str(meta["finished_at"]),
        mode=str(meta.get("mode", "sync")),
        input_rows=frame.height,
        outcomes=outcomes,
        reasons=reasons,
        exit_code=int(meta.get("exit_code", 0)),
        stop_reason=meta.get("stop_reason"),
        stop_message=meta.get("stop_message"),
        extra=dict(extra or {}),
    )
    if sum(summary.outcomes.values()) != summary.input_rows:
        raise AssertionError("outcome counts do not add up to the input rows")
    return summary


def write_report(
    frame: pl.DataFrame, summary: Summary, report_dir: Path, *, unmask_tokens: bool = False
) -> Path:
    """Write summary.json, results.parquet and results.csv; return the directory.

    Each file is written to a temporary name and renamed, so a reader never sees half a file.
    """
    # Reports hold customer ids and (masked) tokens: personal data, readable by the owner only.
    for directory in reversed([report_dir, *report_dir.parents]):
        if not directory.exists():
            directory.mkdir(mode=0o700, exist_ok=True)
    table = results_table(frame, unmask_tokens=unmask_tokens)
    _atomic_write(report_dir / "results.parquet", lambda p: table.write_parquet(p))
    _atomic_write(report_dir / "results.csv", lambda p: spreadsheet_safe(table.lazy()).sink_csv(p))
    body = json.dumps(summary.as_dict(), indent=2, ensure_ascii=False) + "\n"
    _atomic_write(report_dir / "summary.json", lambda p: p.write_text(body, encoding="utf-8"))
    from pipeline.report_html import write_html  # here: report_html imports this module

    try:
        write_html(report_dir, table)
    except Exception as exc:  # the HTML is a view of the files above; never lose a run over it
        log.warning("report.html could not be written: %s: %s", type(exc).__name__, exc)
    return report_dir


def status_counts(reconciled: pl.DataFrame) -> dict[str, int]:
    """Reconcile statuses and how many tokens have each."""
    counts = reconciled.group_by("status").len().sort("status")
    return dict(counts.iter_rows())


def write_reconcile(
    reconciled: pl.DataFrame, report_dir: Path, *, unmask_tokens: bool = False
) -> None:
    """reconcile.parquet / reconcile.csv: one row per source token plus one per removed token."""
    table = reconciled.with_columns(mask_token(pl.col("device_token")).alias("device_token_masked"))
    if not unmask_tokens:
        table = table.drop("device_token")
    _atomic_write(report_dir / "reconcile.parquet", lambda p: table.write_parquet(p))
    _atomic_write(
        report_dir / "reconcile.csv", lambda p: spreadsheet_safe(table.lazy()).sink_csv(p)
    )


def _atomic_write(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
