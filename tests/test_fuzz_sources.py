"""Hostile and broken input files, each a named case with the exact result it must end in.

Every case ends in one of two ways, never in a traceback ("internal error", exit 70) or a silent
drop:

- a clear error: `masivo-sync validate` exits 2 with one line naming the file (and the row or
  line where it applies) and the fix;
- a completed run whose outcomes add up to `input_rows`, and `input_rows` is the number of
  records a spreadsheet (Python's csv module) sees.

The random counterparts of these cases are in tests/test_fuzz_props.py.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.errors import InputError
from pipeline.sources import DEFAULT_MAX_FIELD_BYTES, SourceOptions, load_sources, readers

FCM = "c" + "A" * 21 + ":APA91b" + "x" * 134
HEADER = "customer_id,device_token,platform\n"
ROW = f"c1,{FCM},android\n"
MB = 1 << 20


def fcm(i: int) -> str:
    return FCM[:-6] + f"{i:06d}"


def rows(n: int, sep: str = ",", eol: str = "\n") -> str:
    return "".join(f"c{i}{sep}{fcm(i)}{sep}android{eol}" for i in range(n))


def parquet_bytes(**columns: list) -> bytes:
    buf = io.BytesIO()
    pl.DataFrame(columns).write_parquet(buf)
    return buf.getvalue()


GOOD_PARQUET = parquet_bytes(
    customer_id=["c1", "c2"], device_token=[FCM, fcm(2)], platform=["android"] * 2
)
JSON_ROW = json.dumps({"customer_id": "c1", "device_token": FCM, "platform": "android"})


@dataclass
class Run:
    exit_code: int
    output: str
    summary: dict | None

    @property
    def message(self) -> str:
        lines = [line for line in self.output.splitlines() if line.strip()]
        assert len(lines) == 1, f"expected one line, got {self.output!r}"
        return lines[0]


def validate(tmp_path: Path, *args: str) -> Run:
    report = tmp_path / "report"
    result = CliRunner().invoke(
        main,
        ["validate", *args, "--state-dir", str(tmp_path / "state"), "--report-dir", str(report)],
        catch_exceptions=False,
    )
    assert "internal error" not in result.output, result.output
    assert result.exit_code in (0, 2), result.output
    summary = None
    if result.exit_code == 0:
        summary = json.loads((report / "summary.json").read_text())
        assert sum(summary["outcomes"].values()) == summary["input_rows"]
    return Run(result.exit_code, result.output, summary)


def expect_error(
    tmp_path: Path, path: Path | str, *needles: str, args: tuple[str, ...] = ()
) -> str:
    run = validate(tmp_path, str(path), *args)
    assert run.exit_code == 2, run.output
    message = run.message
    assert str(path) in message, message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    assert len(message) < 600, message
    return message


def expect_rows(tmp_path: Path, path: Path, rows: int, **reasons: int) -> dict:
    run = validate(tmp_path, str(path))
    assert run.exit_code == 0, run.output
    assert run.summary is not None
    assert run.summary["input_rows"] == rows, run.summary
    for reason, count in reasons.items():
        assert run.summary["reasons"].get(reason, 0) == count, run.summary["reasons"]
    return run.summary


def write(tmp_path: Path, name: str, data: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def write_as_named(tmp_path: Path, name: str, data: bytes) -> Path:
    """`data` in `name`, gzip-compressed when the name ends in .gz."""
    return write(tmp_path, name, gzip.compress(data) if name.endswith(".gz") else data)


# ---------------------------------------------------------------------------------------------
# files that must be refused: (name, content, what the message must say)
# ---------------------------------------------------------------------------------------------

REFUSED: dict[str, tuple[str, Callable[[], bytes], tuple[str, ...]]] = {
    "random bytes": ("random.csv", lambda: b"\xff\xfe\x80" + os.urandom(4000), ("line 1 (the header)", "not valid UTF-8", "--encoding")),
    "invalid UTF-8 in a row": ("latin.csv", lambda: (HEADER + ROW).encode() + b"c2,caf\xe9,android\n", ("line 3 (data row 2)", "byte 0xE9", "--encoding cp1252")),
    "empty file": ("empty.csv", lambda: b"", ("the file is empty", "export the table again")),
    "BOM only": ("bom.csv", lambda: b"\xef\xbb\xbf", ("the file is empty",)),
    "BOM and newline": ("bomnl.csv", lambda: b"\xef\xbb\xbf\r\n", ("the file is empty",)),
    "blank lines only": ("blank.csv", lambda: b"\n\r\n\n", ("the file is empty",)),
    "too many fields": ("many.csv", lambda: (HEADER + ROW + f"c2,{FCM},android,extra\n").encode(), ("data row 2 has 4 fields, the header has 3", "--delimiter")),
    "unterminated quote": ("open.csv", lambda: (HEADER + ROW + f'c2,"{FCM},android\n' + ROW).encode(), ("line 3: a quoted field is never closed", "check quoting")),
    "text after a closing quote": ("after.csv", lambda: (HEADER + f'c1,"{FCM}"x,android\n').encode(), ("near line 2", "check quoting")),
    "duplicate column": ("dup.csv", lambda: (HEADER.strip() + ",platform\n" + f"c1,{FCM},android,ios\n").encode(), ("2 columns that mean 'platform'", "keep one of them")),
    "same column, other spelling": ("dup2.csv", lambda: (HEADER.strip() + ",Device Token\n" + f"c1,{FCM},android,x\n").encode(), ("'device_token'", "keep one of them")),
    "unknown columns (binary-ish header)": ("junk.csv", lambda: ("\x01\x02," * 5000 + "\n1,2\n").encode(), ("cannot tell which export", "--profile", "more]")),
    "10 MB token": ("bigtoken.csv", lambda: (HEADER + ROW + "c2," + "A" * (10 * MB) + ",android\n").encode(), ("data row 2", "device_token", f"{DEFAULT_MAX_FIELD_BYTES}-byte field limit", "--max-field-size")),
    "10 MB model": ("bigmodel.csv", lambda: (HEADER.strip() + ",model\n" + ROW.strip() + ",Pixel\n" + f"c2,{fcm(2)},android," + "m" * (10 * MB) + "\n").encode(), ("data row 2", "model", "--max-field-size")),
    "truncated gzip": ("trunc.csv.gz", lambda: gzip.compress((HEADER + rows(5000)).encode())[:3000], ("cannot be decompressed", "truncated or corrupt")),
    "truncated gzip past the sniffed head": ("trunc2.csv.gz", lambda: _truncated_big_gzip(), ("cannot be decompressed", "truncated or corrupt")),
    "gzip magic then garbage": ("garbage.csv.gz", lambda: b"\x1f\x8b" + os.urandom(200), ("cannot be decompressed", "truncated or corrupt")),
    "truncated Parquet": ("trunc.parquet", lambda: GOOD_PARQUET[: len(GOOD_PARQUET) // 2], ("not a readable Parquet file", "export it again")),
    "corrupt Parquet": ("corrupt.parquet", lambda: GOOD_PARQUET[:8] + bytes(200) + GOOD_PARQUET[208:], ("not a readable Parquet file", "export it again")),
    "CSV named .parquet": ("fake.parquet", lambda: (HEADER + ROW).encode(), ("not a readable Parquet file",)),
    "gzipped Parquet": ("p.parquet.gz", lambda: gzip.compress(GOOD_PARQUET), ("gzip-compressed", "gunzip it first")),
    "Parquet bytes that are not UTF-8": ("bin.parquet", lambda: parquet_bytes(customer_id=["c1"], device_token=[b"\xff\xfe"], platform=["android"]), ("not UTF-8",)),
    "NDJSON array line": ("arr.ndjson", lambda: (JSON_ROW + "\n[1, 2]\n").encode(), ("line 2 is an array, not a JSON object", "one JSON object")),
    "NDJSON scalar line": ("num.ndjson", lambda: (JSON_ROW + "\n42\n").encode(), ("line 2 is a number", "one JSON object")),
    "NDJSON null line": ("null.ndjson", lambda: (JSON_ROW + "\nnull\n").encode(), ("line 2 is null",)),
    "NDJSON broken line": ("broken.ndjson", lambda: (JSON_ROW + "\n" + JSON_ROW[:20] + "\n").encode(), ("line 2 is not valid JSON",)),
    "pretty-printed JSON array": ("pretty.json", lambda: json.dumps([json.loads(JSON_ROW)], indent=2).encode(), ("line 1 is not valid JSON", "jq -c")),
    "deeply nested JSON": ("deep.ndjson", lambda: (JSON_ROW + "\n" + JSON_ROW[:-1] + ', "x": ' + "[" * 5000 + "]" * 5000 + "}\n").encode(), ("line 2 is nested too deeply",)),
    "NDJSON blank lines only": ("blank.ndjson", lambda: b"\n \n", ("the file is empty",)),
    "truncated NDJSON gzip": ("trunc.ndjson.gz", lambda: gzip.compress(((JSON_ROW + "\n") * 3000).encode())[:2000], ("cannot be decompressed",)),
}  # fmt: skip


def _truncated_big_gzip() -> bytes:
    # the first 64 KiB decompress fine (they are what the reader sniffs); the rest is cut off
    data = gzip.compress((HEADER + rows(20_000)).encode())
    return data[: len(data) // 2]


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_with_a_one_line_error_naming_file_and_fix(tmp_path: Path, case: str) -> None:
    name, make, needles = REFUSED[case]
    path = write(tmp_path, name, make())
    expect_error(tmp_path, path, *needles)
    # the library raises the same as an InputError (exit 2), never anything else
    with pytest.raises(InputError):
        load_sources([path])


# ---------------------------------------------------------------------------------------------
# files that are read: every record a spreadsheet sees is one row with one outcome
# ---------------------------------------------------------------------------------------------


def test_extra_fields_are_refused_even_when_the_last_column_is_unused(tmp_path: Path) -> None:
    """polars checks for extra fields only while it parses the last column: an unquoted comma in
    a model used to shift os_version and updated_at silently when the file ended in `notes`."""
    header = "customer_id,device_token,platform,model,os_version,updated_at,notes\n"
    f = write(tmp_path, "shift.csv", header + f"c1,{FCM},android,Galaxy, S10,13,2026-01-01,x\n")
    expect_error(tmp_path, f, "data row 1 has 8 fields, the header has 7", "check quoting")


@pytest.mark.parametrize("name", ["shift.csv", "shift.csv.gz"])
def test_extra_fields_are_refused_when_a_column_in_the_middle_is_unused(
    tmp_path: Path, name: str
) -> None:
    """polars 2.1 checks for extra fields only when it parses every column: with `tags` left
    out, `c1,a,b,...` put b in device_token, the token in platform, and so on, silently."""
    header = "customer_id,tags,device_token,platform,model\n"
    text = (header + f"c1,a,b,{FCM},android,Pixel\nc2,x,{fcm(2)},ios,iPhone\n").encode()
    f = write_as_named(tmp_path, name, text)
    expect_error(tmp_path, f, "data row 1 has 6 fields, the header has 5", "check quoting")


def test_quote_left_open_to_an_escaped_quote_at_the_end(tmp_path: Path) -> None:
    """polars alone reads this as one row, the two lines after the open quote inside its token."""
    f = write(tmp_path, "open_end.csv", HEADER + f'c1,"{FCM}\nc2,{fcm(2)},android\nc3,x,""')
    expect_error(tmp_path, f, "line 2: a quoted field is never closed", "check quoting")


def test_nul_bytes_become_invalid_rows(tmp_path: Path) -> None:
    f = write(
        tmp_path, "nul.csv", HEADER + ROW + f"c\x002,{fcm(2)},android\nc3,{fcm(3)}\x00,android\n"
    )
    expect_rows(tmp_path, f, 3, dry_run=1, invalid_customer_id=1, malformed_token=1)


def test_nul_byte_in_the_header_is_only_a_name(tmp_path: Path) -> None:
    f = write(tmp_path, "nulhdr.csv", "customer_id,device\x00_token,platform\n" + ROW)
    expect_rows(tmp_path, f, 1, dry_run=1)


def test_too_few_fields_are_rows_with_missing_values(tmp_path: Path) -> None:
    f = write(tmp_path, "few.csv", HEADER + ROW + f"c2,{fcm(2)}\nc3\n")
    expect_rows(tmp_path, f, 3, dry_run=1, missing_platform=1, missing_device_token=1)


def test_header_only(tmp_path: Path) -> None:
    expect_rows(tmp_path, write(tmp_path, "h.csv", HEADER), 0)
    expect_rows(tmp_path, write(tmp_path, "h2.csv", HEADER.strip()), 0)
    expect_rows(tmp_path, write(tmp_path, "h3.csv", "\ufeff" + HEADER), 0)


def test_empty_column_names_are_ignored(tmp_path: Path) -> None:
    f = write(
        tmp_path, "e.csv", "customer_id,,device_token,,platform\n" + f"c1,a,{FCM},b,android\n"
    )
    expect_rows(tmp_path, f, 1, dry_run=1)


def test_blank_lines_are_rows_with_nothing_in_them(tmp_path: Path) -> None:
    """As Python's csv module counts them: a blank line is a record, never silently dropped."""
    f = write(tmp_path, "b.csv", HEADER + ROW + "\n\r\n" + f"c2,{fcm(2)},android\n\n,,\n")
    expect_rows(tmp_path, f, 6, dry_run=2, missing_customer_id=4)
    frame = load_sources([f]).frame
    assert frame["source_row"].to_list() == [1, 2, 3, 4, 5, 6]


