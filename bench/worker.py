"""One measured step in its own process, so its peak RSS and CPU are its own.

    python -m bench.worker TASK '{"json": "arguments"}'

The last stdout line is `BENCH-RESULT {...}`: the task's numbers plus `maxrss_mb` (this process's
peak RSS) and `cpu_s` (its CPU time, imports included). Timings inside exclude interpreter start
and imports, which the parent's RUSAGE_CHILDREN CPU figures include.
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MARKER = "BENCH-RESULT "


def task_read(csv: str) -> dict[str, Any]:
    import polars as pl

    start = time.perf_counter()
    frame = pl.read_csv(csv, infer_schema=False)
    return {"seconds": time.perf_counter() - start, "rows": frame.height}


def _sync_config(csv: str, **kw: Any) -> Any:
    from bench.gen import ANCHOR
    from pipeline.normalize import NormalizeOptions
    from pipeline.sync import SyncConfig

    return SyncConfig(inputs=(csv,), normalize=NormalizeOptions(now=ANCHOR), **kw)


def task_read_normalize(csv: str) -> dict[str, Any]:
    """read → normalize (pipeline.sources.load_sources with normalize as its batch transform)."""
    import polars as pl

    from pipeline.normalize import normalize
    from pipeline.sources import load_sources

    config = _sync_config(csv)
    in_normalize = 0.0

    def timed_normalize(batch: pl.DataFrame) -> pl.DataFrame:
        nonlocal in_normalize
        began = time.perf_counter()
        try:
            return normalize(batch, config.normalize)
        finally:
            in_normalize += time.perf_counter() - began

    start = time.perf_counter()
    sources = load_sources(config.inputs, config.sources, transform=timed_normalize)
    rows = sources.rows
    return {"seconds": time.perf_counter() - start, "normalize_s": in_normalize, "rows": rows}


def task_snapshot(csv: str, out: str) -> dict[str, Any]:
    """A state snapshot as the last run would have left it: 97% of the eligible tokens accepted
    with the payload planned now, 1% of those with another model (so they are `changed`)."""
    import polars as pl

    from pipeline.state import SNAPSHOT_SCHEMA
    from pipeline.sync import prepare

    frame, _ = prepare(_sync_config(csv))
    eligible = frame.filter(pl.col("outcome").is_null()).with_row_index("_i")
    accepted_at = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
    errors = ("last_error_reason", "last_error_at", "last_error", "last_error_run_id")
    snap = (
        eligible.filter(pl.col("_i") % 100 < 97)
        .select(
            "device_token",
            "customer_id",
            "platform",
            pl.when(pl.col("_i") % 100 == 0)
            .then(pl.lit("Pixel 9"))
            .otherwise(pl.col("model"))
            .alias("model"),
            "os_version",
            pl.lit(accepted_at).alias("accepted_at"),
            pl.lit("r-previous").alias("accepted_run_id"),
            *(pl.lit(None).alias(name) for name in errors),
        )
        .cast(SNAPSHOT_SCHEMA)
    )
    snap.write_parquet(out)
    return {"tokens": snap.height}


def task_plan(csv: str, snapshot: str | None, keep: str | None = None) -> dict[str, Any]:
    """read → normalize → dedupe → diff against a state snapshot (None: an empty state, the
    first run of a backfill): what `plan` does before its report. With `keep`, the planned
    table is written there as Parquet (outside the timing)."""
    import polars as pl

    from pipeline.diff import diff, removed_tokens
    from pipeline.state import SNAPSHOT_SCHEMA
    from pipeline.sync import prepare

    config = _sync_config(csv)
    start = time.perf_counter()
    frame, _ = prepare(config)
    # what StateStore.snapshot() reads
    snap = pl.read_parquet(snapshot) if snapshot else pl.DataFrame(schema=SNAPSHOT_SCHEMA)
    frame = diff(frame, snap)
    removed = removed_tokens(frame, snap).height
    seconds = time.perf_counter() - start
    counts = {str(k): v for k, v in frame.group_by("change").len().iter_rows() if k}
    out = {"seconds": seconds, "rows": frame.height, "changes": counts, "removed": removed}
    out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["table_mb"] = frame.estimated_size() / 1e6
    if keep:
        frame.write_parquet(keep)
    return out


def task_read_antijoin(csv: str, snapshot: str) -> dict[str, Any]:
    """The bare baseline of a plan: read the file, hash token + payload, anti-join the state."""
    import polars as pl

    payload = ["customer_id", "platform", "model", "os_version"]
    start = time.perf_counter()
    frame = pl.read_csv(csv, infer_schema=False)
    snap = pl.read_parquet(snapshot)
    hashed = frame.select("device_token", pl.struct(payload).hash().alias("h"))
    snap_h = snap.select("device_token", pl.struct(payload).hash().alias("h"))
    to_send = hashed.join(snap_h, on=["device_token", "h"], how="anti")
    return {"seconds": time.perf_counter() - start, "rows": frame.height, "to_send": to_send.height}


def task_hold(tables: list[str]) -> dict[str, Any]:
    """What polars itself needs to hold tables: read them back from Parquet in a fresh process."""
    import polars as pl

    start = time.perf_counter()
    frames = [pl.read_parquet(table) for table in tables]
    return {"seconds": time.perf_counter() - start, "rows": sum(f.height for f in frames)}


def task_diff(rows: int, repeat: int) -> dict[str, Any]:
    from bench.state_bench import diff_samples

    samples, counts = diff_samples(rows, repeat)
    return {"samples": samples, "counts": counts}


def task_record(results: int, batch: int) -> dict[str, Any]:
    from bench.state_bench import record_cost

    with tempfile.TemporaryDirectory() as tmp:
        return record_cost(results, batch, Path(tmp) / "state")


def task_sync(csv: str, url: str, state_dir: str, concurrency: int) -> dict[str, Any]:
    """Our run_sync end to end: read, normalize, dedupe, diff, send, record, report."""
    from bench.clients import API_KEY
    from pipeline.client import Credentials
    from pipeline.send import SendOptions
    from pipeline.sync import run_sync

    config = _sync_config(
        csv,
        base_url=url,
        state_dir=Path(state_dir),
        credentials=Credentials(api_key=API_KEY),
        send=SendOptions(concurrency=concurrency),
    )
    cpu0, start = time.process_time(), time.perf_counter()
    result = run_sync(config)
    outcomes = result.summary.outcomes
    sent = sum(outcomes.get(k, 0) for k in ("succeeded", "rejected", "failed"))
    return {
        "seconds": time.perf_counter() - start,
        "run_cpu_s": time.process_time() - cpu0,
        "rows": result.summary.input_rows,
        "sent": sent,
        "exit_code": result.exit_code,
        "outcomes": outcomes,
        "changes": result.summary.extra.get("changes", {}),
        "send": result.summary.extra.get("send", {}),
    }


def task_client(kind: str, csv: str, url: str, rows: int, concurrency: int) -> dict[str, Any]:
    from bench.clients import CLIENTS

    start = time.perf_counter()
    statuses = CLIENTS[kind](csv, url, rows, concurrency)
    return {
        "seconds": time.perf_counter() - start,
        "sent": sum(statuses.values()),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


TASKS = {
    "read": task_read,
    "read_normalize": task_read_normalize,
    "snapshot": task_snapshot,
    "plan": task_plan,
    "read_antijoin": task_read_antijoin,
    "hold": task_hold,
    "diff": task_diff,
    "record": task_record,
    "sync": task_sync,
    "client": task_client,
}


def main(argv: list[str]) -> None:
    task, args = argv[0], json.loads(argv[1]) if len(argv) > 1 else {}
    out = TASKS[task](**args)
    out.setdefault("maxrss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    out["cpu_s"] = time.process_time()
    print(MARKER + json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
