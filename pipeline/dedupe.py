"""One winner per device token among the rows still eligible.

The row with the latest `activity_at` wins; rows without activity lose to rows with one; ties go
to the later row (higher row_id: later file of the run, or further down the same file, i.e. the
most recent export line). Losers become skipped / duplicate_token with `detail` naming the winner
as "<source_file> row <source_row>". Rows that already have an outcome are not considered, so an
invalid row never beats a valid one. Rows are never dropped or reordered.
"""

from __future__ import annotations

import polars as pl

__all__ = ["dedupe"]


def dedupe(frame: pl.DataFrame) -> pl.DataFrame:
    eligible = pl.col("outcome").is_null() & pl.col("device_token").is_not_null()
    winners = (
        frame.lazy()
        .filter(eligible)
        .select("device_token", "row_id", "activity_at", "source_file", "source_row")
        # nulls first, so the last row of each token has the latest activity, then the highest row_id
        .sort(["activity_at", "row_id"], nulls_last=False)
        .group_by("device_token")
        .agg(
            pl.len().alias("_n"),
            pl.col("row_id").last().alias("_win"),
            pl.col("source_file").last().alias("_wfile"),
            pl.col("source_row").last().alias("_wrow"),
        )
        .filter(pl.col("_n") > 1)
        .drop("_n")
    )
    lose = eligible & pl.col("_win").is_not_null() & (pl.col("row_id") != pl.col("_win"))
    return (
        frame.lazy()
        .join(winners, on="device_token", how="left", maintain_order="left")
        .with_columns(
            outcome=pl.when(lose).then(pl.lit("skipped")).otherwise(pl.col("outcome")),
            reason=pl.when(lose).then(pl.lit("duplicate_token")).otherwise(pl.col("reason")),
            detail=pl.when(lose)
            .then(pl.format("{} row {}", pl.col("_wfile"), pl.col("_wrow")))
            .otherwise(pl.col("detail")),
        )
        .select(frame.columns)
        .collect()
    )