def test_100k_columns(tmp_path: Path) -> None:
    header = ",".join(
        ["customer_id", "device_token", "platform", *(f"c{i}" for i in range(100_000))]
    )
    data = ",".join(["c1", FCM, "android", *("x" for _ in range(100_000))])
    expect_rows(tmp_path, write(tmp_path, "wide.csv", header + "\n" + data + "\n"), 1, dry_run=1)


@pytest.mark.parametrize(
    ("name", "eol_of_row"),
    [
        ("crlf", lambda i: "\r\n"),
        ("cr only (classic Mac)", lambda i: "\r"),
        ("mixed", lambda i: ["\n", "\r\n", "\r"][i % 3]),
    ],
)
def test_line_endings(tmp_path: Path, name: str, eol_of_row: Callable[[int], str]) -> None:
    text = "customer_id,device_token,platform" + eol_of_row(0)
    text += "".join(f"c{i},{fcm(i)},android{eol_of_row(i + 1)}" for i in range(9))
    f = write(tmp_path, "eol.csv", text)
    expect_rows(tmp_path, f, 9, dry_run=9)
    assert load_sources([f]).frame["customer_id"].to_list() == [f"c{i}" for i in range(9)]


def test_mixed_line_endings_past_the_sniffed_head(tmp_path: Path) -> None:
    body = rows(2000)  # > 64 KiB of LF lines, then CR lines polars alone would merge
    f = write(tmp_path, "late.csv", HEADER + body + f"x1,{fcm(1)},android\rx2,{fcm(2)},ios\r")
    expect_rows(tmp_path, f, 2002)


