"""Property-based fuzzing of the readers and normalizers (hypothesis).

Every input, however broken, ends in exactly one of two ways:

- `pipeline.errors.UsageError` (an InputError: exit 2, a message naming the file), or
- a result whose outcomes add up to `input_rows`, one outcome per input row, where for CSV the
  rows are the records Python's csv module reads after the header (blank lines included).

Named, deterministic cases of the same kinds live in tests/test_fuzz_sources.py.

How many examples: small by default so the whole fuzz suite stays well under a minute in CI. For a
longer hunt set MASIVO_FUZZ_EXAMPLES, which replaces every test's example count, e.g.

    MASIVO_FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest -q tests/test_fuzz_props.py

(with the variable set, the suite's per-test timeout is lifted for this module).

A failure prints the smallest input hypothesis found (and it is replayed first on the next run
from the local .hypothesis/ database).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import polars as pl
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pipeline.dedupe import dedupe
from pipeline.errors import InputError, UsageError
from pipeline.normalize import NormalizeOptions, normalize
from pipeline.outcomes import OUTCOMES, REASONS
from pipeline.sources import SourceOptions, load_sources
from pipeline.sync import SyncConfig, run_sync

F = TypeVar("F", bound=Callable[..., Any])
ENV_EXAMPLES = os.environ.get("MASIVO_FUZZ_EXAMPLES")
# a long hunt outlives the suite's per-test timeout
pytestmark = [pytest.mark.timeout(0)] if ENV_EXAMPLES else []

FCM = "c" + "A" * 21 + ":APA91b" + "x" * 134
HEADER = ["customer_id", "device_token", "platform", "model", "os_version", "updated_at"]


def fuzz(examples: int) -> Callable[[F], F]:
    """`examples` examples per test (MASIVO_FUZZ_EXAMPLES overrides), no deadline."""
    return settings(
        max_examples=int(ENV_EXAMPLES) if ENV_EXAMPLES else examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def in_tmp(name: str, data: bytes, check: Callable[[Path, Path], None]) -> None:
    with tempfile.TemporaryDirectory(prefix="masivo-fuzz-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        check(path, Path(tmp))


def validate(path: Path, tmp: Path, **source_options: Any) -> int | None:
    """input_rows of a validate run, after checking the outcomes add up; None on UsageError."""
    config = SyncConfig(
        inputs=(path,),
        mode="validate",
        report_dir=tmp / "report",
        state_dir=tmp / "state",
        handle_signals=False,
        sources=SourceOptions(**source_options),
    )
    try:
        result = run_sync(config)
    except UsageError as exc:
        assert str(path) in str(exc), str(exc)
        assert "\n" not in str(exc), str(exc)
        return None
    summary = result.summary.as_dict()
    assert sum(summary["outcomes"].values()) == summary["input_rows"] == result.frame.height
    assert result.frame["outcome"].null_count() == 0
    assert result.frame["row_id"].to_list() == list(range(result.frame.height))
    return summary["input_rows"]


# ---------------------------------------------------------------------------------------------
# bytes and text as files
# ---------------------------------------------------------------------------------------------

CSV_HEAD = b"customer_id,device_token,platform\n"
# characters that make CSV parsing interesting, plus some that make tokens and ids interesting
csv_chars = st.sampled_from(
    [",", ",", '"', '"', "\n", "\r", "\r\n", " ", ";", "\t", "\x00", "a", "b", "1", "é", "€",
     "\ufeff", ":APA91b", FCM, "android", "ios"]
)  # fmt: skip
csv_text = st.lists(csv_chars, max_size=60).map("".join)


@fuzz(150)
@given(
    data=st.one_of(
        st.binary(max_size=600),
        st.binary(max_size=600).map(lambda b: CSV_HEAD + b),
        csv_text.map(lambda t: CSV_HEAD + t.encode()),
    ),
    name=st.sampled_from(["x.csv", "x.tsv", "x.csv.gz", "x.ndjson", "x.parquet"]),
)
def test_any_bytes_end_in_an_error_or_outcomes_that_add_up(data: bytes, name: str) -> None:
    in_tmp(name, data, lambda path, tmp: validate(path, tmp))


def _python_records(text: str, sep: str = ",") -> tuple[list[list[str]] | None, bool]:
    """What Python's csv module reads after the header (None: not valid CSV for it, or a record
    with more fields than the header), and whether the file may also be refused: when the only
    extra fields are empty ones on the last line with no newline after it (`c1,t,android,` at
    the end of the file), polars reads the file while Python sees one field more; no value is
    lost either way."""
    try:
        records = list(
            csv.reader(
                io.StringIO(text.removeprefix("\ufeff"), newline=""), delimiter=sep, strict=True
            )
        )
    except csv.Error:
        return None, True
    while records and records[0] == []:  # blank lines before the header
        records.pop(0)
    header, data = records[0], records[1:]
    ragged = [i for i, r in enumerate(data) if len(r) > len(header)]
    if not ragged:
        return data, False
    last_only = ragged == [len(data) - 1] and not any(data[-1][len(header) :])
    if last_only and not text.endswith(("\n", "\r")):
        return [*data[:-1], data[-1][: len(header)]], True
    return None, True


@fuzz(300)
@given(
    body=csv_text,
    eol=st.sampled_from(["\n", "\r\n", "\r"]),
    lead=st.sampled_from(["", "\ufeff", "\n", "\r\n\r\n"]),
    name=st.sampled_from(["f.csv", "f.csv.gz"]),
    unused=st.booleans(),
    sep=st.sampled_from([",", ";", "\t"]),
)
def test_csv_rows_are_the_records_python_csv_reads(
    body: str, eol: str, lead: str, name: str, unused: bool, sep: str
) -> None:
    # `unused`: a column the run does not read, between two it does; `sep`: the delimiter the
    # header line shows (detected)
    columns = ["customer_id", "tags", "device_token", "platform"]
    if not unused:
        columns.remove("tags")
    read = [columns.index(c) for c in ("customer_id", "device_token", "platform")]
    text = lead + sep.join(columns) + eol + body
    expected, may_refuse = _python_records(text, sep)

    def check(path: Path, tmp: Path) -> None:
        try:
            frame = load_sources([path]).frame
        except InputError as exc:
            assert may_refuse, f"refused a file Python reads as {expected!r}: {exc}"
            return
        if expected is None:
            # polars is lenient with some quoting Python's strict mode refuses (`"" ""` reads as
            # ` `): allowed, as long as the rows are those Python's lenient mode reads
            lenient = list(
                csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""), delimiter=sep)
            )
            while lenient and lenient[0] == []:
                lenient.pop(0)
            assert frame.height == len(lenient) - 1, f"read {frame.height} rows Python refuses"
            return
        assert frame.height == len(expected)
        got = frame.select("customer_id", "device_token", "platform_raw").rows()
        for rec, row in zip(expected, got, strict=True):
            padded = rec + [""] * 4
            want = [padded[i] or None for i in read]
            assert [v or None for v in row] == want, (rec, row)

    data = text.encode()
    in_tmp(name, gzip.compress(data) if name.endswith(".gz") else data, check)


# ---------------------------------------------------------------------------------------------
# arbitrary cells through load_sources -> normalize -> dedupe
# ---------------------------------------------------------------------------------------------

cell = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=30),
    st.sampled_from(["", " ", "android", "iOS", "web", "1", "3", "14", "17.4", "2024-01-01",
                     "1700000000", "false", "yes", FCM, "APA91b" + "x" * 140, "a" * 64]),
    # FCM-layout tokens with one character that must keep them off the fast path
    st.tuples(st.integers(0, len(FCM)), st.sampled_from(list(" \t\"\r\n\x0b\x00\x1b\x7fé"))).map(
        lambda t: FCM[: t[0]] + t[1] + FCM[t[0] :]
    ),
)  # fmt: skip
FAST_PATH_REJECTS = set(' \t"\r\n\x0b\x00\x1b\x7f')


@fuzz(120)
@given(rows=st.lists(st.lists(cell, min_size=len(HEADER), max_size=len(HEADER)), max_size=12))
def test_cells_end_in_one_outcome_per_row(rows: list[list[str]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf)  # "\r\n": Python 3.11 leaves a lone CR unquoted with "\n"
    writer.writerow(HEADER)
    writer.writerows(rows)
    # the csv module writes a record of one empty field as `""` and an all-empty record as `,,,`
    expected, _ = _python_records(buf.getvalue())
    assert expected is not None and len(expected) == len(rows)

    def check(path: Path, tmp: Path) -> None:
        frame = load_sources([path]).frame
        assert frame.height == len(rows)
        assert frame["customer_id"].to_list() == [r[0] or None for r in rows]
        assert frame["device_token"].to_list() == [r[1] or None for r in rows]
        checked = dedupe(normalize(frame, NormalizeOptions(max_age_days=None)))
        assert checked.height == len(rows)
        assert checked["row_id"].to_list() == list(range(len(rows)))
        for outcome, reason, token, customer in checked.select(
            "outcome", "reason", "device_token", "customer_id"
        ).rows():
            if outcome is None:  # would be sent: nothing a fast path should have let through
                assert token is not None and token.isascii(), token
                assert not FAST_PATH_REJECTS & set(token), token
                assert 16 <= len(token) <= 4096
                assert customer and not any(ord(c) < 32 or ord(c) == 127 for c in customer)
            else:
                assert outcome in OUTCOMES and REASONS[reason][0].value == outcome

        validate(path, tmp)

    in_tmp("cells.csv", buf.getvalue().encode(), check)


# ---------------------------------------------------------------------------------------------
# NDJSON, Parquet and gzip damage
# ---------------------------------------------------------------------------------------------

json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
json_line = st.one_of(
    st.fixed_dictionaries(
        {"customer_id": json_value, "device_token": json_value, "platform": json_value},
        optional={"model": json_value, "os_version": json_value, "extra": json_value},
    ).map(json.dumps),
    json_value.map(json.dumps),
    st.text(max_size=20),
    st.just(""),
)


@fuzz(120)
@given(lines=st.lists(json_line, min_size=1, max_size=8))
def test_ndjson_lines_are_objects_or_the_file_is_refused(lines: list[str]) -> None:
    text = "\n".join(lines) + "\n"
    assume("\r" not in text and "\x0b" not in text)

    def check(path: Path, tmp: Path) -> None:
        rows = validate(path, tmp)
        if rows is None:
            return
        objects = [json.loads(line) for line in text.splitlines() if line.strip()]
        assert all(isinstance(o, dict) for o in objects)
        assert rows == len(objects)

    in_tmp("f.ndjson", text.encode(), check)


def _parquet() -> bytes:
    buf = io.BytesIO()
    pl.DataFrame(
        {
            "customer_id": ["c1", "c2"],
            "device_token": [FCM, FCM + "b"],
            "platform": ["android", "ios"],
        }
    ).write_parquet(buf)
    return buf.getvalue()


PARQUET = _parquet()
GZIP_CSV = gzip.compress(b"customer_id,device_token,platform\n" + b"c1,tok,android\n" * 3000)


@fuzz(120)
@given(
    kind=st.sampled_from(["parquet", "gzip"]),
    cut=st.integers(0, 100_000),
    flips=st.lists(st.tuples(st.integers(0, 100_000), st.integers(1, 255)), max_size=3),
)
def test_damaged_parquet_and_gzip_are_refused_or_read_whole(
    kind: str, cut: int, flips: list[tuple[int, int]]
) -> None:
    original = PARQUET if kind == "parquet" else GZIP_CSV
    data = bytearray(original[: max(1, cut % (len(original) + 1))])
    for at, mask in flips:
        data[at % len(data)] ^= mask
    name, full_rows = ("x.parquet", 2) if kind == "parquet" else ("x.csv.gz", 3000)

    def check(path: Path, tmp: Path) -> None:
        rows = validate(path, tmp)
        if rows is not None and bytes(data) == original:
            assert rows == full_rows

    in_tmp(name, bytes(data), check)
