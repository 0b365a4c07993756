"""Per-distinct-value lookups for the low-cardinality columns (platform, os_version).

A million rows hold a few dozen platform spellings and a few hundred version strings. The regex
work of `platforms` and `versions` runs once per distinct value on a tiny frame; the big frame
then only does hash lookups (`replace_strict`), which is several times cheaper than regexes or a
join per row.
"""

from __future__ import annotations

import polars as pl

from pipeline.normalize.platforms import canonical_platform, is_unsupported, platform_key
from pipeline.normalize.versions import os_version_for

# platform codes used inside normalize
ANDROID, IOS, WEB, UNSUPPORTED = 0, 1, 2, 3
CODE_TO_PLATFORM = {ANDROID: "android", IOS: "ios", WEB: "web"}
_PLATFORM_TO_CODE = {"android": ANDROID, "ios": IOS, "web": WEB}


def platform_codes(values: pl.Series) -> pl.Expr:
    """Expr over `values.name`: UInt8 code (0 android, 1 ios, 2 web, 3 unsupported), null unknown."""
    table = (
        values.unique()
        .drop_nulls()
        .to_frame("raw")
        .with_columns(_k=platform_key(pl.col("raw")))
        .with_columns(
            code=pl.when(is_unsupported(pl.col("_k")))
            .then(pl.lit(UNSUPPORTED, dtype=pl.UInt8))
            .otherwise(
                canonical_platform(pl.col("_k")).replace_strict(
                    _PLATFORM_TO_CODE, default=None, return_dtype=pl.UInt8
                )
            )
        )
        .drop_nulls("code")
    )
    return pl.col(values.name).replace_strict(
        table["raw"], table["code"], default=None, return_dtype=pl.UInt8
    )


def os_lookup(
    os_values: pl.Series, plat_code: pl.Expr, api_kind: pl.Expr
) -> tuple[pl.Expr, pl.Expr]:
    """(normalized osVersion or null, invalid flag) for every row, from the distinct raw values.

    The key of a row is (index of its raw value, platform code, release/api): one string lookup
    to get the index, then an integer lookup into the precomputed results.
    """
    uniq = os_values.unique().drop_nulls()
    idx = pl.Series("i", range(len(uniq)), dtype=pl.UInt32)
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
        pl.DataFrame({"raw": uniq, "i": idx})
        .join(combos, how="cross")
        .with_columns(
            osn=os_version_for(
                pl.col("plat"),
                pl.col("raw"),
                pl.when(pl.col("api")).then(pl.lit("api")).otherwise(pl.lit("release")),
            ),
            blank=pl.col("raw").str.strip_chars() == "",
        )
    )
    table = table.with_columns(
        key=pl.col("i") * 8 + pl.col("code") * 2 + pl.col("api").cast(pl.UInt32),
        invalid=pl.col("osn").is_null() & ~pl.col("blank"),
    )
    raw_index = pl.col(os_values.name).replace_strict(
        uniq, idx, default=None, return_dtype=pl.UInt32
    )
    key = (
        raw_index * 8
        + plat_code.cast(pl.UInt32) * 2
        + (api_kind & (plat_code == ANDROID)).cast(pl.UInt32)
    )
    osn = key.replace_strict(table["key"], table["osn"], default=None, return_dtype=pl.String)
    invalid = key.replace_strict(
        table["key"], table["invalid"], default=None, return_dtype=pl.Boolean
    )
    return osn, invalid.fill_null(False)
