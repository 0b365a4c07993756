"""The numbers behind report.html, computed with polars expressions.

Everything here turns the per-row results table (possibly millions of rows) into small frames
(at most a few hundred rows: reasons, buckets, bins) that the page code may loop over freely.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import polars as pl

from pipeline.outcomes import OUTCOMES
from pipeline.report import RESULT_COLUMNS

SAMPLES_PER_REASON = 5
TOP_OS_VERSIONS = 20
MAX_TIME_BUCKETS = 240  # keeps the throughput SVG small however long the run was
HISTOGRAM_BINS = 30
# Display caps: a hostile or broken source can put kilobytes into one cell.
MAX_CELL_CHARS = 160

# validate / dry-run reports write these as all-null String columns (nothing was sent), so the
# dtype of results.parquet depends on the mode; cast instead of trusting it.
_DTYPES: dict[str, pl.DataType] = {
    "source_row": pl.Int64(),
    "http_status": pl.Int64(),
    "attempts": pl.Int64(),
    "latency_ms": pl.Float64(),
    "completed_s": pl.Float64(),
}
# A run of token alphabet this long is a token (FCM ~150+, APNs 64 hex) or a credential, never
# prose: keep the masked shape the rest of the report uses (first 6 … last 4).
_TOKENISH = r"([A-Za-z0-9_:\-]{6})[A-Za-z0-9_:\-]{22,}([A-Za-z0-9_:\-]{4})"
# Nice bucket widths (seconds) so the throughput axis reads "every 5 s", not "every 7 s".
# Sub-second widths only for very short runs (demo, tests), which would otherwise be 3 columns.
_BUCKET_WIDTHS = (
    0.1,
    0.2,
    0.5,
    1,
    2,
    5,
    10,
    15,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    21600,
    86400,
)


def prepare(table: pl.DataFrame) -> pl.DataFrame:
    """Exactly RESULT_COLUMNS with stable dtypes; full tokens are dropped, never rendered.

    `--unmask-tokens` adds a `device_token` column to results.parquet; selecting only the
    contract's columns leaves it out whatever else a future writer adds.
    """
    table = table.drop("device_token", strict=False)
    present = set(table.columns) & set(RESULT_COLUMNS)
    if not present:
        # Selecting only literals would broadcast them into one phantom row.
        return pl.DataFrame(schema={n: _DTYPES.get(n, pl.String()) for n in RESULT_COLUMNS})
    return table.select(
        (pl.col(name) if name in present else pl.lit(None))
        .cast(_DTYPES.get(name, pl.String()), strict=False)
        .alias(name)
        for name in RESULT_COLUMNS
    )


def _clip(name: str, limit: int = MAX_CELL_CHARS) -> pl.Expr:
    col = pl.col(name)
    return (
        pl.when(col.str.len_chars() > limit)
        .then(pl.concat_str(col.str.slice(0, limit), pl.lit("…")))
        .otherwise(col)
        .alias(name)
    )


def _outcome_rank() -> pl.Expr:
    """Outcomes in their documented order; anything unknown sorts last."""
    ranks = {name: i for i, name in enumerate(OUTCOMES)}
    return pl.col("outcome").replace_strict(ranks, default=len(OUTCOMES), return_dtype=pl.Int64)


def reason_counts(table: pl.DataFrame) -> pl.DataFrame:
    """outcome, reason, rows: outcome order, then most frequent reason first."""
    return (
        table.group_by("outcome", "reason")
        .len("rows")
        .with_columns(_outcome_rank().alias("_rank"))
        .sort(["_rank", "rows", "reason"], descending=[False, True, False], nulls_last=True)
        .drop("_rank")
    )


def outcome_counts(table: pl.DataFrame) -> dict[str, int]:
    counts = dict(table.group_by("outcome").len("rows").iter_rows())
    return {name: int(counts.get(name, 0)) for name in OUTCOMES}


def samples(table: pl.DataFrame, per_reason: int = SAMPLES_PER_REASON) -> pl.DataFrame:
    """The first rows (input order) of each (outcome, reason), display-safe."""
    first = table.filter(pl.int_range(pl.len()).over("outcome", "reason") < per_reason)
    return first.with_columns(pl.col("detail").str.replace_all(_TOKENISH, "${1}…${2}")).select(
        "outcome",
        "reason",
        _clip("source_file", 200),
        "source_row",
        _clip("customer_id"),
        "device_token_masked",
        _clip("platform", 40),
        _clip("os_version", 40),
        _clip("detail"),
    )


def sent_by_platform(table: pl.DataFrame) -> pl.DataFrame:
    """Succeeded rows per platform."""
    return (
        table.filter(pl.col("outcome") == "succeeded")
        .group_by("platform")
        .len("rows")
        .sort(["rows", "platform"], descending=[True, False], nulls_last=True)
    )


def sent_by_os_version(
    table: pl.DataFrame, top: int = TOP_OS_VERSIONS
) -> tuple[pl.DataFrame, int, int]:
    """Top (platform, os_version) pairs of succeeded rows, plus (rows, versions) of the rest.

    osVersion means different things per platform (Android API level, iOS version, browser
    version), so it is always shown with its platform.
    """
    counts = (
        table.filter(pl.col("outcome") == "succeeded")
        .group_by("platform", "os_version")
        .len("rows")
        .sort(["rows", "platform", "os_version"], descending=[True, False, False], nulls_last=True)
    )
    rest = counts.slice(top)
    return counts.head(top), int(rest["rows"].sum()), rest.height


@dataclass
class Timeline:
    """Per-time-bucket counts over the sending phase."""

    width_s: float
    buckets: pl.DataFrame  # bucket, start_s, rows, succeeded, rows_per_s, p50_ms, p95_ms
    span_s: float


def timeline(table: pl.DataFrame) -> Timeline | None:
    """Rows finished per bucket of completed_s (seconds since sending started)."""
    done = table.filter(pl.col("completed_s").is_not_null())
    if done.is_empty():
        return None
    span = float(done["completed_s"].max() or 0.0)  # type: ignore[arg-type]
    width = float(
        next(
            (
                w
                for w in _BUCKET_WIDTHS
                if span / w <= MAX_TIME_BUCKETS and (w >= 1 or span / w <= 30)
            ),
            _BUCKET_WIDTHS[-1],
        )
    )
    count = max(1, math.floor(span / width) + 1)
    per_bucket = done.group_by(
        (pl.col("completed_s") / width).floor().cast(pl.Int64).alias("bucket")
    ).agg(
        pl.len().alias("rows"),
        (pl.col("outcome") == "succeeded").sum().alias("succeeded"),
        pl.col("latency_ms").quantile(0.5, "linear").alias("p50_ms"),
        pl.col("latency_ms").quantile(0.95, "linear").alias("p95_ms"),
    )
    # Seconds in which nothing finished are real zeros (a 429 pause), not gaps to skip.
    buckets = (
        pl.DataFrame({"bucket": pl.int_range(0, count, eager=True)})
        .join(per_bucket, on="bucket", how="left")
        .with_columns(
            pl.col("rows").fill_null(0).cast(pl.Int64),
            pl.col("succeeded").fill_null(0).cast(pl.Int64),
            (pl.col("bucket") * width).alias("start_s"),
        )
        .with_columns((pl.col("rows") / width).alias("rows_per_s"))
        .sort("bucket")
    )
    return Timeline(width, buckets, span)


@dataclass
class Latency:
    count: int
    p50: float
    p95: float
    p99: float
    max: float
    mean: float
    log_scale: bool
    edges: list[float] = field(default_factory=list)  # HISTOGRAM_BINS + 1 bin edges, ms
    counts: list[int] = field(default_factory=list)


def latency(table: pl.DataFrame, bins: int = HISTOGRAM_BINS) -> Latency | None:
    """Percentiles and a histogram of the final call's latency of every sent row."""
    values = table.select(pl.col("latency_ms").drop_nulls().alias("ms"))
    if values.is_empty():
        return None
    stats = values.select(
        pl.len().alias("count"),
        pl.col("ms").quantile(0.5, "linear").alias("p50"),
        pl.col("ms").quantile(0.95, "linear").alias("p95"),
        pl.col("ms").quantile(0.99, "linear").alias("p99"),
        pl.col("ms").max().alias("max"),
        pl.col("ms").min().alias("min"),
        pl.col("ms").mean().alias("mean"),
    ).row(0, named=True)
    low, high = float(stats["min"]), float(stats["max"])
    # Latency is long-tailed (a retry after a timeout next to 20 ms answers): log bins keep
    # both the bulk and the tail visible; a narrow range reads better on a linear axis.
    log_scale = low > 0 and high / low > 20
    if log_scale:
        lo, hi = math.log10(low), math.log10(high)
        position = pl.col("ms").log10()
    else:
        lo, hi = low, high
        position = pl.col("ms")
    step = (hi - lo) / bins or 1.0
    edges = [lo + step * i for i in range(bins + 1)]
    if log_scale:
        edges = [10**e for e in edges]
    per_bin = values.group_by(
        ((position - lo) / step).floor().cast(pl.Int64).clip(0, bins - 1).alias("bin")
    ).len("rows")
    counts = (
        pl.DataFrame({"bin": pl.int_range(0, bins, eager=True)})
        .join(per_bin, on="bin", how="left")
        .sort("bin")["rows"]
        .fill_null(0)
        .to_list()
    )
    return Latency(
        count=int(stats["count"]),
        p50=float(stats["p50"]),
        p95=float(stats["p95"]),
        p99=float(stats["p99"]),
        max=high,
        mean=float(stats["mean"]),
        log_scale=log_scale,
        edges=edges,
        counts=[int(c) for c in counts],
    )


def value_counts(table: pl.DataFrame, column: str) -> pl.DataFrame:
    """column, rows over the rows that were sent (column not null), ascending by value."""
    return table.filter(pl.col(column).is_not_null()).group_by(column).len("rows").sort(column)
