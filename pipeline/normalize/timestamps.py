"""Last-activity timestamps in the shapes vendors export, -> Datetime(us, UTC).

Accepted: ISO 8601 with `T` or space, optional fraction, `Z` / `UTC` / `+02:00` / `+0200`;
naive date-times (taken as UTC); dates; Unix epoch seconds (10 digits) or milliseconds (13).
Anything else becomes null: unknown activity, which never makes a row stale.

Speed matters (a million rows must normalize in about the time it takes to read them): the
file's dominant shape, guessed from a sample, is parsed with one fixed format on polars' fast
path; only the rows it leaves null go through the general parsers. Masking the other rows to null
makes those parsers skip them, so a clean column costs one fast parse.
"""

from __future__ import annotations

import polars as pl

UTC_DT = pl.Datetime("us", "UTC")
FAST_FORMATS = ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d")
SAMPLE = 1000


def _fast(s: pl.Expr, fmt: str) -> pl.Expr:
    if fmt == "%Y-%m-%d":
        return (
            s.str.to_date(fmt, strict=False, cache=False)
            .cast(pl.Datetime("us"))
            .dt.replace_time_zone("UTC")
        )
    # cache=False: activity timestamps are mostly distinct, so polars' cache only adds hashing
    return s.str.to_datetime(fmt, strict=False, time_unit="us", cache=False).dt.replace_time_zone(
        "UTC"
    )


def _general(s: pl.Expr) -> pl.Expr:
    s = (
        s.str.strip_chars()
        .str.replace(r"^(\d{4}-\d{2}-\d{2})[T ]", "$1 ")
        .str.replace(r"\s*(?:Z|UTC|GMT|z)$", "+00:00")
    )
    with_tz = s.str.to_datetime("%Y-%m-%d %H:%M:%S%.f%z", strict=False, time_zone="UTC")
    naive = s.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False).dt.replace_time_zone("UTC")
    minutes = s.str.to_datetime("%Y-%m-%d %H:%M", strict=False).dt.replace_time_zone("UTC")
    digits = pl.when(s.str.contains(r"^\d{9,13}$")).then(s.cast(pl.Int64, strict=False))
    epoch = (
        pl.when(s.str.len_bytes() >= 12)
        .then(digits * 1_000)  # milliseconds
        .otherwise(digits * 1_000_000)  # seconds
        .cast(pl.Datetime("us"))
        .dt.replace_time_zone("UTC")
    )
    return pl.coalesce(with_tz, naive, minutes, _fast(s, "%Y-%m-%d"), epoch)


def dominant_format(values: pl.Series) -> str:
    """The fast format that parses most of a sample of the column (ties: the first listed)."""
    sample = values.drop_nulls().head(SAMPLE).to_frame("s")
    if sample.is_empty():
        return FAST_FORMATS[0]
    hits = sample.select(
        [
            _fast(pl.col("s"), f).is_not_null().sum().alias(str(i))
            for i, f in enumerate(FAST_FORMATS)
        ]
    ).row(0)
    return FAST_FORMATS[max(range(len(FAST_FORMATS)), key=lambda i: (hits[i], -i))]


def activity_stages(col: str, dtype: pl.DataType, values: pl.Series) -> tuple[pl.Expr, pl.Expr]:
    """Two expressions for two consecutive with_columns stages: `_ts0`, then the final `col`.

    Split in two so normalize can run the first stage beside its other per-row work.
    """
    c = pl.col(col)
    if isinstance(dtype, pl.Datetime):
        tz = (
            c.dt.replace_time_zone("UTC")
            if dtype.time_zone is None
            else c.dt.convert_time_zone("UTC")
        )
        return tz.dt.cast_time_unit("us").alias("_ts0"), pl.col("_ts0").alias(col)
    if dtype == pl.Date:
        return c.cast(pl.Datetime("us")).dt.replace_time_zone("UTC").alias("_ts0"), pl.col(
            "_ts0"
        ).alias(col)
    if dtype.is_numeric():
        c = c.cast(pl.String)
        values = values.cast(pl.String)
    elif dtype != pl.String:
        return pl.lit(None, dtype=UTC_DT).alias("_ts0"), pl.lit(None, dtype=UTC_DT).alias(col)
    fmt = dominant_format(values)
    first = _fast(c, fmt).alias("_ts0")
    ts0 = pl.col("_ts0")
    rest = pl.when(ts0.is_null()).then(c)  # mostly null: the general parsers skip those rows
    fallbacks = [_fast(rest, f) for f in FAST_FORMATS if f != fmt]
    return first, pl.coalesce(ts0, *fallbacks, _general(rest)).cast(UTC_DT).alias(col)


def finish_activity(frame: pl.DataFrame, col: str, final: pl.Expr) -> pl.Series:
    """The final `col` (see activity_stages) from a frame holding `col` and `_ts0`.

    Only the rows the dominant format left null (a few percent) go through the fallback parsers,
    on a frame of their own; even masked, every fallback pattern would cost a pass over the whole
    column.
    """
    ts0 = frame["_ts0"].cast(UTC_DT)
    idx = ts0.is_null().arg_true()
    if len(idx) == 0:
        return ts0.alias(col)
    rest = frame.select(col, "_ts0")[idx].select(final)[col]
    return ts0.clone().scatter(idx, rest).alias(col)