def test_blank_lines_before_the_header(tmp_path: Path) -> None:
    f = write(tmp_path, "lead.csv", "\n\r\n" + HEADER + ROW)
    expect_rows(tmp_path, f, 1, dry_run=1)


def test_quote_inside_an_unquoted_field(tmp_path: Path) -> None:
    # a spreadsheet reads `Galaxy Tab 10.1"` literally; polars alone refuses such a file
    f = write(
        tmp_path,
        "q.csv",
        HEADER.strip() + ",model\n" + ROW.strip() + ',Galaxy Tab 10.1"\n' + ROW.replace("c1", "c2"),
    )
    expect_rows(tmp_path, f, 2, dry_run=1, duplicate_token=1)
    assert load_sources([f]).frame["model"].to_list() == ['Galaxy Tab 10.1"', None]


def test_quoted_newlines_and_delimiters_are_values(tmp_path: Path) -> None:
    f = write(tmp_path, "qq.csv", HEADER + f'"c,1",{FCM},"andr\noid"\n"c""2",{fcm(2)},android\n')
    expect_rows(tmp_path, f, 2, dry_run=1, unknown_platform=1)
    assert load_sources([f]).frame["customer_id"].to_list() == ["c,1", 'c"2']


def test_gzip_name_on_a_plain_file(tmp_path: Path) -> None:
    expect_rows(tmp_path, write(tmp_path, "plain.csv.gz", HEADER + ROW), 1, dry_run=1)
    expect_rows(tmp_path, write(tmp_path, "plain.ndjson.gz", JSON_ROW + "\n"), 1, dry_run=1)


