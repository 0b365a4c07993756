"""Per-distinct-value lookups for the low-cardinality columns (platform, os_version).

A million rows hold a few dozen platform spellings and a few hundred version strings. The regex
work of `platforms` and `versions` runs once per distinct value on a tiny frame; the big frame
then only maps each value to its index (a hash into a small exact table, see value_index) and
gathers the precomputed answer, which costs a fraction of a regex or a join per row.

The same idea the other way round for the high-cardinality columns (customer ids, tokens): the
few odd values are worked on apart and written back into the column (written_back).
"""

from __future__ import annotations

import polars as pl

from pipeline.normalize.platforms import canonical_platform, is_unsupported, platform_key
from pipeline.normalize.versions import os_versions

# platform codes used inside normalize
ANDROID, IOS, WEB, UNSUPPORTED = 0, 1, 2, 3
CODE_TO_PLATFORM = {ANDROID: "android", IOS: "ios", WEB: "web"}
_PLATFORM_TO_CODE = {"android": ANDROID, "ios": IOS, "web": WEB}
_SLOTS = 8  # key = value index * 8 + platform code * 2 + (1 if the android column holds API levels)


def index_of(col: str, distinct: pl.Series) -> pl.Expr:
    """UInt32 index of each row's value in `distinct` (unique, non-null); null when absent."""
    enum = pl.Enum(distinct.to_list())
    return pl.col(col).cast(enum, strict=False).to_physical().cast(pl.UInt32)


_HASH_SEED = 0
_MAX_SLOTS = 1 << 21  # largest hash -> index table tried (8 MB); beyond it, the Enum cast


def distinct_values(frame: pl.DataFrame, cols: list[str]) -> dict[str, pl.Series]:
    """The distinct non-null values of each of `cols` (String columns), in one parallel pass
    (a unique() per column costs ~9 ms per million rows; one after the other, they stacked up)."""
    row = frame.select(pl.col(c).unique().drop_nulls().implode() for c in cols)
    return {c: row[c][0].alias(c) for c in cols}


def value_index(values: pl.Series, distinct: pl.Series | None = None) -> tuple[pl.Expr, pl.Series]:
    """(UInt32 index of each row's value in `distinct`, null for null rows; `distinct`): the
    distinct non-null values of `values`, as an expression over the column `values.name`.

    Speed: an Enum cast looks every row up in a string hash table (~20 ms per million rows, and
    it ran once per expression that used the index); hashing the column costs ~2 ms, and
    `hash % slots` into a small table ~3 ms. The table is exact, not probabilistic: every value
    of the column is one of `distinct` (its distinct non-null values; computed when not given), and `slots` is chosen so that no two distinct values
    share a slot (checked here, on the few distinct values); when no such size is found, or two
    distinct values share a 64-bit hash, the Enum cast is used instead.
    """
    if distinct is None:
        distinct = values.unique().drop_nulls()
    col = pl.col(values.name)
    if distinct.is_empty():
        return pl.lit(None, dtype=pl.UInt32), distinct
    hashes = distinct.hash(_HASH_SEED)
    slots = _collision_free_slots(hashes)
    if slots is None:
        return index_of(values.name, distinct), distinct
    table = pl.Series([None] * slots, dtype=pl.UInt32)
    table.scatter(hashes % slots, pl.int_range(len(distinct), dtype=pl.UInt32, eager=True))
    idx = pl.lit(table).gather(col.hash(_HASH_SEED) % slots)
    # a null row hashes like some value: mask it (only when the column has nulls)
    return (pl.when(col.is_not_null()).then(idx) if values.null_count() else idx), distinct


def _collision_free_slots(hashes: pl.Series) -> int | None:
    """A table size under which `hashes` (distinct values' hashes) all land in different slots."""
    n = len(hashes)
    if hashes.n_unique() < n:
        return None
    # with m slots, n random hashes are collision-free with probability ~exp(-n^2 / 2m)
    start = min(max(64, 2 * n * n), _MAX_SLOTS)
    for slots in range(start, start + 64):
        if (hashes % slots).n_unique() == n:
            return slots
    return None


def take(table: pl.Series | list, idx: pl.Expr) -> pl.Expr:
    """table[idx] per row (null idx -> null)."""
    return pl.lit(pl.Series(table) if isinstance(table, list) else table).gather(idx)


def cleaned(values: pl.Series, distinct: pl.Series | None = None) -> pl.Expr:
    """Expr over `values.name`: trimmed, "" -> null, computed once per distinct value.

    For columns with few distinct values (device models) this is cheaper than trimming every row.
    When no value has surrounding whitespace, only "" changes: the column is kept and "" masked
    to null, which polars does on the validity bitmap alone (~1 ms per million rows, against
    ~20 ms and 16 MB of fresh views for gathering every row from the table).
    """
    values = values.cast(pl.String)
    if distinct is None:
        distinct = values.unique().drop_nulls()
    if distinct.is_empty():
        return pl.lit(None, dtype=pl.String)
    trimmed = distinct.str.strip_chars()
    col = pl.col(values.name).cast(pl.String)
    if (trimmed == distinct).all():
        return pl.when(col != "").then(col)
    idx, distinct = value_index(values, distinct)
    out = trimmed.zip_with(trimmed != "", pl.Series([None], dtype=pl.String))
    return take(out, idx)


