"""File level reading: expand inputs, detect the format, sniff CSV dialects, open lazily.

Everything here returns polars LazyFrames whose columns are the file's own columns; mapping them to
the canonical table is the profile's job (see `pipeline.sources.__init__`). Identifiers are read as
strings (`infer_schema=False`), so a customer id 00123 keeps its zeros.
"""

from __future__ import annotations

import codecs
import csv
import glob
import gzip
import io
import shutil
from collections.abc import Sequence
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


def read_head(path: Path, encoding: str) -> str:
    """The first bytes of the (decompressed) file as text; undecodable bytes replaced."""
    try:
        with _open_bytes(path) as f:
            head = f.read(SNIFF_BYTES)
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: cannot be read ({exc})") from None
    return head.decode(codec_name(encoding), errors="replace").removeprefix("\ufeff")


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


def locate_bad_record(path: Path, delimiter: str) -> str | None:
    """Where a CSV stops parsing: the first record with more fields than the header, or an
    unterminated quote. Only run after polars failed, so its cost does not matter."""
    with (
        _open_bytes(path) as raw,
        io.TextIOWrapper(raw, "utf-8", errors="replace", newline="") as f,
    ):
        reader = csv.reader(f, delimiter=delimiter, strict=True)
        try:
            header = next(reader, [])
            for i, rec in enumerate(reader, start=1):
                if len(rec) > len(header):
                    return f"data row {i} has {len(rec)} fields, the header has {len(header)}"
        except csv.Error as exc:
            return f"near line {reader.line_num}: {exc}"
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
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}: cannot be decoded as {encoding} ({exc.reason})",
            hint="check --encoding",
        ) from None
    return target


def scan_csv(path: Path, delimiter: str) -> pl.LazyFrame:
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
        with gzip.open(path, "rb") as f:
            return pl.read_ndjson(f.read(), infer_schema_length=10_000).lazy()
    return pl.scan_ndjson(path, infer_schema_length=10_000)