def test_ndjson_nested_and_mixed_values_are_rows(tmp_path: Path) -> None:
    lines = [
        {"customer_id": 7, "device_token": FCM, "platform": "android"},
        {"customer_id": {"id": 1}, "device_token": [1, 2], "platform": ["android"]},
        {},
        {"customer_id": "c3", "device_token": fcm(3), "platform": "android", "x": [[[[1]]]]},
    ]
    f = write(tmp_path, "n.ndjson", "\n".join(json.dumps(x) for x in lines) + "\n\n")
    expect_rows(tmp_path, f, 4, dry_run=2, malformed_token=1, missing_customer_id=1)
    # a column that is nested on every line is read as its JSON text
    g = write(
        tmp_path,
        "m.ndjson",
        json.dumps({"customer_id": {"a": 1}, "device_token": [1], "platform": "android"}) + "\n",
    )
    expect_rows(tmp_path, g, 1, malformed_token=1)
    assert load_sources([g]).frame["customer_id"].to_list() == ['{"a":1}']


def test_parquet_nested_and_typed_columns_are_rows(tmp_path: Path) -> None:
    f = write(
        tmp_path,
        "t.parquet",
        parquet_bytes(customer_id=[1, 2], device_token=[[1], [2]], platform=[{"a": 1}, None]),
    )
    expect_rows(tmp_path, f, 2, malformed_token=2)


