"""Sharding: split one backfill across N processes or machines, with no overlap and no gap.

A row belongs to shard `xxhash64(device_token) mod N`. xxHash64 is fixed by its specification
(unlike polars' own `hash`, which may change between polars versions), so every process, on any
machine and any version, puts a token in the same shard. Every shard reads the whole input, so
validation and dedupe decide the same way everywhere; rows of other shards are reported as
`skipped / not_in_shard`, and each shard sends and records only its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import polars_hash as plh

from pipeline.errors import ConfigError

_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    index: int  # 0-based
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """'I/N' with 0 <= I < N, e.g. '0/4' ... '3/4'."""
        match = _SPEC.match(text)
        if not match:
            raise ConfigError(f"--shard {text!r} is not of the form I/N", hint="e.g. --shard 0/4")
        index, count = int(match[1]), int(match[2])
        if count < 1 or not 0 <= index < count:
            raise ConfigError(
                f"--shard {text}: the index must be 0..{max(count - 1, 0)} and N at least 1",
                hint="a Kubernetes Indexed Job passes JOB_COMPLETION_INDEX, which starts at 0",
            )
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def state_dir(self, base: Path) -> Path:
        """Each shard keeps its own state (and lock) below the shared base directory."""
        return base / f"shard-{self.index}-of-{self.count}"


def shard_of(token: pl.Expr, count: int) -> pl.Expr:
    return (plh.col(token.meta.output_name()).nchash.xxhash64() % count).cast(pl.Int64)


def keep_shard(frame: pl.DataFrame, shard: Shard) -> pl.DataFrame:
    """Still-eligible rows of other shards become skipped / not_in_shard."""
    if shard.count == 1:
        return frame
    elsewhere = pl.col("outcome").is_null() & (
        shard_of(pl.col("device_token"), shard.count) != shard.index
    )
    return frame.with_columns(
        pl.when(elsewhere).then(pl.lit("skipped")).otherwise(pl.col("outcome")).alias("outcome"),
        pl.when(elsewhere).then(pl.lit("not_in_shard")).otherwise(pl.col("reason")).alias("reason"),
        pl.when(elsewhere)
        .then(pl.lit(f"belongs to another shard than {shard}"))
        .otherwise(pl.col("detail"))
        .alias("detail"),
    )
