"""pipeline.dedupe: latest activity wins, ties go to the later row, losers name the winner."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from pipeline.dedupe import dedupe

T = pl.Datetime("us", "UTC")


def frame(tokens, activity, outcome=None, files=None) -> pl.DataFrame:
    n = len(tokens)
    return pl.DataFrame(
        {
            "row_id": list(range(n)),
            "source_file": files or ["a.csv"] * n,
            "source_row": [i + 1 for i in range(n)],
            "device_token": tokens,
            "activity_at": activity,
            "outcome": outcome or [None] * n,
            "reason": [None if o is None else "x" for o in (outcome or [None] * n)],
            "detail": [None] * n,
        },
        schema_overrides={
            "activity_at": T,
            "outcome": pl.String,
            "reason": pl.String,
            "detail": pl.String,
        },
    )


def d(day: int) -> datetime:
    return datetime(2026, 11, day, tzinfo=UTC)


def test_latest_activity_wins() -> None:
    out = dedupe(frame(["t", "t", "t"], [d(1), d(20), d(5)]))
    assert out["outcome"].to_list() == ["skipped", None, "skipped"]
    assert out["reason"].to_list() == ["duplicate_token", None, "duplicate_token"]
    assert out["detail"].to_list() == ["a.csv row 2", None, "a.csv row 2"]


def test_ties_and_missing_activity_go_to_the_later_row() -> None:
    out = dedupe(frame(["t", "t"], [d(3), d(3)]))
    assert out["outcome"].to_list() == ["skipped", None]
    out = dedupe(frame(["t", "t", "t"], [None, None, None]))
    assert out["outcome"].to_list() == ["skipped", "skipped", None]
    out = dedupe(frame(["t", "t"], [d(3), None]))  # known activity beats unknown
    assert out["outcome"].to_list() == [None, "skipped"]


def test_decided_rows_do_not_compete() -> None:
    out = dedupe(frame(["t", "t"], [d(1), d(9)], outcome=[None, "invalid"]))
    assert out["outcome"].to_list() == [None, "invalid"]
    assert out["reason"].to_list() == [None, "x"]


def test_winner_in_another_file_is_named() -> None:
    out = dedupe(frame(["t", "t", "u"], [d(1), d(2), d(1)], files=["a.csv", "b.csv", "b.csv"]))
    assert out["detail"].to_list() == ["b.csv row 2", None, None]


def test_rows_and_columns_kept() -> None:
    df = frame(["a", "b", None, "a"], [d(1), d(1), d(1), d(1)])
    out = dedupe(df)
    assert out.columns == df.columns and out["row_id"].to_list() == [0, 1, 2, 3]


def test_input_frame_is_not_modified() -> None:
    df = frame(["t1", "t2", "t1", "t3", "t2"], [d(1), d(2), d(3), None, None])
    before = df.clone()
    out = dedupe(df)
    assert df.equals(before)
    assert out["reason"].to_list() == ["duplicate_token", None, None, None, "duplicate_token"]
    assert out["detail"].to_list() == ["a.csv row 3", None, None, None, "a.csv row 2"]