def test_field_limit_is_configurable(tmp_path: Path) -> None:
    f = write(
        tmp_path, "m.csv", HEADER.strip() + ",model\n" + ROW.strip() + "," + "m" * 2000 + "\n"
    )
    expect_error(
        tmp_path,
        f,
        "data row 1",
        "the model value is 2000 bytes",
        "--max-field-size (now 1000 bytes)",
        args=("--max-field-size", "1000"),
    )
    expect_rows(tmp_path, f, 1, dry_run=1)  # the default 1 MiB limit
    with pytest.raises(InputError, match="1000-byte field limit"):
        load_sources([f], SourceOptions(max_field_bytes=1000))


def test_field_limit_applies_to_the_python_csv_fallback(tmp_path: Path) -> None:
    # bare CR line endings go through Python's csv module, which has its own field limit
    f = write(
        tmp_path, "cr.csv", (HEADER + ROW + "c2," + "A" * 5000 + ",android\n").replace("\n", "\r")
    )
    expect_error(
        tmp_path,
        f,
        "near line 3",
        "larger than 1000 bytes",
        "--max-field-size",
        args=("--max-field-size", "1000"),
    )
    # an unclosed quote in such a file swallows the rest of it: named, not a silent short read
    big = write(tmp_path, "cr2.csv", (HEADER + 'c1,"' + rows(2000)).replace("\n", "\r"))
    expect_error(tmp_path, big, "near line", "--max-field-size", args=("--max-field-size", "1000"))


# ---------------------------------------------------------------------------------------------
# inputs that are not regular files
# ---------------------------------------------------------------------------------------------


