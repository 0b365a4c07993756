"""From a file's header to the canonical work columns: which profile reads it, which of its
columns feed which canonical column, and the polars expressions that do it."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from pipeline.errors import InputError
from pipeline.sources.profiles import (
    ANDROID_VERSION_KIND_DTYPE,
    CANONICAL,
    PROFILES,
    REQUIRED,
    Profile,
    detect_profile,
    header_key,
)


def show_headers(headers: list[str], limit: int = 12, width: int = 40) -> str:
    """The header for a one-line message: the first `limit` names, each cut to `width`."""
    shown = [h if len(h) <= width else h[: width - 1] + "…" for h in headers[:limit]]
    text = repr(shown)
    return text[:-1] + f", … {len(headers) - limit} more]" if len(headers) > limit else text


def choose_profile(
    path: Path, headers: list[str], profile_name: str, mapping: Profile | None
) -> tuple[Profile, bool]:
    # the mapping is for the home-grown tables of the run; with --profile auto, a vendor
    # export read in the same run (lacking the mapped columns) is still detected as usual
    if mapping is not None and (profile_name != "auto" or not missing_columns(mapping, headers)):
        return mapping, False
    if profile_name != "auto":
        return PROFILES[profile_name], False
    keys = {header_key(h) for h in headers}
    prof = detect_profile(keys)
    if prof is None:
        # a home-grown table with generic-ish names (user_id, token, platform) still works
        if not missing_columns(PROFILES["generic"], headers):
            return PROFILES["generic"], True
        raise InputError(
            f"{path}: cannot tell which export this is from its columns {show_headers(headers)}",
            hint="pass --profile onesignal|airship|braze|pushwoosh|generic, or --mapping FILE.toml",
        )
    return prof, True


def resolve(profile: Profile, headers: list[str]) -> dict[str, str]:
    """canonical column -> the file's column that feeds it (first candidate present)."""
    by_key: dict[str, str] = {}
    for h in headers:
        by_key.setdefault(header_key(h), h)
    found: dict[str, str] = {}
    for canon, candidates in profile.columns.items():
        for cand in candidates:
            if header_key(cand) in by_key:
                found[canon] = by_key[header_key(cand)]
                break
    return found


def missing_columns(profile: Profile, headers: list[str]) -> list[str]:
    found = resolve(profile, headers)
    return [c for c in (*REQUIRED, "platform") if c not in found and c not in profile.constants]


def as_string(name: str, dtype: pl.DataType) -> pl.Expr:
    """Column `name` as String. Nested values (NDJSON objects/arrays, Parquet lists/structs) become
    their JSON text, so a row holding one is judged by normalize like any other odd value."""
    col = pl.col(name)
    if dtype == pl.String:
        return col
    if dtype.is_nested():
        as_json = pl.struct(col.alias("v")).struct.json_encode()
        return pl.when(col.is_not_null()).then(
            as_json.str.strip_prefix('{"v":').str.strip_suffix("}")
        )
    return col.cast(pl.String)


def canonical_exprs(profile: Profile, schema: pl.Schema, kind: str) -> list[pl.Expr]:
    headers = list(schema.names())
    found = resolve(profile, headers)
    by_key = {header_key(h): h for h in headers}
    exprs: list[pl.Expr] = []
    for canon in CANONICAL:
        if canon in found:
            e = as_string(found[canon], schema[found[canon]])
        elif canon in profile.constants:
            e = pl.lit(profile.constants[canon], dtype=pl.String)
        else:
            e = pl.lit(None, dtype=pl.String)
        if canon == "platform":
            exprs.append(e.alias("platform_raw"))
        table = profile.values.get(canon)
        if table:
            key = e.str.strip_chars().str.to_lowercase()
            e = (
                pl.when(key.is_in(list(table)))
                .then(key.replace_strict(table, default=None))
                .otherwise(e)
            )
        exprs.append(e.alias(canon))

    # opted_in: "false" when any opt-out rule matches, "true" when a rule column has a value
    matched: list[pl.Expr] = []
    known: list[pl.Expr] = []
    for rule in profile.opt_out:
        col = next((by_key[header_key(c)] for c in rule.columns if header_key(c) in by_key), None)
        if col is None:
            continue
        v = as_string(col, schema[col]).str.strip_chars().str.to_lowercase()
        matched.append(v.is_in(list(rule.values)).fill_null(False))
        known.append(v.is_not_null() & (v != ""))
    if matched:
        opted = (
            pl.when(pl.any_horizontal(matched))
            .then(pl.lit("false"))
            .when(pl.any_horizontal(known))
            .then(pl.lit("true"))
            .otherwise(pl.lit(None, dtype=pl.String))
        )
    else:
        opted = pl.lit(None, dtype=pl.String)
    exprs.append(opted.alias("opted_in"))
    exprs.append(pl.lit(kind, dtype=ANDROID_VERSION_KIND_DTYPE).alias("android_version_kind"))
    return exprs


def braze_flatten(lf: pl.LazyFrame, schema: pl.Schema) -> pl.LazyFrame:
    """One row per push token of a Braze user export; device model/os joined on device_id.

    A user without push tokens stays as one row with a null token (it becomes
    missing_device_token), so no input line disappears.
    """
    pt = schema.get("push_tokens")
    if not (isinstance(pt, pl.List) and isinstance(pt.inner, pl.Struct)):
        return lf
    tok_fields = [f.name for f in pt.inner.fields]
    out = lf.explode("push_tokens", empty_as_null=True, keep_nulls=True).with_columns(
        pl.col("push_tokens").struct.field(f).alias(f) for f in tok_fields if f not in schema
    )
    dv = schema.get("devices")
    if isinstance(dv, pl.List) and isinstance(dv.inner, pl.Struct) and "device_id" in tok_fields:
        dev_fields = [f.name for f in dv.inner.fields if f.name in ("device_id", "model", "os")]
        if "device_id" in dev_fields:
            devices = (
                lf.select("source_row", "devices")
                .explode("devices")
                .select(
                    "source_row", *(pl.col("devices").struct.field(f).alias(f) for f in dev_fields)
                )
                .filter(pl.col("device_id").is_not_null())
                .unique(["source_row", "device_id"], keep="first", maintain_order=True)
            )
            out = out.join(
                devices, on=["source_row", "device_id"], how="left", maintain_order="left"
            )
    return out.drop("push_tokens", "devices", strict=False)


_DUPLICATED = re.compile(r"^(.*)_duplicated_\d+$")


def check_duplicates(path: Path, profile: Profile, headers: list[str]) -> None:
    """Refuse a header that names a column the profile reads twice: which one holds the truth?"""
    names = set(headers)
    keys: dict[str, list[str]] = {}
    for h in headers:
        m = _DUPLICATED.match(h)  # how polars renames the second `platform` of a CSV header
        base = m.group(1) if m and m.group(1) in names else h
        keys.setdefault(header_key(base), []).append(base)
    used = [c for cands in profile.columns.values() for c in cands]
    used += [c for rule in profile.opt_out for c in rule.columns]
    for cand in used:
        same = keys.get(header_key(cand), [])
        if len(same) > 1:
            raise InputError(
                f"{path}: the header has {len(same)} columns that mean {cand!r}: {same}",
                hint="keep one of them, or rename the others",
            )
