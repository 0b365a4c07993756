"""The report stage: the invariant, masking, spreadsheet safety, the summary contract."""

from __future__ import annotations

import json
from pathlib import Path

import fastjsonschema
import polars as pl
import pytest

from pipeline import report
from pipeline.outcomes import (
    OUTCOME_DTYPE,
    OUTCOMES,
    REASON_DTYPE,
    REASONS,
    Outcome,
    outcome_of,
    reasons_for,
)

ROOT = Path(__file__).resolve().parent.parent
SUMMARY_SCHEMA = fastjsonschema.compile(
    json.loads((ROOT / "schemas" / "summary.schema.json").read_text())
)


def work_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "row_id": [0, 1, 2, 3],
            "source_file": ["a.csv"] * 4,
            "source_row": [1, 2, 3, 4],
            "customer_id": ["c1", '=HYPERLINK("x")', "c3", "c4"],
            "device_token": ["fcmtoken:" + "A" * 140, "fcm2:" + "B" * 140, "short", None],
            "platform": ["android", "ios", "android", "web"],
            "os_version": ["34", "17.2", "33", None],
            "outcome": [None, None, "invalid", "invalid"],
            "reason": [None, None, "malformed_token", "missing_device_token"],
            "detail": [None, None, None, None],
            "change": ["new", "changed", None, None],
        }
    )


def send_results() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "row_id": [0],
            "outcome": ["succeeded"],
            "reason": ["registered"],
            "http_status": [200],
            "attempts": [1],
            "error": [None],
            "latency_ms": [3.5],
            "completed_s": [0.1],
        },
        schema=report.SEND_RESULT_SCHEMA,
    )


def test_every_reason_belongs_to_a_known_outcome() -> None:
    assert set(OUTCOMES) == {o.value for o in Outcome}
    for code, (outcome, meaning) in REASONS.items():
        assert outcome in Outcome and meaning.endswith(".") and code == code.lower()
    assert outcome_of("customer_not_found") is Outcome.REJECTED
    assert "registered" in reasons_for(Outcome.SUCCEEDED)


def test_unsent_rows_get_the_stop_reason_and_counts_add_up(tmp_path: Path) -> None:
    frame = report.apply_send_results(work_frame(), send_results())
    frame = report.mark_undecided(frame, "interrupted")
    assert frame.filter(pl.col("row_id") == 1)["outcome"].item() == "aborted"
    summary = report.build_summary(
        frame,
        meta={
            "run_id": "r1",
            "started_at": "2026-01-01T00:00:00Z",
            "finished_at": "2026-01-01T00:00:01Z",
        },
    )
    assert summary.input_rows == 4
    assert summary.outcomes == {
        "succeeded": 1,
        "skipped": 0,
        "invalid": 2,
        "rejected": 0,
        "failed": 0,
        "aborted": 1,
    }
    assert sum(summary.outcomes.values()) == summary.input_rows
    assert summary.reasons["interrupted"] == 1
    SUMMARY_SCHEMA(summary.as_dict())


def test_report_files_keep_text_columns_for_enum_decisions(tmp_path: Path) -> None:
    # normalize hands over outcome / reason as Enum columns; the files keep plain text types
    enums = {"outcome": OUTCOME_DTYPE, "reason": REASON_DTYPE}
    frame = report.apply_send_results(work_frame().cast(enums), send_results())
    frame = report.mark_undecided(frame, "interrupted")
    assert frame.schema["outcome"] == OUTCOME_DTYPE and frame.schema["reason"] == REASON_DTYPE
    meta = {"run_id": "r", "started_at": "x", "finished_at": "y"}
    summary = report.build_summary(frame, meta=meta)
    assert summary.outcomes["succeeded"] == 1 and summary.reasons["interrupted"] == 1
    report.write_report(frame, summary, tmp_path)
    results = pl.read_parquet(tmp_path / "results.parquet")
    assert results.schema["outcome"] == pl.String and results.schema["reason"] == pl.String
    assert results["reason"].to_list() == [
        "registered", "interrupted", "malformed_token", "missing_device_token",
    ]  # fmt: skip


def test_report_refuses_rows_without_outcome() -> None:
    with pytest.raises(AssertionError, match="without a valid outcome"):
        report.build_summary(
            work_frame(), meta={"run_id": "r", "started_at": "x", "finished_at": "y"}
        )


def test_report_files_mask_tokens_and_defuse_formulas(tmp_path: Path) -> None:
    frame = report.mark_undecided(
        report.apply_send_results(work_frame(), send_results()), "interrupted"
    )
    summary = report.build_summary(
        frame,
        meta={
            "run_id": "r1",
            "started_at": "2026-01-01T00:00:00Z",
            "finished_at": "2026-01-01T00:00:01Z",
        },
    )
    report.write_report(frame, summary, tmp_path)
    results = pl.read_parquet(tmp_path / "results.parquet")
    assert list(results.columns) == list(report.RESULT_COLUMNS)
    assert results.height == 4
    assert results["device_token_masked"].to_list() == ["fcmtok…AAAA", "fcm2:B…BBBB", "…", ""]
    csv_text = (tmp_path / "results.csv").read_text()
    assert "A" * 20 not in csv_text
    assert "'=HYPERLINK" in csv_text
    assert results["customer_id"][1] == '=HYPERLINK("x")'  # parquet keeps the value verbatim
    assert json.loads((tmp_path / "summary.json").read_text())["input_rows"] == 4
    assert not list(tmp_path.glob(".*.tmp"))


def test_unmask_tokens_adds_the_full_token(tmp_path: Path) -> None:
    frame = report.mark_undecided(work_frame(), "dry_run")
    table = report.results_table(frame, unmask_tokens=True)
    assert table["device_token"][0].startswith("fcmtoken:")


def test_results_table_is_in_input_order_whatever_order_the_frame_is_in() -> None:
    frame = report.mark_undecided(work_frame(), "dry_run")
    shuffled = frame[[2, 0, 3, 1]]  # e.g. after a join that does not keep the left order
    table = report.results_table(shuffled)
    assert table["source_row"].to_list() == [1, 2, 3, 4]
    assert table.equals(report.results_table(frame))
