"""Sharded backfills: N processes split the tokens with no overlap and no gap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pipeline.errors import ConfigError
from pipeline.shard import Shard, keep_shard

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data" / "generic_devices.csv"


def test_parse() -> None:
    assert Shard.parse("2/4") == Shard(2, 4)
    assert str(Shard.parse(" 0 / 1 ")) == "0/1"
    for bad in ("4/4", "-1/4", "1/0", "a/b", "3"):
        with pytest.raises(ConfigError):
            Shard.parse(bad)


def test_assignment_is_stable_by_specification() -> None:
    # xxHash64("abc", seed 0) = 0x44bc2cf5ad770999, from the xxHash reference implementation:
    # the same on every machine and polars version, so shards never reshuffle after an upgrade.
    frame = pl.DataFrame(
        {"device_token": ["abc"], "outcome": [None], "reason": [None], "detail": [None]},
        schema={
            "device_token": pl.String,
            "outcome": pl.String,
            "reason": pl.String,
            "detail": pl.String,
        },
    )
    owner = 0x44BC2CF5AD770999 % 7
    for index in range(7):
        kept = keep_shard(frame, Shard(index, 7))
        assert kept["outcome"][0] == (None if index == owner else "skipped")


def test_every_eligible_row_lands_in_exactly_one_shard() -> None:
    tokens = [f"t{i}" for i in range(10_000)]
    frame = pl.DataFrame(
        {
            "device_token": tokens,
            "outcome": [None] * 10_000,
            "reason": [None] * 10_000,
            "detail": [None] * 10_000,
        },
        schema={
            "device_token": pl.String,
            "outcome": pl.String,
            "reason": pl.String,
            "detail": pl.String,
        },
    )
    owners = pl.concat(
        [
            keep_shard(frame, Shard(i, 4))
            .filter(pl.col("outcome").is_null())
            .select("device_token")
            for i in range(4)
        ]
    )
    assert owners.height == 10_000 and owners["device_token"].n_unique() == 10_000
    sizes = [keep_shard(frame, Shard(i, 4))["outcome"].null_count() for i in range(4)]
    assert min(sizes) > 2_000  # roughly even


@pytest.mark.slow
def test_four_shard_processes_deliver_every_valid_row_exactly_once(
    sandbox: Any, tmp_path: Path
) -> None:
    env = dict(os.environ, MASIVO_API_KEY=sandbox.config.api_key, MASIVO_BASE_URL=sandbox.base_url)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pipeline",
                "sync",
                str(SAMPLE),
                "--state-dir",
                str(tmp_path / "state"),
                "--shard",
                f"{i}/4",
                "--report-dir",
                str(tmp_path / f"r{i}"),
                "-q",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        for i in range(4)
    ]
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    summaries = [json.loads((tmp_path / f"r{i}" / "summary.json").read_text()) for i in range(4)]
    assert {s["shard"] for s in summaries} == {"0/4", "1/4", "2/4", "3/4"}
    validate = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "validate",
            str(SAMPLE),
            "--report-dir",
            str(tmp_path / "v"),
            "-q",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert validate.returncode == 0
    valid = pl.read_parquet(tmp_path / "v" / "results.parquet").filter(
        pl.col("reason") == "dry_run"
    )
    succeeded = sum(s["outcomes"]["succeeded"] for s in summaries)
    assert succeeded == valid.height
    registrations = sandbox.state.registrations()
    assert len(registrations) == valid.height  # every valid row...
    assert all(r.accepted == 1 for r in registrations)  # ...exactly once
    for i in range(4):
        assert (tmp_path / "state" / f"shard-{i}-of-4" / "state.json").exists()
