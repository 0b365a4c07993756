"""Last-activity timestamps in the shapes vendors export, -> Datetime(us, UTC).

Accepted: ISO 8601 with `T` or space, optional fraction, `Z` / `UTC` / `+02:00` / `+0200`;
naive date-times (taken as UTC); dates; Unix epoch seconds (10 digits) or milliseconds (13).
Anything else becomes null: unknown activity, which never makes a row stale.
"""

from __future__ import annotations

import polars as pl

UTC_DT = pl.Datetime("us", "UTC")


def parse_activity(col: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            return col.dt.replace_time_zone("UTC").dt.cast_time_unit("us")
        return col.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    if dtype == pl.Date:
        return col.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if dtype.is_numeric():
        col = col.cast(pl.String)
    elif dtype != pl.String:
        return pl.lit(None, dtype=UTC_DT)
    s = (
        col.str.strip_chars()
        .str.replace(r"^(\d{4}-\d{2}-\d{2})[T ]", "$1 ")
        .str.replace(r"\s*(?:Z|UTC|GMT|z)$", "+00:00")
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
