"""Input files -> one work frame of strings (see docs/architecture.md, "The work frame").

`load_sources` expands directories and globs, picks a vendor profile per file (or the one asked
for), reads each file with polars' streaming engine in batches, maps its columns to the canonical
ones and hands each batch to an optional transform (prepare passes normalize). Values are not
cleaned here (that is `pipeline.normalize`); only vendor *codes* are translated (OneSignal
device_type 1 -> "android") because they mean nothing outside their profile.

Columns of the returned frame:
    row_id Int64, source_file String, source_row Int64 (1-based data row in its file),
    customer_id, device_token, platform, model, os_version, activity_at, opted_in (all String),
    platform_raw String (the vendor's own platform value, before code translation),
    android_version_kind Enum "release" | "api" (profiles.ANDROID_VERSION_KIND_DTYPE: what a bare
        Android version number means).

`opted_in` is "true" / "false" / null, already decided by the profile's opt-out rules.
A problem with a whole file raises InputError naming the file and the fix; a problem with a row is
left for normalize to turn into an outcome.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl
from polars.lazyframe.in_process import InProcessQuery

from pipeline.errors import InputError
from pipeline.sources import readers
from pipeline.sources.columns import (
    braze_flatten,
    canonical_exprs,
    check_duplicates,
    choose_profile,
    missing_columns,
    show_headers,
)
from pipeline.sources.mapping import load_mapping
from pipeline.sources.profiles import CANONICAL, PROFILE_NAMES, Profile

__all__ = [
    "BATCH_ROWS", "DEFAULT_MAX_FIELD_BYTES", "WORK_COLUMNS", "FileInfo", "SourceFrame", "SourceOptions",
    "load_sources",
]  # fmt: skip

WORK_COLUMNS = (
    "row_id", "source_file", "source_row", *CANONICAL, "opted_in", "platform_raw", "android_version_kind",
)  # fmt: skip


DEFAULT_MAX_FIELD_BYTES = 1 << 20
# Rows read (and normalized) at a time: big enough that the per-batch cost of planning
# expressions is noise, small enough that one batch's raw strings are a small share of a
# 10M-row run's memory (see docs/benchmarks.md).
BATCH_ROWS = 1_000_000


@dataclass(frozen=True)
class SourceOptions:
    profile: str = "auto"  # auto|generic|onesignal|airship|braze|pushwoosh
    mapping_file: Path | None = None  # user TOML mapping for home-grown tables (overrides profile)
    encoding: str = "utf-8"  # CSV/NDJSON text encoding, e.g. cp1252 or latin-1
    delimiter: str | None = None  # None = detect , ; or tab from the header line
    android_version: Literal["release", "api"] | None = None  # None = what the profile says
    # Largest value, in bytes, a column the run uses may hold. Tokens are at most 4 KiB and ids
    # 1 KiB (longer ones are invalid rows); a cell over this limit means a broken file (usually an
    # unclosed quote that swallowed the lines after it), so the file is refused naming the row.
    max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES
    batch_rows: int = BATCH_ROWS  # rows read and transformed at a time (see load_sources)


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
    """The rows of a run as the batches they were read in (each already passed through the
    `transform` given to load_sources), in input order, and what was learnt about each file."""

    parts: list[pl.DataFrame]
    files: list[FileInfo] = field(default_factory=list)

    @property
    def frame(self) -> pl.DataFrame:
        """All parts as one frame (zero-copy: the parts become its chunks)."""
        return pl.concat(self.parts, how="vertical", rechunk=False)

    @property
    def rows(self) -> int:
        return sum(part.height for part in self.parts)


@dataclass
class _Source:
    """How one input file is read: its format, the file polars reads (the file itself, or a
    UTF-8 / rewritten copy in the run's work directory) and the CSV delimiter."""

    path: Path
    fmt: str
    source: Path
    delimiter: str | None = None
    rewritten: bool = False
    utf8: bool = True  # False: `source` is a UTF-8 copy of a file in another encoding


def _open_source(path: Path, options: SourceOptions, workdir: Path) -> _Source:
    """Check what can be checked before polars reads the file, and pick the file it reads."""
    fmt = readers.file_format(path)
    try:
        with open(path, "rb"):
            pass
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(
            f"{path}: cannot be read ({exc.strerror or exc})",
            hint="check that the file exists and is readable by this user",
        ) from None
    if size == 0:
        raise InputError(f"{path}: the file is empty", hint="export the table again")
    codec = readers.codec_name(options.encoding)
    if fmt == "parquet":
        if readers.is_gzip(path):
            raise InputError(
                f"{path}: is gzip-compressed; Parquet files are read as they are",
                hint="gunzip it first (Parquet compresses its own columns)",
            )
        return _Source(path, fmt, path)
    head = readers.read_head_bytes(path)
    source = path
    if codec not in ("utf-8", "utf-8-sig"):
        source = readers.utf8_copy(path, codec, workdir)
        head = readers.read_head_bytes(source)
    elif not readers.head_is_utf8(head):
        raise readers.utf8_error(path) or InputError(f"{path}: is not valid UTF-8")
    text = head.decode("utf-8", errors="replace").removeprefix("\ufeff")
    if not text.strip():
        raise InputError(f"{path}: the file is empty", hint="export the table again")
    utf8 = source == path
    if fmt == "ndjson":
        return _Source(path, fmt, source, utf8=utf8)
    delimiter = options.delimiter or readers.sniff_delimiter(
        readers.first_line(text.lstrip("\r\n"))
    )
    if readers.needs_rewrite(text):
        rewritten = readers.rewrite_csv(source, delimiter, workdir, options.max_field_bytes, path)
        return _Source(path, fmt, rewritten, delimiter, rewritten=True, utf8=utf8)
    return _Source(path, fmt, source, delimiter, utf8=utf8)


def _scan(src: _Source) -> pl.LazyFrame:
    if src.fmt == "parquet":
        return readers.scan_parquet(src.source)
    if src.fmt == "ndjson":
        return readers.scan_ndjson(src.source)
    assert src.delimiter is not None
    return readers.scan_csv(src.source, src.delimiter)


def _first_line(exc: Exception, limit: int = 200) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return first if len(first) <= limit else first[: limit - 1] + "…"


def _read_error(src: _Source, exc: Exception, options: SourceOptions) -> InputError:
    """The InputError for a file polars could not read: where the problem is, and the fix."""
    path = src.path
    if src.fmt == "parquet":
        what = "not a readable Parquet file"
        if "utf-8" in str(exc).lower() or "utf8" in str(exc).lower():
            what = "a text column of this Parquet file holds bytes that are not UTF-8"
        return InputError(
            f"{path}: {what} ({_first_line(exc)})",
            hint="the file may be truncated or damaged: copy or export it again",
        )
    error = _located_error(src, exc, options)
    if error is not None:
        return error
    if src.fmt == "ndjson":
        return InputError(
            f"{path}: cannot be read as NDJSON: {_first_line(exc)}",
            hint="each line must be one JSON object {...}",
        )
    return InputError(
        f"{path}: cannot be read as a table: {_first_line(exc)}",
        hint=f"check quoting and the delimiter (detected {src.delimiter!r}; set --delimiter)",
    )


def _located_error(src: _Source, exc: Exception, options: SourceOptions) -> InputError | None:
    """For a CSV or NDJSON file polars failed on, the error naming the line at fault (damaged
    gzip, bad UTF-8, a ragged or badly quoted record, a line that is not a JSON object), or None
    when Python's own readers find nothing wrong."""
    path = src.path
    readers.check_gzip(path)
    text = str(exc).lower()
    if ("utf-8" in text or "utf8" in text) and src.utf8:
        error = readers.utf8_error(path)
        if error is not None:
            return error
    if src.fmt == "ndjson":
        where = readers.locate_bad_json(src.source)
        if where is None:
            return None
        return InputError(
            f"{path}: {where}",
            hint="each line of an NDJSON file must be one JSON object {...}; convert a JSON "
            "array file with `jq -c '.[]'`",
        )
    assert src.delimiter is not None
    where = readers.locate_bad_record(src.source, src.delimiter, options.max_field_bytes)
    if where is None:
        return None
    return InputError(
        f"{path}: {where}",
        hint=f"check quoting and the delimiter (detected {src.delimiter!r}; set --delimiter)",
    )


_EVERY_COLUMN = "__every_column_parsed"
_OVERSIZE = "__value_over_field_limit"
_LINE_BREAK = "__value_with_line_break"


def _check_field_sizes(path: Path, df: pl.DataFrame, limit: int) -> None:
    """Refuse a file with a value over `limit` bytes in a column the run uses, naming the row."""
    cols = [c for c in (*CANONICAL, "platform_raw") if c in df.columns]
    sizes = df.select(pl.col(c).str.len_bytes().max().alias(c) for c in cols).row(0)
    for col, size in zip(cols, sizes, strict=True):
        if size is not None and size > limit:
            row = df.filter(pl.col(col).str.len_bytes() > limit)["source_row"][0]
            raise InputError(
                f"{path}: data row {row}: the {col} value is {size} bytes, more than the "
                f"{limit}-byte field limit",
                hint=readers.field_limit_hint(limit),
            )


def _table_query(
    src: _Source, options: SourceOptions, mapping: Profile | None, line_breaks: bool = False
) -> tuple[pl.LazyFrame, Profile, bool]:
    """The lazy query from one file to the work columns (all but row_id) and its check columns,
    its profile, and whether the profile was detected. With `line_breaks`, a check column also
    flags the rows where a value of any column of the file holds a line break."""
    path = src.path
    lf = _scan(src)
    schema = lf.collect_schema()
    headers = list(schema.names())
    profile, detected = choose_profile(path, headers, options.profile, mapping)
    check_duplicates(path, profile, headers)
    lf = lf.with_row_index("source_row", offset=1).with_columns(pl.col("source_row").cast(pl.Int64))
    if profile.layout == "braze_users":
        lf = braze_flatten(lf, schema)
        schema = lf.collect_schema()
        schema.pop("source_row")
        headers = list(schema.names())
    missing = missing_columns(profile, headers)
    if missing:
        wants = {c: list(profile.columns.get(c, ())) for c in missing}
        raise InputError(
            f"{path}: the {profile.name} profile needs columns {wants} "
            f"but the file has {show_headers(headers)}",
            hint="rename the columns, pick another --profile, or map them with --mapping FILE.toml",
        )
    kind = options.android_version or profile.android_version
    # polars (2.1) checks a CSV record for extra fields only when it parses every column of the
    # file: with any column left out, a row with an unquoted comma has its values shifted
    # silently. So every column is read, the ones the run does not use too (~30% of the read of
    # a 16-column export that uses 6; nothing when the run uses every column).
    check = []
    if src.fmt == "csv":
        every = [pl.col(h) for h in headers]
        check.append(pl.any_horizontal(c.is_null() for c in every).alias(_EVERY_COLUMN))
        if line_breaks:
            # in any column: a stray quote in one the run does not use (a badly escaped JSON
            # `tags`, say) joins two lines into one row all the same, and only the value shows it
            broken = pl.any_horizontal(
                c.cast(pl.String).str.contains_any(["\n", "\r"]) for c in every
            )
            check.append(broken.fill_null(False).alias(_LINE_BREAK))
    lf = lf.select(
        pl.lit(str(path), dtype=pl.String).alias("source_file"),
        "source_row",
        *canonical_exprs(profile, schema, kind),
        *check,
    )
    # computed while the streaming engine parses, so a batch needs no extra pass for it
    checked = [c for c in (*CANONICAL, "platform_raw") if c in lf.collect_schema()]
    oversize = pl.any_horizontal(
        pl.col(c).str.len_bytes() > options.max_field_bytes for c in checked
    )
    lf = lf.with_columns(oversize.fill_null(False).alias(_OVERSIZE))
    return lf, profile, detected


class _TransformFailed(Exception):
    """An error of the caller's transform: not a problem of the file, so never reported as one."""


@dataclass(frozen=True)
class _Reading:
    transform: Callable[[pl.DataFrame], pl.DataFrame]
    batch_rows: int
    first_row_id: int  # row_id of the file's first row (row_ids run on across the files)


def _batches(lf: pl.LazyFrame, rows: int) -> Iterator[pl.DataFrame]:
    """The query's rows in order, in batches of at most `rows`; one empty batch for no rows."""
    empty = True
    for batch in lf.collect_batches(chunk_size=rows):
        if batch.height:
            empty = False
            yield batch
    if empty:
        yield lf.clear().collect()


@dataclass
class _Table:
    parts: list[pl.DataFrame]
    info: FileInfo
    line_break: bool = False  # a value in the file holds a line break (see _read_checked)


def _read_table(
    src: _Source,
    options: SourceOptions,
    mapping: Profile | None,
    read: _Reading,
    *,
    line_breaks: bool = False,
) -> _Table:
    """Read one file in batches of `read.batch_rows`, each given its run-wide row_ids and
    passed through `read.transform` as soon as it is read, so a large file is never held whole
    in its raw form (the streaming engine reads the next batch meanwhile). With `line_breaks`,
    note whether a value of any column holds a line break."""
    path = src.path
    lf, profile, detected = _table_query(src, options, mapping, line_breaks)
    lf = lf.with_row_index("row_id", offset=read.first_row_id).with_columns(
        pl.col("row_id").cast(pl.Int64)
    )
    table = _Table([], FileInfo(str(path), profile.name, 0, src.fmt, src.delimiter, detected))
    rows = 0
    # the every-column check is kept in the projection so that polars parses (and checks) them
    checks = [c for c in (_OVERSIZE, _EVERY_COLUMN, _LINE_BREAK) if c in lf.collect_schema()]
    for raw in _batches(lf.select(*WORK_COLUMNS, *checks), read.batch_rows):
        if raw[_OVERSIZE].any():
            _check_field_sizes(path, raw, options.max_field_bytes)
        if line_breaks and not table.line_break:
            table.line_break = bool(raw[_LINE_BREAK].any())
        batch = raw.select(WORK_COLUMNS)
        del raw
        rows += batch.height
        try:
            table.parts.append(read.transform(batch))
        except Exception as exc:
            raise _TransformFailed from exc
    table.info = dataclasses.replace(table.info, rows=rows)
    return table


def _same_records(src: _Source, rows: int, lines: int | None, options: SourceOptions) -> bool:
    """Whether polars read the records Python's csv module reads: at once when the rows and the
    header fill the file's physical `lines`, else (a quoted value spans lines; `lines` None: not
    counted) by reading the file with Python's strict reader, which raises InputError naming the
    line of a misplaced quote."""
    if lines is not None and rows == lines - 1:
        return True
    assert src.delimiter is not None
    where, records = readers.check_records(src.source, src.delimiter, options.max_field_bytes)
    if where:
        hint = f"check quoting and the delimiter (detected {src.delimiter!r}; set --delimiter)"
        raise InputError(f"{src.path}: {where}", hint=hint)
    return records == rows


def _load_file(
    path: Path, options: SourceOptions, mapping: Profile | None, workdir: Path, read: _Reading
) -> _Table:
    src = _open_source(path, options, workdir)
    # A CSV's rows are checked against its physical lines, counted beside the read (~5% of
    # its read time). Counting a gzip file would decompress it twice (+35-80% of its read
    # time), so there the check runs when any value of the file holds a line break.
    counted = src.fmt == "csv" and not src.rewritten and not readers.is_gzip(src.source)
    lines = readers.count_lines(src.source).collect(background=True) if counted else None
    try:
        return _read_checked(src, lines, options, mapping, workdir, read)
    finally:
        if lines is not None:
            lines.cancel()  # when the read failed first; a no-op once fetched


def _read_checked(
    src: _Source,
    lines: InProcessQuery | None,
    options: SourceOptions,
    mapping: Profile | None,
    workdir: Path,
    read: _Reading,
) -> _Table:
    """Read `src`, and check a CSV's rows against `lines` (see _same_records). Reads a re-quoted
    copy of a CSV polars misreads or cannot read."""
    checked = src.fmt == "csv" and not src.rewritten
    # polars raises OSError for a gzip stream that ends early, PolarsError for everything else
    try:
        table = _read_table(src, options, mapping, read, line_breaks=checked and lines is None)
        if not checked or (lines is None and not table.line_break):
            return table
        count = lines.fetch_blocking().item() if lines is not None else None
        if _same_records(src, table.info.rows, count, options):
            return table
        # else polars joined lines Python's reader keeps apart: the re-quoted copy below
    except (pl.exceptions.PolarsError, OSError) as exc:
        if not checked:
            raise _read_error(src, exc, options) from None
        error = _located_error(src, exc, options)
        if error is not None:
            raise error from None
    # Python's csv module reads the file (no ragged row, no bad quote) but polars does not, e.g.
    # a quote inside an unquoted field (`Galaxy 10"`), or it reads other records: read a
    # re-quoted copy instead (the batches read before are dropped: the copy is read from its
    # first row).
    assert src.delimiter is not None
    path = src.path
    copy = readers.rewrite_csv(src.source, src.delimiter, workdir, options.max_field_bytes, path)
    src = _Source(path, src.fmt, copy, src.delimiter, rewritten=True, utf8=src.utf8)
    try:
        return _read_table(src, options, mapping, read)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise _read_error(src, exc, options) from None


def _unchanged(frame: pl.DataFrame) -> pl.DataFrame:
    return frame


def load_sources(
    paths: Sequence[str | Path],
    options: SourceOptions = SourceOptions(),
    *,
    transform: Callable[[pl.DataFrame], pl.DataFrame] = _unchanged,
) -> SourceFrame:
    """Read every input into the work frame's parts; raise InputError for files that cannot be
    read. `transform` is applied to each batch of at most `options.batch_rows` rows as it is read
    (`pipeline.sync.prepare` passes normalize): the raw strings of a batch are freed before the
    next is read, so a 10M-row export peaks near the size of its normalized table."""
    if options.profile not in PROFILE_NAMES:
        raise InputError(
            f"unknown profile {options.profile!r}", hint=f"use one of {', '.join(PROFILE_NAMES)}"
        )
    if options.delimiter is not None and len(options.delimiter) != 1:
        raise InputError(f"delimiter must be one character, got {options.delimiter!r}")
    if options.batch_rows < 1:
        raise InputError(f"batch_rows must be at least 1, got {options.batch_rows}")
    mapping = load_mapping(options.mapping_file) if options.mapping_file else None
    files = readers.expand_paths(paths)
    if not files:
        raise InputError("no input files given")
    parts: list[pl.DataFrame] = []
    infos: list[FileInfo] = []
    rows = 0
    with tempfile.TemporaryDirectory(prefix="masivo-sources-") as tmp:
        for path in files:
            read = _Reading(transform, options.batch_rows, first_row_id=rows)
            try:
                table = _load_file(path, options, mapping, Path(tmp), read)
            except _TransformFailed as failed:
                assert failed.__cause__ is not None
                raise failed.__cause__ from None
            parts.extend(table.parts)
            infos.append(table.info)
            rows += table.info.rows
    return SourceFrame(parts, infos)
