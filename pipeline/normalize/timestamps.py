"""Last-activity timestamps in the shapes vendors export, -> Datetime(us, UTC).

Accepted: ISO 8601 with `T` or space, optional fraction, `Z` / `UTC` / `+02:00` / `+0200`;
naive date-times (taken as UTC); dates; Unix epoch seconds (10 digits) or milliseconds (13).
Anything else becomes null: unknown activity, which never makes a row stale.

Speed matters here (a million rows must normalize in about the time of reading them): the common
exact shapes are parsed first with fixed formats, which polars parses on a fast path; only rows
those leave null go through the slower, general parsers (masking the rest to null makes the slow
parsers skip them).
"""

from __future__ import annotations

import polars as pl

UTC_DT = pl.Datetime("us", "UTC")
_FAST_FORMATS = ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S")


def _slow(s: pl.Expr) -> pl.Expr:
    s = s.str.replace(r"^(\d{4}-\d{2}-\d{2})[T ]", "$1 ").str.replace(
        r"\s*(?:Z|UTC|GMT|z)$", "+00:00"
    )
    with_tz = s.str.to_datetime("%Y-%m-%d %H:%M:%S%.f%z", strict=False, time_zone="UTC")
    naive = s.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False).dt.replace_time_zone("UTC")
    minutes = s.str.to_datetime("%Y-%m-%d %H:%M", strict=False).dt.replace_time_zone("UTC")
    date = (
        s.str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    )
    digits = pl.when(s.str.contains(r"^\d{9,13}$")).then(s.cast(pl.Int64, strict=False))
    epoch = (
        pl.when(s.str.len_bytes() >= 12)
        .then(digits * 1_000)  # milliseconds
        .otherwise(digits * 1_000_000)  # seconds
        .cast(pl.Datetime("us"))
        .dt.replace_time_zone("UTC")
    )
    return pl.coalesce(with_tz, naive, minutes, date, epoch).cast(UTC_DT)


def with_activity(lf: pl.LazyFrame, col: str, dtype: pl.DataType) -> pl.LazyFrame:
    """`lf` with `col` parsed to Datetime(us, UTC) (strings) or converted (temporal types)."""
    c = pl.col(col)
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            return lf.with_columns(c.dt.replace_time_zone("UTC").dt.cast_time_unit("us"))
        return lf.with_columns(c.dt.convert_time_zone("UTC").dt.cast_time_unit("us"))
    if dtype == pl.Date:
        return lf.with_columns(c.cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))
    if dtype.is_numeric():
        c = c.cast(pl.String)
    elif dtype != pl.String:
        return lf.with_columns(pl.lit(None, dtype=UTC_DT).alias(col))
    lf = lf.with_columns(c.str.strip_chars().alias("_ts_s"))
    s = pl.col("_ts_s")
    parsed = [s.str.to_datetime(_FAST_FORMATS[0], strict=False).dt.replace_time_zone("UTC")]
    lf = lf.with_columns(parsed[0].alias("_ts0"))
    for i, fmt in enumerate(_FAST_FORMATS[1:], start=1):
        rest = pl.when(pl.col(f"_ts{i - 1}").is_null()).then(s)
        lf = lf.with_columns(
            pl.coalesce(
                pl.col(f"_ts{i - 1}"),
                rest.str.to_datetime(fmt, strict=False).dt.replace_time_zone("UTC"),
            ).alias(f"_ts{i}")
        )
    last = pl.col(f"_ts{len(_FAST_FORMATS) - 1}")
    rest = pl.when(last.is_null()).then(s)
    return lf.with_columns(pl.coalesce(last, _slow(rest)).cast(UTC_DT).alias(col)).drop(
        "_ts_s", *(f"_ts{i}" for i in range(len(_FAST_FORMATS)))
    )