def platform_table(
    values: pl.Series, distinct: pl.Series | None = None
) -> tuple[pl.Expr, pl.DataFrame]:
    """(index expr over `values.name`, table) for `take(table[column], index)`, per distinct value:

    code     UInt8 (0 android, 1 ios, 2 web, 3 unsupported), null unknown
    trimmed  the value without surrounding whitespace
    final    android / ios / web for those, else `trimmed` (what normalize leaves in `platform`)
    """
    idx, distinct = value_index(values, distinct)
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
    return idx, table


def os_key(idx: pl.Expr, plat_code: pl.Expr, api_kind: pl.Expr) -> pl.Expr:
    """Row key into `os_table`'s table: (os value index, platform code, android column holds API
    levels). An unknown platform (null code) shares the slot of an unsupported one: neither gets
    an osVersion or an invalid flag. Null when the os value is null."""
    code = plat_code.fill_null(UNSUPPORTED).cast(pl.UInt32)
    api = (api_kind.fill_null(False) & (code == ANDROID)).cast(pl.UInt32)
    return idx * _SLOTS + code * 2 + api


def os_table(
    os_values: pl.Series, distinct: pl.Series | None = None
) -> tuple[pl.Expr, pl.DataFrame, pl.Series]:
    """(index expr over `os_values.name`, table, trimmed): the distinct raw values classified once
    for every platform, as a dense table indexed by `os_key`:

    osn      normalized osVersion, or null when not understood
    invalid  the value is neither understood nor blank
    out      what normalize leaves in os_version: osn, else the trimmed raw value ("" -> null)
    api      the platform is android and osn is set (android_version_kind becomes "api")

    `trimmed` is the distinct raw values without surrounding whitespace, by value index.
    """
    idx, distinct = value_index(os_values, distinct)
    if distinct.is_empty():
        distinct = pl.Series([""], dtype=pl.String)  # no row matches it: every index is null
    combos = pl.DataFrame(
        {
            "code": [ANDROID, ANDROID, IOS, WEB],
            "plat": ["android", "android", "ios", "web"],
            "api": [False, True, False, False],
        },
        schema={"code": pl.UInt32, "plat": pl.String, "api": pl.Boolean},
    )
    # every (raw value, platform, release/api) combination, classified in one pass
    pairs = (
        pl.DataFrame(
            {"raw": distinct, "i": pl.int_range(len(distinct), dtype=pl.UInt32, eager=True)}
        )
        .join(combos, how="cross")
        .with_columns(
            platform=pl.col("plat"),
            kind=pl.when(pl.col("api")).then(pl.lit("api")).otherwise(pl.lit("release")),
        )
    )
    table = pairs.with_columns(
        osn=os_versions(pairs), blank=pl.col("raw").str.strip_chars() == ""
    ).select(
        key=pl.col("i") * _SLOTS + pl.col("code") * 2 + pl.col("api").cast(pl.UInt32),
        osn=pl.col("osn"),
        invalid=pl.col("osn").is_null() & ~pl.col("blank"),
        api=(pl.col("code") == ANDROID) & pl.col("osn").is_not_null(),
    )
    trimmed = distinct.str.strip_chars()
    # dense arrays indexed by key, so each row is one gather
    dense = (
        pl.DataFrame({"key": pl.int_range(len(distinct) * _SLOTS, dtype=pl.UInt32, eager=True)})
        .join(table, on="key", how="left", maintain_order="left")
        .with_columns(
            pl.col("osn").cast(pl.String),
            pl.col("invalid").fill_null(False),
            pl.col("api").fill_null(False),
            _t=take(trimmed, pl.col("key") // _SLOTS),
        )
        .with_columns(out=pl.coalesce("osn", pl.when(pl.col("_t") != "").then(pl.col("_t"))))
        .drop("_t")
    )
    return idx, dense, trimmed


def written_back(
    values: pl.Series, idx: pl.Series, before: pl.Series, trimmed: pl.Series
) -> pl.Series:
    """`values` with the rows at `idx`, which held `before`, replaced by `trimmed` (`before`
    trimmed, "" possibly turned null) where trimming changed them.

    Trimming only takes characters away, so a value changed exactly when its length in bytes
    did, which polars reads from each value's view (comparing the strings themselves cost
    ~4 ms for 90k tokens). A string scatter copies the whole column (16 MB of views per million
    rows, all fresh pages), so it only runs when some value kept text but lost surrounding
    whitespace. Values that only turn null (blank tokens, the usual change) are masked by a
    when/then over the column itself, which polars does on the validity bitmap alone.
    """
    changed = trimmed.str.len_bytes().ne_missing(before.str.len_bytes())
    if not changed.any():
        return values
    if trimmed.filter(changed).null_count() < changed.sum():
        at = idx.filter(changed)
        return values.clone().scatter(at, trimmed.filter(changed))
    keep = pl.repeat(True, len(values), eager=True).alias("_keep")
    keep = keep.scatter(idx.filter(changed), False)
    return pl.DataFrame([values, keep]).select(pl.when("_keep").then(values.name)).to_series()
