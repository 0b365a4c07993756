"""Per-distinct-value lookups for the low-cardinality columns (platform, os_version).

A million rows hold a few dozen platform spellings and a few hundred version strings. The regex
work of `platforms` and `versions` runs once per distinct value on a tiny frame; the big frame
then only maps each value to its index (a cast to an Enum of the distinct values) and gathers the
precomputed answer, which costs a fraction of a regex or a join per row.
"""

from __future__ import annotations

import polars as pl

from pipeline.normalize.platforms import canonical_platform, is_unsupported, platform_key
from pipeline.normalize.versions import os_version_for

# platform codes used inside normalize
ANDROID, IOS, WEB, UNSUPPORTED = 0, 1, 2, 3
CODE_TO_PLATFORM = {ANDROID: "android", IOS: "ios", WEB: "web"}
_PLATFORM_TO_CODE = {"android": ANDROID, "ios": IOS, "web": WEB}
_SLOTS = 8  # key = value index * 8 + platform code * 2 + (1 if the android column holds API levels)


def index_of(col: str, distinct: pl.Series) -> pl.Expr:
    """UInt32 index of each row's value in `distinct` (unique, non-null); null when absent."""
    enum = pl.Enum(distinct.to_list())
    return pl.col(col).cast(enum, strict=False).to_physical().cast(pl.UInt32)


def take(table: pl.Series | list, idx: pl.Expr) -> pl.Expr:
    """table[idx] per row (null idx -> null)."""
    return pl.lit(pl.Series(table) if isinstance(table, list) else table).gather(idx)


def cleaned(values: pl.Series) -> pl.Expr:
    """Expr over `values.name`: trimmed, "" -> null, computed once per distinct value.

    For columns with few distinct values (device models) this is cheaper than trimming every row.
    """
    distinct = values.cast(pl.String).unique().drop_nulls()
    if distinct.is_empty():
        return pl.lit(None, dtype=pl.String)
    trimmed = distinct.str.strip_chars()
    out = trimmed.zip_with(trimmed != "", pl.Series([None], dtype=pl.String))
    return take(out, index_of(values.name, distinct))


def platform_codes(values: pl.Series) -> pl.Expr:
    """Expr over `values.name`: UInt8 code (0 android, 1 ios, 2 web, 3 unsupported), null unknown."""
    idx, table = platform_table(values)
    return take(table["code"], idx)


def platform_table(values: pl.Series) -> tuple[pl.Expr, pl.DataFrame]:
    """(index expr over `values.name`, table) for `take(table[column], index)`, per distinct value:

    code     UInt8 (0 android, 1 ios, 2 web, 3 unsupported), null unknown
    trimmed  the value without surrounding whitespace
    final    android / ios / web for those, else `trimmed` (what normalize leaves in `platform`)
    """
    distinct = values.unique().drop_nulls()
    if distinct.is_empty():
        distinct = pl.Series([""], dtype=pl.String)  # no row matches it: every index is null
    codes = (
        distinct.to_frame("raw")
        .with_columns(_k=platform_key(pl.col("raw")))
        .select(
            pl.when(is_unsupported(pl.col("_k")))
            .then(pl.lit(UNSUPPORTED, dtype=pl.UInt8))
            .otherwise(
                canonical_platform(pl.col("_k")).replace_strict(
                    _PLATFORM_TO_CODE, default=None, return_dtype=pl.UInt8
                )
            )
        )
        .to_series()
        .cast(pl.UInt8)
    )
    table = pl.DataFrame({"code": codes, "trimmed": distinct.str.strip_chars()}).with_columns(
        final=pl.when(pl.col("code") <= WEB)
        .then(take(["android", "ios", "web", None], pl.col("code")))
        .otherwise(pl.col("trimmed"))
    )
    return index_of(values.name, distinct), table


def os_lookup(
    os_values: pl.Series, plat_code: pl.Expr, api_kind: pl.Expr
) -> tuple[pl.Expr, pl.Expr]:
    """(normalized osVersion or null, invalid flag) for every row, from the distinct raw values.

    The key of a row is (index of its raw value, platform code, release/api).
    """
    osn, invalid, _ = os_lookup_trimmed(os_values, plat_code, api_kind)
    return osn, invalid


def os_lookup_trimmed(
    os_values: pl.Series, plat_code: pl.Expr, api_kind: pl.Expr
) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """os_lookup, plus the raw value without surrounding whitespace (also per distinct value)."""
    distinct = os_values.unique().drop_nulls()
    if distinct.is_empty():
        return pl.lit(None, dtype=pl.String), pl.lit(False), pl.lit(None, dtype=pl.String)
    combos = pl.DataFrame(
        {
            "code": [ANDROID, ANDROID, IOS, WEB],
            "plat": ["android", "android", "ios", "web"],
            "api": [False, True, False, False],
        },
        schema={"code": pl.UInt32, "plat": pl.String, "api": pl.Boolean},
    )
    # every (raw value, platform, release/api) combination, classified in one pass
    table = (
        pl.DataFrame(
            {"raw": distinct, "i": pl.int_range(len(distinct), dtype=pl.UInt32, eager=True)}
        )
        .join(combos, how="cross")
        .with_columns(
            osn=os_version_for(
                pl.col("plat"),
                pl.col("raw"),
                pl.when(pl.col("api")).then(pl.lit("api")).otherwise(pl.lit("release")),
            ),
            blank=pl.col("raw").str.strip_chars() == "",
        )
        .select(
            key=pl.col("i") * _SLOTS + pl.col("code") * 2 + pl.col("api").cast(pl.UInt32),
            osn=pl.col("osn"),
            invalid=pl.col("osn").is_null() & ~pl.col("blank"),
        )
    )
    # dense arrays indexed by key, so each row is one gather
    dense = (
        pl.DataFrame({"key": pl.int_range(len(distinct) * _SLOTS, dtype=pl.UInt32, eager=True)})
        .join(table, on="key", how="left", maintain_order="left")
        .with_columns(pl.col("osn").cast(pl.String), pl.col("invalid").fill_null(False))
    )
    idx = index_of(os_values.name, distinct)
    key = (
        idx * _SLOTS
        + plat_code.cast(pl.UInt32) * 2
        + (api_kind & (plat_code == ANDROID)).cast(pl.UInt32)
    )
    return (
        take(dense["osn"], key),
        take(dense["invalid"], key).fill_null(False),
        take(distinct.str.strip_chars(), idx),
    )
