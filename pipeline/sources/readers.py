"""File level reading: expand inputs, detect the format, sniff CSV dialects, open lazily.

Everything here returns polars LazyFrames whose columns are the file's own columns; mapping them to
the canonical table is the profile's job (see `pipeline.sources.__init__`). Identifiers are read as
strings (`infer_schema=False`), so a customer id 00123 keeps its zeros.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import glob
import gzip
import io
import json
import re
import shutil
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Literal

import polars as pl

from pipeline.errors import InputError

Format = Literal["csv", "parquet", "ndjson"]

_FORMATS: dict[str, Format] = {
    ".csv": "csv", ".tsv": "csv", ".txt": "csv",
    ".parquet": "parquet", ".pq": "parquet",
    ".ndjson": "ndjson", ".jsonl": "ndjson", ".json": "ndjson",
}  # fmt: skip
DELIMITERS = (",", ";", "\t")
SNIFF_BYTES = 64 * 1024
# Errors a damaged gzip stream raises while it is read (truncated, bad CRC, not deflate).
GZIP_ERRORS = (OSError, EOFError, zlib.error)
GZIP_HINT = "the gzip file is truncated or corrupt: copy or export it again"


def file_format(path: Path) -> Format:
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return _FORMATS.get(Path(name).suffix, "csv")


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _supported(path: Path) -> bool:
    name = path.name.lower().removesuffix(".gz")
    return Path(name).suffix in _FORMATS and not path.name.startswith(".")


def expand_paths(paths: Sequence[str | Path]) -> list[Path]:
    """Files named, files in named directories (not recursive), and glob matches; order kept.

    Directories and globs only pick files with a known extension (csv, tsv, txt, parquet, ndjson,
    jsonl, json, optionally .gz), so a generator script or README beside the data is ignored.
    """
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and _supported(f))
            if not found:
                raise InputError(f"{p}: directory has no csv/parquet/ndjson files")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        elif p.exists():
            raise InputError(
                f"{raw}: not a regular file (a FIFO, socket or device)",
                hint="copy the export to a regular file and pass that",
            )
        elif any(ch in str(raw) for ch in "*?["):
            found = sorted(Path(m) for m in glob.glob(str(raw), recursive=True))
            found = [f for f in found if f.is_file() and _supported(f)]
            if not found:
                raise InputError(f"{raw}: the pattern matches no input files")
            out.extend(found)
        else:
            raise InputError(f"{raw}: no such file or directory")
    # the same file named twice would double-count every row
    seen: set[Path] = set()
    unique = []
    for f in out:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def _open_bytes(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")


def codec_name(encoding: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise InputError(
            f"unknown encoding {encoding!r}", hint="use utf-8, cp1252 or latin-1"
        ) from None


def read_head_bytes(path: Path) -> bytes:
    """The first SNIFF_BYTES of the (decompressed) file."""
    try:
        with _open_bytes(path) as f:
            return f.read(SNIFF_BYTES)
    except GZIP_ERRORS as exc:
        if is_gzip(path):
            raise InputError(f"{path}: cannot be decompressed ({exc})", hint=GZIP_HINT) from None
        raise InputError(
            f"{path}: cannot be read ({exc})", hint="check that the file is readable by this user"
        ) from None


def read_head(path: Path, encoding: str) -> str:
    """The first bytes of the (decompressed) file as text; undecodable bytes replaced."""
    head = read_head_bytes(path)
    return head.decode(codec_name(encoding), errors="replace").removeprefix("\ufeff")


def head_is_utf8(head: bytes) -> bool:
    """False when `head` holds an invalid UTF-8 sequence (one cut off at its end is fine)."""
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.reason == "unexpected end of data" and exc.end == len(head)
    return True


def first_line(text: str) -> str:
    """The first line of `text`, ending at CR or LF only (not at form feeds and the like)."""
    return re.split(r"\r\n|\r|\n", text, maxsplit=1)[0]


def needs_rewrite(head: str) -> bool:
    """Line endings polars does not read the way every spreadsheet does: a bare CR (classic Mac
    export, or CR mixed with LF) or blank lines before the header."""
    return head[:1] in ("\r", "\n") or "\r" in head.replace("\r\n", "")


def check_gzip(path: Path) -> None:
    """Raise InputError when `path` is gzip data that cannot be decompressed to the end."""
    if not is_gzip(path):
        return
    try:
        with gzip.open(path, "rb") as f:
            while f.read(1 << 20):
                pass
    except GZIP_ERRORS as exc:
        raise InputError(f"{path}: cannot be decompressed ({exc})", hint=GZIP_HINT) from None


@contextlib.contextmanager
def _csv_field_limit(limit: int) -> Iterator[None]:
    """Python's csv module refuses fields over 128 KiB by default; use the run's limit."""
    old = csv.field_size_limit()
    csv.field_size_limit(max(limit, 1))
    try:
        yield
    finally:
        csv.field_size_limit(old)


def field_limit_hint(limit: int) -> str:
    return (
        f"no device field is that large: usually an unclosed quote swallowed the lines after it; "
        f"if the file is right, raise --max-field-size (now {limit} bytes)"
    )


def sniff_delimiter(header_line: str) -> str:
    """The delimiter that appears most often in the header outside quotes (ties: , then ; then tab)."""
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for ch in header_line:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def utf8_error(path: Path) -> InputError | None:
    """The error naming the first line of `path` that is not UTF-8, or None when all are."""
    where = locate_bad_utf8(path)
    if where is None:
        return None
    line, byte = where
    what = "the header" if line == 1 else f"data row {line - 1}"
    return InputError(
        f"{path}: line {line} ({what}) is not valid UTF-8 (byte 0x{byte:02X})",
        hint="if the file comes from Excel/Windows, rerun with --encoding cp1252 (or latin-1)",
    )


def locate_bad_utf8(path: Path) -> tuple[int, int] | None:
    """(1-based line, offending byte) of the first invalid UTF-8 sequence, or None."""
    line = 1
    carry = b""
    with _open_bytes(path) as f:
        while True:
            chunk = f.read(1 << 20)
            buf = carry + chunk
            if not buf:
                return None
            try:
                buf.decode("utf-8")
                carry = b""
                line += buf.count(b"\n")
            except UnicodeDecodeError as exc:
                truncated = exc.reason == "unexpected end of data" and exc.end == len(buf)
                if truncated and chunk:
                    carry = buf[exc.start :]
                    line += buf[: exc.start].count(b"\n")
                else:
                    return line + buf[: exc.start].count(b"\n"), buf[exc.start]
            if not chunk:
                return None


def _records(reader: Iterator[list[str]]) -> Iterator[tuple[int, list[str]]]:
    """(data row, record) after the header; blank lines before the header are skipped and
    data rows are numbered the way polars numbers them (blank lines after the header count)."""
    header: list[str] = []
    for rec in reader:
        if rec:
            header = rec
            break
    yield 0, header
    yield from enumerate(reader, start=1)


def check_records(path: Path, delimiter: str, max_field: int) -> tuple[str | None, int]:
    """Python's strict csv reader over the whole file: (where the CSV stops parsing, or None;
    the data records read). A problem is the first record with more fields than the header, an
    unterminated quote, a field over the size limit or a quote in the wrong place. Only run
    when polars failed or disagrees with the line count, so its cost does not matter."""
    with (
        _open_bytes(path) as raw,
        io.TextIOWrapper(raw, "utf-8", errors="replace", newline="") as f,
        _csv_field_limit(max_field),
    ):
        reader = csv.reader(f, delimiter=delimiter, strict=True)
        records = _records(reader)
        start = 1  # the line the record being read starts on
        count = 0
        try:
            _, header = next(records)
            start = reader.line_num + 1
            # after the loop, `count` is the data row number of the last record: their number
            for count, rec in records:
                if len(rec) > len(header):
                    return (
                        f"data row {count} has {len(rec)} fields, the header has {len(header)}",
                        count,
                    )
                start = reader.line_num + 1
        except csv.Error as exc:
            if "unexpected end of data" in str(exc) or "field larger than" in str(exc):
                # an open quote ran to the end of the file (or past the size limit)
                return f"line {start}: a quoted field is never closed ({exc})", count
            return f"near line {reader.line_num}: {exc}", count
    return None, count


def locate_bad_record(path: Path, delimiter: str, max_field: int) -> str | None:
    """Where a CSV stops parsing (see check_records), or None."""
    return check_records(path, delimiter, max_field)[0]


def count_lines(path: Path) -> pl.LazyFrame:
    """The file's physical lines, as polars counts them with quoting off (fast, parallel).

    polars splits records on quotes its own way: a stray quote can make it join lines that
    Python's csv module (and a spreadsheet) reads as separate records, without an error. Rows
    read + the header line = physical lines unless a quoted value spans lines, so only a file
    where they differ needs the slow check (see pipeline.sources._same_records).
    """
    return pl.scan_csv(
        path,
        has_header=False,
        quote_char=None,
        separator="\x1f",  # any byte: only the line count is read
        infer_schema=False,
        truncate_ragged_lines=True,
        encoding="utf8-lossy",
    ).select(pl.len())


def rewrite_csv(
    path: Path, delimiter: str, workdir: Path, max_field: int, name: Path | None = None
) -> Path:
    """A copy polars reads the way Python's csv module (and a spreadsheet) reads the original:
    CRLF line endings, blank lines before the header dropped, every field re-quoted. For the few
    files polars misreads (bare CR line endings, a quote inside an unquoted field). Raises
    InputError naming the line when the file is not valid CSV even for Python's reader; `name`
    is the path the user gave, when `path` is a transcoded copy of it."""
    name = name or path
    target = workdir / (path.name.removesuffix(".gz") + ".rewritten.csv")
    with (
        _open_bytes(path) as raw,
        io.TextIOWrapper(raw, "utf-8-sig", errors="strict", newline="") as src,
        open(target, "w", encoding="utf-8", newline="") as dst,
        _csv_field_limit(max_field),
    ):
        reader = csv.reader(src, delimiter=delimiter, strict=True)
        # "\r\n" as the terminator also makes the writer quote a field holding a lone CR (with
        # "\n" Python 3.11 leaves it bare, and it would end the record for the next reader)
        writer = csv.writer(dst, delimiter=delimiter, lineterminator="\r\n")
        try:
            writer.writerows(rec for _, rec in _records(reader))
        except UnicodeDecodeError:
            raise utf8_error(path) or InputError(f"{name}: is not valid UTF-8") from None
        except csv.Error as exc:
            if "field larger than field limit" in str(exc):
                raise InputError(
                    f"{name}: near line {reader.line_num}: a field is larger than "
                    f"{max_field} bytes",
                    hint=field_limit_hint(max_field),
                ) from None
            raise InputError(
                f"{name}: near line {reader.line_num}: {exc}",
                hint=f"check quoting and the delimiter (detected {delimiter!r}; set --delimiter)",
            ) from None
    return target


def locate_bad_json(path: Path) -> str | None:
    """The first NDJSON line that is not one JSON object, described; None when all are."""
    with _open_bytes(path) as raw, io.TextIOWrapper(raw, "utf-8", errors="replace") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except RecursionError:
                return f"line {n} is nested too deeply"
            except ValueError as exc:
                return f"line {n} is not valid JSON ({exc.args[0] if exc.args else exc})"
            if not isinstance(value, dict):
                kind = {list: "an array", str: "a string", type(None): "null", bool: "a boolean"}
                return f"line {n} is {kind.get(type(value), 'a number')}, not a JSON object"
    return None


def utf8_copy(path: Path, encoding: str, workdir: Path) -> Path:
    """A UTF-8 copy of a file in another encoding, transcoded in chunks (never whole in memory)."""
    target = workdir / (path.name.removesuffix(".gz") + ".utf8")
    try:
        with (
            _open_bytes(path) as raw,
            codecs.getreader(encoding)(raw, errors="strict") as src,
            open(target, "w", encoding="utf-8", newline="") as dst,
        ):
            shutil.copyfileobj(src, dst, 1 << 20)
    except GZIP_ERRORS as exc:
        raise InputError(f"{path}: cannot be decompressed ({exc})", hint=GZIP_HINT) from None
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}: cannot be decoded as {encoding} ({exc.reason})",
            hint="check --encoding",
        ) from None
    return target


def scan_csv(path: Path, delimiter: str) -> pl.LazyFrame:
    """Every column a String. Each record is a row, a blank line too (a row with nothing in it,
    which normalize makes invalid), as Python's csv module counts them."""
    return pl.scan_csv(
        path,
        separator=delimiter,
        infer_schema=False,  # every column a string: ids keep leading zeros, tokens stay intact
        quote_char='"',
        truncate_ragged_lines=False,
        encoding="utf8",
    )


def scan_parquet(path: Path) -> pl.LazyFrame:
    return pl.scan_parquet(path)


def scan_ndjson(path: Path) -> pl.LazyFrame:
    if is_gzip(path):
        # scan_ndjson wants a plain file; NDJSON exports are small enough to read eagerly
        try:
            with gzip.open(path, "rb") as f:
                data = f.read()
        except GZIP_ERRORS as exc:
            raise InputError(f"{path}: cannot be decompressed ({exc})", hint=GZIP_HINT) from None
        return pl.read_ndjson(data, infer_schema_length=10_000).lazy()
    return pl.scan_ndjson(path, infer_schema_length=10_000)
