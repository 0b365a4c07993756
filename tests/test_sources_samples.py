"""The committed sample exports: reproducible, small, and no row ever disappears."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from pipeline.dedupe import dedupe
from pipeline.normalize import NormalizeOptions, normalize
from pipeline.sources import SourceOptions, load_sources

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"
NOW = datetime(2026, 12, 4, tzinfo=UTC)
CASES = [
    (SAMPLES / "generic_devices.csv", SourceOptions()),
    (SAMPLES / "onesignal_export.csv.gz", SourceOptions()),
    (SAMPLES / "airship_channels.csv", SourceOptions()),
    (SAMPLES / "braze_users.ndjson", SourceOptions()),
    (SAMPLES / "pushwoosh_devices.tsv", SourceOptions()),
    (SAMPLES / "cp1252" / "pushwoosh_latin.csv", SourceOptions(encoding="cp1252")),
    (SAMPLES / "homegrown" / "clientes.csv",
     SourceOptions(mapping_file=SAMPLES / "homegrown" / "mapping.toml")),
]  # fmt: skip


def run(path: Path, options: SourceOptions) -> tuple[int, pl.DataFrame]:
    sf = load_sources([path], options)
    return sf.files[0].rows, dedupe(normalize(sf.frame, NormalizeOptions(now=NOW)))


@pytest.mark.parametrize(("path", "options"), CASES, ids=lambda c: getattr(c, "name", ""))
def test_no_row_disappears(path: Path, options: SourceOptions) -> None:
    input_rows, out = run(path, options)
    counts = out.group_by("outcome").len()
    assert counts["len"].sum() == input_rows == out.height
    assert out["row_id"].n_unique() == input_rows


def test_generic_sample_covers_the_messy_cases() -> None:
    _, out = run(SAMPLES / "generic_devices.csv", SourceOptions())
    reasons = set(out["reason"].drop_nulls())
    assert {"missing_customer_id", "apns_token_not_fcm", "unknown_platform", "duplicate_token",
            "email_or_phone_token", "stale", "invalid_os_version"} <= reasons  # fmt: skip
    ok = out.filter(pl.col("outcome").is_null())
    assert {"cliente/42", "José Ñúñez 東京"} <= set(ok["customer_id"])
    assert ok.height > 200


def test_generator_is_deterministic_and_small(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(SAMPLES / "generate.py"), str(tmp_path)], check=True)
    produced = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert produced
    total = 0
    for rel in produced:
        assert (tmp_path / rel).read_bytes() == (SAMPLES / rel).read_bytes(), rel
        total += (SAMPLES / rel).stat().st_size
    assert total < 200_000
