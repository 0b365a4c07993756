"""Input files -> one work frame of strings (see docs/architecture.md, "The work frame").

`load_sources` expands directories and globs, picks a vendor profile per file (or the one asked
for), reads each file lazily and maps its columns to the canonical ones. Values are not cleaned
here (that is `pipeline.normalize`); only vendor *codes* are translated (OneSignal device_type 1 ->
"android") because they mean nothing outside their profile.

Columns of the returned frame:
    row_id Int64, source_file String, source_row Int64 (1-based data row in its file),
    customer_id, device_token, platform, model, os_version, activity_at, opted_in (all String),
    platform_raw String (the vendor's own platform value, before code translation),
    android_version_kind String ("release" | "api": what a bare Android version number means).

`opted_in` is "true" / "false" / null, already decided by the profile's opt-out rules.
A problem with a whole file raises InputError naming the file and the fix; a problem with a row is
left for normalize to turn into an outcome.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl

from pipeline.errors import InputError
from pipeline.sources import readers
from pipeline.sources.mapping import load_mapping
from pipeline.sources.profiles import (
    CANONICAL,
    PROFILE_NAMES,
    PROFILES,
    REQUIRED,
    Profile,
    detect_profile,
    header_key,
)

__all__ = ["WORK_COLUMNS", "FileInfo", "SourceFrame", "SourceOptions", "load_sources"]

WORK_COLUMNS = (
    "row_id", "source_file", "source_row", *CANONICAL, "opted_in", "platform_raw", "android_version_kind",
)  # fmt: skip


@dataclass(frozen=True)
class SourceOptions:
    profile: str = "auto"  # auto|generic|onesignal|airship|braze|pushwoosh
    mapping_file: Path | None = None  # user TOML mapping for home-grown tables (overrides profile)
    encoding: str = "utf-8"  # CSV/NDJSON text encoding, e.g. cp1252 or latin-1
    delimiter: str | None = None  # None = detect , ; or tab from the header line
    android_version: Literal["release", "api"] | None = None  # None = what the profile says


@dataclass(frozen=True)
class FileInfo:
    path: str
    profile: str
    rows: int
    format: str = "csv"
    delimiter: str | None = None
    detected: bool = False  # True when --profile auto picked the profile


@dataclass
class SourceFrame:
    frame: pl.DataFrame
    files: list[FileInfo] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.frame.height


def _choose_profile(
    path: Path, headers: list[str], options: SourceOptions, mapping: Profile | None
) -> tuple[Profile, bool]:
    # the mapping is for the home-grown tables of the run; with --profile auto, a vendor
    # export read in the same run (lacking the mapped columns) is still detected as usual
    if mapping is not None and (options.profile != "auto" or not _missing(mapping, headers)):
        return mapping, False
    if options.profile != "auto":
        return PROFILES[options.profile], False
    keys = {header_key(h) for h in headers}
    prof = detect_profile(keys)
    if prof is None:
        # a home-grown table with generic-ish names (user_id, token, platform) still works
        if not _missing(PROFILES["generic"], headers):
            return PROFILES["generic"], True
        raise InputError(
            f"{path}: cannot tell which export this is from its columns {headers}",
            hint="pass --profile onesignal|airship|braze|pushwoosh|generic, or --mapping FILE.toml",
        )
    return prof, True


def _resolve(profile: Profile, headers: list[str]) -> dict[str, str]:
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


def _missing(profile: Profile, headers: list[str]) -> list[str]:
    found = _resolve(profile, headers)
    return [c for c in (*REQUIRED, "platform") if c not in found and c not in profile.constants]


def _canonical_exprs(profile: Profile, headers: list[str], kind: str) -> list[pl.Expr]:
    found = _resolve(profile, headers)
    by_key = {header_key(h): h for h in headers}
    exprs: list[pl.Expr] = []
    for canon in CANONICAL:
        if canon in found:
            e = pl.col(found[canon]).cast(pl.String)
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
        v = pl.col(col).cast(pl.String).str.strip_chars().str.to_lowercase()
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
    exprs.append(pl.lit(kind, dtype=pl.String).alias("android_version_kind"))
    return exprs


def _braze_flatten(lf: pl.LazyFrame, schema: pl.Schema) -> pl.LazyFrame:
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


def _scan_one(
    path: Path, options: SourceOptions, workdir: Path
) -> tuple[pl.LazyFrame, str, str | None, Path]:
    fmt = readers.file_format(path)
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty", hint="export the table again")
    codec = readers.codec_name(options.encoding)
    if fmt == "parquet":
        try:
            return readers.scan_parquet(path), fmt, None, path
        except pl.exceptions.PolarsError as exc:
            raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
    source = path
    if codec not in ("utf-8", "utf-8-sig"):
        source = readers.utf8_copy(path, codec, workdir)
    if fmt == "ndjson":
        return readers.scan_ndjson(source), fmt, None, source
    head = readers.read_head(source, "utf-8")
    if not head.strip():
        raise InputError(f"{path}: the file is empty", hint="export the table again")
    delimiter = options.delimiter or readers.sniff_delimiter(head.splitlines()[0])
    return readers.scan_csv(source, delimiter), fmt, delimiter, source


def _read_error(
    path: Path, exc: Exception, source: Path | None = None, delimiter: str | None = None
) -> InputError:
    text = str(exc)
    if "utf-8" in text.lower() or "utf8" in text.lower():
        where = readers.locate_bad_utf8(path)
        if where:
            line, byte = where
            return InputError(
                f"{path}: line {line} (data row {line - 1}) is not valid UTF-8 (byte 0x{byte:02X})",
                hint="if the file comes from Excel/Windows, rerun with --encoding cp1252 (or latin-1)",
            )
    first = text.splitlines()[0] if text else repr(exc)
    if delimiter is not None and source is not None:
        where = readers.locate_bad_record(source, delimiter)
        if where:
            return InputError(
                f"{path}: {where} ({first})",
                hint=f"check quoting and the delimiter (detected {delimiter!r}; set --delimiter)",
            )
    return InputError(f"{path}: cannot be read as a table: {first}")


def _load_file(
    path: Path, options: SourceOptions, mapping: Profile | None, workdir: Path
) -> tuple[pl.DataFrame, FileInfo]:
    lf, fmt, delimiter, source = _scan_one(path, options, workdir)
    try:
        schema = lf.collect_schema()
    except pl.exceptions.PolarsError as exc:
        raise _read_error(path, exc, source, delimiter) from None
    headers = list(schema.names())
    profile, detected = _choose_profile(path, headers, options, mapping)
    lf = lf.with_row_index("source_row", offset=1).with_columns(pl.col("source_row").cast(pl.Int64))
    if profile.layout == "braze_users":
        lf = _braze_flatten(lf, schema)
        headers = [h for h in lf.collect_schema().names() if h != "source_row"]
    missing = _missing(profile, headers)
    if missing:
        wants = {c: list(profile.columns.get(c, ())) for c in missing}
        raise InputError(
            f"{path}: the {profile.name} profile needs columns {wants} but the file has {headers}",
            hint="rename the columns, pick another --profile, or map them with --mapping FILE.toml",
        )
    kind = options.android_version or profile.android_version
    lf = lf.select(
        pl.lit(str(path), dtype=pl.String).alias("source_file"),
        "source_row",
        *_canonical_exprs(profile, headers, kind),
    )
    try:
        df = lf.collect()
    except pl.exceptions.PolarsError as exc:
        raise _read_error(path, exc, source, delimiter) from None
    info = FileInfo(str(path), profile.name, df.height, fmt, delimiter, detected)
    return df, info


def load_sources(
    paths: Sequence[str | Path], options: SourceOptions = SourceOptions()
) -> SourceFrame:
    """Read every input into one work frame; raise InputError for files that cannot be read."""
    if options.profile not in PROFILE_NAMES:
        raise InputError(
            f"unknown profile {options.profile!r}", hint=f"use one of {', '.join(PROFILE_NAMES)}"
        )
    if options.delimiter is not None and len(options.delimiter) != 1:
        raise InputError(f"delimiter must be one character, got {options.delimiter!r}")
    mapping = load_mapping(options.mapping_file) if options.mapping_file else None
    files = readers.expand_paths(paths)
    if not files:
        raise InputError("no input files given")
    frames: list[pl.DataFrame] = []
    infos: list[FileInfo] = []
    with tempfile.TemporaryDirectory(prefix="masivo-sources-") as tmp:
        for path in files:
            df, info = _load_file(path, options, mapping, Path(tmp))
            frames.append(df)
            infos.append(info)
    frame = pl.concat(frames, how="vertical", rechunk=False) if len(frames) > 1 else frames[0]
    frame = frame.with_row_index("row_id").with_columns(pl.col("row_id").cast(pl.Int64))
    return SourceFrame(frame.select(WORK_COLUMNS), infos)
