"""`make bench` / `python -m bench`: every scenario side by side with its baseline, one table.

    python -m bench                      # full run (~10-15 min on 2 cores); rewrites docs/benchmarks.md
    python -m bench --quick              # smoke test: small sizes, one repeat, writes nothing
    python -m bench --quick --rows 2000  # even smaller
    python -m bench --only normalize,plan  # a subset (full sizes); --output to write it somewhere

Scenarios: generate (bench/gen.py), normalize (read + normalize), plan (read + normalize + dedupe
+ diff), memory (plan's peak RSS at 10M rows), diff, record, sync (first sync at 0 and 50 ms
latency against bare httpx / aiohttp / pandas+requests loops), incremental, resume.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import report
from bench.gen import OUT_DIR
from bench.harness import Clock, Row, markdown_table
from bench.scenarios import data, rows_label
from bench.scenarios.sync import Baseline, first_sync, incremental, resume

SCENARIOS = ("generate", "normalize", "plan", "memory", "diff", "record", "sync", "incremental",
             "resume")  # fmt: skip


@dataclass
class Sizes:
    plan: list[int]  # read + normalize, and plan
    memory: list[int]  # plan's peak memory
    diff: list[int]
    sync: int
    resume: int
    record: int
    repeat: int
    # per latency: (concurrency, baselines)
    latencies: dict[float, tuple[int, list[Baseline]]] = field(default_factory=dict)


def full_sizes(repeat: int) -> Sizes:
    return Sizes(
        plan=[1_000_000, 5_000_000],
        memory=[10_000_000],
        diff=[1_000_000, 5_000_000],
        sync=100_000,
        resume=20_000,
        record=200_000,
        repeat=repeat,
        latencies={
            # Baselines are capped (time budget) and extrapolated: their rate is steady.
            0: (64, [Baseline("httpx", 5_000, repeat), Baseline("aiohttp", 30_000, repeat),
                     Baseline("naive", 5_000, 1)]),
            # httpx with 256 connections spends ~8 ms CPU per request: 2,000 rows take ~15 s;
            # the naive loop does ~19 rows/s at 50 ms: 1,000 rows take ~52 s
            50: (256, [Baseline("httpx", 2_000, repeat), Baseline("aiohttp", 30_000, repeat),
                       Baseline("naive", 1_000, 1)]),
        },
    )  # fmt: skip


def quick_sizes(rows: int) -> Sizes:
    def cap(n: int) -> int:
        return min(rows, n)

    return Sizes(
        plan=[rows],
        memory=[rows],
        diff=[rows],
        sync=rows,
        resume=rows,
        record=cap(20_000),
        repeat=1,
        latencies={
            0: (64, [Baseline("httpx", cap(500), 1), Baseline("aiohttp", rows, 1),
                     Baseline("naive", cap(200), 1)]),
            50: (256, [Baseline("httpx", cap(500), 1), Baseline("aiohttp", rows, 1),
                       Baseline("naive", cap(20), 1)]),
        },
    )  # fmt: skip


def guarded(name: str, size: str, fn: Callable[[], list[Row]]) -> list[Row]:
    """Run one scenario; any unexpected error becomes its FAILED row, and the run goes on."""
    try:
        return fn()
    except Exception as exc:
        return [Row.failed(name, size, f"{type(exc).__name__}: {exc}")]


def run(sizes: Sizes, only: set[str], log: Callable[[str], None]) -> list[Row]:
    out: dict[str, list[Row]] = {name: [] for name in SCENARIOS}
    on_csv = only - {"diff", "record"}
    want = sorted({*sizes.plan, *sizes.memory, sizes.sync, sizes.resume} if on_csv else set())
    gen_rows, paths = data.generate(want)
    out["generate"] = gen_rows if "generate" in only else []
    log("data ready")

    def csv(n: int) -> Path:
        if n not in paths:
            raise RuntimeError(f"no {rows_label(n)} CSV (generation failed)")
        return paths[n]

    for n in sizes.plan if "normalize" in only else []:
        out["normalize"] += guarded(
            "read + normalize",
            rows_label(n),
            lambda n=n: [data.read_normalize(csv(n), n, sizes.repeat)],
        )
        log(f"read + normalize {rows_label(n)}")
    states: dict[int, Path] = {}

    def state(n: int) -> Path:
        if n not in states:
            states[n] = data.snapshot(csv(n), n)
        return states[n]

    for n in sizes.plan if "plan" in only else []:
        out["plan"] += guarded(
            "plan", rows_label(n), lambda n=n: [data.plan(csv(n), state(n), n, sizes.repeat)]
        )
        log(f"plan {rows_label(n)}")
    for n in sizes.memory if "memory" in only else []:
        for with_state in (False, True):
            out["memory"] += guarded(
                "plan: peak memory",
                rows_label(n),
                lambda n=n, s=with_state: [data.memory(csv(n), state(n) if s else None, n)],
            )
        log(f"plan memory {rows_label(n)}")
    for n in sizes.diff if "diff" in only else []:
        out["diff"] += guarded("diff", rows_label(n), lambda n=n: [data.diff(n, sizes.repeat)])
        log(f"diff {rows_label(n)}")
    work = Path(tempfile.mkdtemp(prefix="sync-", dir=OUT_DIR))
    first: dict[float, dict] = {}
    try:
        for latency, (conc, baselines) in sizes.latencies.items():
            if "sync" not in only and not (latency == 0 and "incremental" in only):
                continue
            name = f"first sync @ {latency:g} ms"

            def step(latency: float = latency, conc: int = conc, bl: list = baselines) -> list[Row]:
                rows, first[latency] = first_sync(csv(sizes.sync), sizes.sync, latency, conc,
                                                  sizes.repeat, bl, work)  # fmt: skip
                return rows

            rows = guarded(name, rows_label(sizes.sync), step)
            out["sync"] += rows if "sync" in only else []
            log(name)
        if "incremental" in only:
            out["incremental"] = guarded("incremental", rows_label(sizes.sync), lambda: [
                incremental(csv(sizes.sync), sizes.sync, first.get(0, {}), sizes.repeat, work)])  # fmt: skip
            log("incremental")
        if "resume" in only:
            out["resume"] = guarded("resume", rows_label(sizes.resume), lambda: [
                resume(csv(sizes.resume), sizes.resume, 10, 64, work)])  # fmt: skip
            log("resume")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if "record" in only:
        out["record"] = guarded("record", f"{sizes.record:,} results",
                                lambda: [data.record(sizes.record, first.get(0))])  # fmt: skip
        log("record")
    return [row for name in SCENARIOS for row in out[name]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat")
    parser.add_argument("--rows", type=int, default=20_000, help="rows in --quick mode")
    parser.add_argument("--repeat", type=int, default=3, help="repeats (full mode)")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="Markdown file to write [default: docs/benchmarks.md for a full run of everything; "
        "nothing for --quick or --only]",
    )
    args = parser.parse_args(argv)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    if unknown := only - set(SCENARIOS):
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    sizes = quick_sizes(args.rows) if args.quick else full_sizes(args.repeat)
    output = args.output
    if output is None and not args.quick and only == set(SCENARIOS):
        output = report.DOC

    clock = Clock()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    machine = report.machine()
    print(report.machine_lines(machine), file=sys.stderr)

    def log(step: str) -> None:
        print(f"[{clock.elapsed():6.0f} s] {step}", file=sys.stderr, flush=True)

    rows = run(sizes, only, log)
    table = markdown_table(rows)
    total = clock.elapsed()
    mode = "quick" if args.quick else "full"
    print(table)
    print(f"\nTotal runtime: {total / 60:.1f} min ({mode}, median of {sizes.repeat}).")
    if output is not None:
        report.write(output, table, machine, total, mode, sizes.repeat)
        print(f"Wrote {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