def test_directory_without_inputs(tmp_path: Path) -> None:
    d = tmp_path / "exports.csv"
    d.mkdir()
    expect_error(tmp_path, d, "directory has no csv/parquet/ndjson files")


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    expect_error(tmp_path, fifo, "not a regular file", "copy the export to a regular file")


def test_missing_file(tmp_path: Path) -> None:
    expect_error(tmp_path, tmp_path / "nope.csv", "no such file or directory")


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """chmod 000 does not stop root (the tests run as root), so the refusal is simulated."""
    import builtins

    import pipeline.sources

    f = write(tmp_path, "secret.csv", HEADER + ROW)

    def refuse(path, *args, **kwargs):
        if Path(path) == f:
            raise PermissionError(13, "Permission denied", str(path))
        return builtins.open(path, *args, **kwargs)

    monkeypatch.setattr(pipeline.sources, "open", refuse, raising=False)
    expect_error(tmp_path, f, "Permission denied", "readable by this user")


def test_stray_quote_across_lines_is_not_merged_silently(tmp_path: Path) -> None:
    # found by hypothesis: polars reads `"" "` + newline + `",` as one quoted field spanning the
    # line end, without an error; Python's csv reads two records. The line count gives it away.
    f = tmp_path / "q.csv"
    f.write_text('customer_id,device_token,platform\n"" "\n",')
    expect_error(tmp_path, f, "near line 2: ',' expected after '\"'", "check quoting")


def test_stray_quote_across_lines_in_a_gzip_file_is_not_merged_silently(tmp_path: Path) -> None:
    # a gzip file is not line-counted (that would decompress it twice): a value with a line
    # break is what sends it to Python's reader
    f = tmp_path / "q.csv.gz"
    f.write_bytes(gzip.compress(b'customer_id,device_token,platform\n"" "\n",'))
    expect_error(tmp_path, f, "near line 2: ',' expected after '\"'", "check quoting")


@pytest.mark.parametrize("name", ["q.csv", "q.csv.gz"])
def test_stray_quote_in_a_column_the_run_does_not_read(tmp_path: Path, name: str) -> None:
    # `tags` is not read, yet polars joins the two lines through it: the line count shows it in
    # a plain file, the line-break check over every column in a gzip one
    text = b'customer_id,tags,device_token,platform\nc1,"" "\n",tokA,android\nc2,x,tokB,ios\n'
    f = write_as_named(tmp_path, name, text)
    expect_error(tmp_path, f, "near line 2: ',' expected after '\"'", "check quoting")


@pytest.mark.parametrize("name", ["q.csv", "q.csv.gz"])
def test_quoted_line_breaks_are_read_as_values(tmp_path: Path, name: str) -> None:
    # rows + header < physical lines, legitimately: Python's reader agrees, so the read stands
    text = b'customer_id,device_token,platform\n"c\n1",tok,android\nc2,"t\r\nk",ios\n'
    f = write_as_named(tmp_path, name, text)
    frame = load_sources([f]).frame
    assert frame.select("customer_id", "device_token", "source_row").rows() == [
        ("c\n1", "tok", 1),
        ("c2", "t\r\nk", 2),
    ]


def test_lines_polars_joins_but_python_reads_apart_are_read_as_python_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # no such file is known to polars 2.1 (it raises, or Python's strict reader refuses the
    # file too), so the disagreement is forced: the records Python counts are not the rows read
    f = tmp_path / "q.csv"
    f.write_text('customer_id,device_token,platform\n"c\n1",tok,android\n')
    real = readers.check_records
    monkeypatch.setattr(
        readers,
        "check_records",
        lambda *a: (None, real(*a)[1] + 1),
    )
    rewrites = []
    rewrite = readers.rewrite_csv
    monkeypatch.setattr(
        readers,
        "rewrite_csv",
        lambda *a, **k: rewrites.append(a[0]) or rewrite(*a, **k),
    )
    frame = load_sources([f]).frame
    assert rewrites == [f]
    assert frame.select("customer_id", "source_row").rows() == [("c\n1", 1)]
