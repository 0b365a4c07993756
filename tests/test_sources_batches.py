"""load_sources reads in batches and transforms each as it is read (what keeps 10M rows small).

Batching is an implementation detail that must never show in the results: any batch size gives
the same frame, row_ids run on across batches and files, and a file that is re-read (after a
polars parse error) or refused after some batches were transformed leaves nothing behind.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from pipeline.errors import InputError
from pipeline.normalize import NormalizeOptions, normalize
from pipeline.sources import SourceOptions, load_sources
from pipeline.sync import SyncConfig, prepare

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"
FCM = "c" + "A" * 21 + ":APA91b" + "x" * 134
HEADER = "customer_id,device_token,platform,model,os_version,updated_at\n"
NOW = NormalizeOptions().now


def _csv(path: Path, rows: int, *, bad_row: int | None = None) -> Path:
    lines = [HEADER]
    for i in range(rows):
        model = 'Galaxy Tab 10"' if i == bad_row else "Pixel 8"  # a quote polars cannot parse
        lines.append(f"c{i},{FCM}{i},android,{model},14,2026-11-01\n")
    path.write_text("".join(lines))
    return path


def test_any_batch_size_gives_the_same_frame(tmp_path: Path) -> None:
    files = [
        _csv(tmp_path / "a.csv", 23),
        *sorted(SAMPLES.glob("*.csv")),
        _csv(tmp_path / "b.csv", 5),
    ]
    whole = load_sources(files, SourceOptions(batch_rows=1_000_000))
    for size in (1, 4, 7):
        batched = load_sources(files, SourceOptions(batch_rows=size))
        assert batched.frame.equals(whole.frame)
        assert [f.rows for f in batched.files] == [f.rows for f in whole.files]
        assert len(batched.parts) > len(whole.parts)
    frame = whole.frame
    assert frame["row_id"].to_list() == list(range(frame.height))


def test_transform_runs_per_batch_and_matches_normalizing_the_whole(tmp_path: Path) -> None:
    files = [*sorted(SAMPLES.glob("*.csv")), _csv(tmp_path / "a.csv", 10)]
    options = NormalizeOptions(now=NOW)
    seen: list[int] = []

    def transform(batch: pl.DataFrame) -> pl.DataFrame:
        seen.append(batch.height)
        return normalize(batch, options)

    batched = load_sources(files, SourceOptions(batch_rows=6), transform=transform)
    whole = normalize(load_sources(files).frame, options)
    assert batched.frame.equals(whole)
    assert max(seen) <= 6 and sum(seen) == whole.height


def test_prepare_is_the_same_for_any_batch_size() -> None:
    inputs = tuple(str(p) for p in sorted(SAMPLES.glob("*.csv")))
    frames = [
        prepare(SyncConfig(inputs=inputs, sources=SourceOptions(batch_rows=n)))[0]
        for n in (3, 1_000_000)
    ]
    assert frames[0].equals(frames[1])


def test_reread_after_a_parse_error_in_a_later_batch_keeps_each_row_once(tmp_path: Path) -> None:
    f = _csv(tmp_path / "quote.csv", 40, bad_row=33)
    batches: list[int] = []

    def transform(batch: pl.DataFrame) -> pl.DataFrame:
        batches.append(batch.height)
        return batch

    sf = load_sources([f], SourceOptions(batch_rows=8), transform=transform)
    frame = sf.frame
    assert frame["source_row"].to_list() == list(range(1, 41))
    assert frame["row_id"].to_list() == list(range(40))
    assert frame["model"][33] == 'Galaxy Tab 10"'
    assert sf.files[0].rows == 40


def test_batches_transformed_before_a_parse_error_are_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # polars may fail before or after yielding some batches (it parses ahead in parallel), so
    # the "after" case is forced: the first read yields two batches, then fails
    import pipeline.sources as sources

    real = sources._batches
    calls = []

    def flaky(lf: pl.LazyFrame, rows: int):
        calls.append(rows)
        if len(calls) == 1:
            yield from list(real(lf, rows))[:2]
            raise pl.exceptions.ComputeError("found more fields than defined in 'Schema'")
        yield from real(lf, rows)

    monkeypatch.setattr(sources, "_batches", flaky)
    f = _csv(tmp_path / "clean.csv", 40)  # Python's csv finds nothing wrong: the file is re-read
    seen: list[int] = []
    sf = load_sources(
        [f], SourceOptions(batch_rows=8), transform=lambda b: seen.append(b.height) or b
    )
    assert len(calls) == 2 and sum(seen) == 56  # 2 batches of the failed read, then all 40 rows
    assert sf.frame["source_row"].to_list() == list(range(1, 41))
    assert sf.frame["row_id"].to_list() == list(range(40))


def test_an_oversized_value_in_a_later_batch_names_its_row(tmp_path: Path) -> None:
    f = _csv(tmp_path / "big.csv", 30)
    text = f.read_text().splitlines(keepends=True)
    text[26] = text[26].replace("Pixel 8", "P" * 300)  # data row 26
    f.write_text("".join(text))
    with pytest.raises(InputError, match=r"data row 26: the model value is 300 bytes"):
        load_sources([f], SourceOptions(batch_rows=4, max_field_bytes=200))


def test_an_error_of_the_transform_is_not_reported_as_a_bad_file(tmp_path: Path) -> None:
    f = _csv(tmp_path / "a.csv", 10)

    def broken(batch: pl.DataFrame) -> pl.DataFrame:
        return batch.select(pl.col("no_such_column"))

    with pytest.raises(pl.exceptions.ColumnNotFoundError):
        load_sources([f], SourceOptions(batch_rows=4), transform=broken)


def test_an_empty_file_gives_an_empty_part(tmp_path: Path) -> None:
    f = tmp_path / "empty.csv"
    f.write_text(HEADER)
    sf = load_sources([f, _csv(tmp_path / "a.csv", 3)], SourceOptions(batch_rows=2))
    assert sf.files[0].rows == 0 and sf.rows == 3
    assert sf.frame["row_id"].to_list() == [0, 1, 2]


def test_batch_rows_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="batch_rows"):
        load_sources([_csv(tmp_path / "a.csv", 1)], SourceOptions(batch_rows=0))
