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


def task_plan(csv: str) -> dict[str, Any]:
    """read → normalize → dedupe (pipeline.sync.prepare), what `plan` does before the diff."""
    from pipeline.sync import prepare

    config = _sync_config(csv)
    start = time.perf_counter()
    frame, _ = prepare(config)
    eligible = frame.filter(frame["outcome"].is_null()).height
    return {"seconds": time.perf_counter() - start, "rows": frame.height, "eligible": eligible}


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
    "plan": task_plan,
    "diff": task_diff,
    "record": task_record,
    "sync": task_sync,
    "client": task_client,
}


def main(argv: list[str]) -> None:
    task, args = argv[0], json.loads(argv[1]) if len(argv) > 1 else {}
    out = TASKS[task](**args)
    out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["cpu_s"] = time.process_time()
    print(MARKER + json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
