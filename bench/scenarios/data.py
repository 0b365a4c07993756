"""Scenarios on data alone: generating it, read + normalize, plan (+ its peak memory at 10M),
diff, state record()."""

from __future__ import annotations

from pathlib import Path

from bench.gen import GEN_VERSION, OUT_DIR, SEED, ensure_csv
from bench.harness import Row, StepFailed, fmt_mb, fmt_s, median, run_child
from bench.scenarios import ratio_text, rows_label, verdict

READ_NORMALIZE_TARGET = DIFF_TARGET = 2.0
MEMORY_TARGET = 1.2  # peak RSS of planning vs polars holding the planned table
RECORD_TARGET = 0.10  # record() under 10% of the send time per row


def generate(sizes: list[int]) -> tuple[list[Row], dict[int, Path]]:
    rows, paths = [], {}
    for n in sorted(set(sizes)):
        try:
            path, took = ensure_csv(n)
        except Exception as exc:
            rows.append(Row.failed("generate CSV", rows_label(n), f"{type(exc).__name__}: {exc}"))
            continue
        paths[n] = path
        size = f"{path.stat().st_size / 1e6:,.1f} MB CSV, seed {SEED}"
        rows.append(
            Row(
                "generate CSV (bench/gen.py)",
                rows_label(n),
                median=fmt_s(took) if took is not None else "cached",
                notes=f"{size}; in bench/out/ (gitignored), regenerated when missing",
            )
        )
    return rows, paths


def snapshot(path: Path, n: int) -> Path:
    """The state a previous run left for this CSV (bench.worker task_snapshot), made afresh on
    every bench run so it always matches what the code plans now."""
    out = OUT_DIR / f"state_{n}_s{SEED}_v{GEN_VERSION}.parquet"
    run_child("snapshot", csv=str(path), out=str(out))
    return out


def _interleaved(repeat: int, ours: str, base: str, **args: object) -> tuple[list[dict], ...]:
    """Results of `repeat` runs of task `ours` and of its baseline task, alternating (so drifting
    load hits both alike), each in a fresh process with the same arguments."""
    got: tuple[list[dict], list[dict]] = ([], [])
    for _ in range(repeat):
        for out, task in zip(got, (ours, base), strict=True):
            out.append(run_child(task, **args))
    return got


def _peaks(ours: list[dict], base: list[dict]) -> str:
    return f"{fmt_mb(max(r['maxrss_mb'] for r in ours))} vs {fmt_mb(max(r['maxrss_mb'] for r in base))}"


def read_normalize(path: Path, n: int, repeat: int) -> Row:
    """read + normalize (load_sources with normalize per batch) vs a bare pl.read_csv."""
    name = "read + normalize"
    try:
        ours, base = _interleaved(repeat, "read_normalize", "read", csv=str(path))
    except StepFailed as exc:
        return Row.failed(name, rows_label(n), str(exc))
    t_ours, t_base = median(r["seconds"] for r in ours), median(r["seconds"] for r in base)
    ratio = t_ours / t_base
    return Row(
        name,
        rows_label(n),
        median=fmt_s(t_ours),
        baseline="`pl.read_csv(infer_schema=False)`",
        baseline_median=fmt_s(t_base),
        ratio=ratio_text(t_ours, t_base, "bare polars read"),
        rss=_peaks(ours, base),
        target=verdict(ratio <= READ_NORMALIZE_TARGET, f"≤ {READ_NORMALIZE_TARGET:g}×"),
        notes=(
            "every value checked and classified; one process per step; "
            f"{fmt_s(median(r['normalize_s'] for r in ours))} inside normalize (past the first "
            "batch, polars reads the next one meanwhile)"
        ),
    )


def plan(path: Path, state: Path, n: int, repeat: int) -> Row:
    """What `plan` computes before its report (read → normalize → dedupe → diff against the
    state) vs a bare read + hash + anti-join against the same state."""
    name = "plan: read + normalize + dedupe + diff"
    try:
        ours, base = _interleaved(
            repeat, "plan", "read_antijoin", csv=str(path), snapshot=str(state)
        )
    except StepFailed as exc:
        return Row.failed(name, rows_label(n), str(exc))
    t_ours, t_base = median(r["seconds"] for r in ours), median(r["seconds"] for r in base)
    changes = ", ".join(f"{v:,} {k}" for k, v in sorted(ours[0]["changes"].items()))
    return Row(
        name,
        rows_label(n),
        median=fmt_s(t_ours),
        baseline="`pl.read_csv` + hash of token and payload + anti-join on the state",
        baseline_median=fmt_s(t_base),
        ratio=ratio_text(t_ours, t_base, "bare read + anti-join"),
        rss=_peaks(ours, base),
        notes=f"vs a state of the last run; diff says {changes}; the baseline reads raw values, "
        "so it cannot tell what changed",
    )


def memory(path: Path, state: Path | None, n: int) -> Row:
    """Peak RSS of planning n rows vs a fresh polars process holding the planned table (and the
    state snapshot, when the plan is diffed against one)."""
    name = "plan: peak memory, " + ("against the last run's state" if state else "first run")
    table = OUT_DIR / f"planned_{n}.parquet"
    try:
        ours = run_child(
            "plan", csv=str(path), snapshot=str(state) if state else None, keep=str(table)
        )
        base = run_child("hold", tables=[str(table), *([str(state)] if state else [])])
    except StepFailed as exc:
        return Row.failed(name, rows_label(n), str(exc))
    finally:
        table.unlink(missing_ok=True)
    ratio = ours["maxrss_mb"] / base["maxrss_mb"]
    held = "the planned table and the state" if state else "the planned table"
    return Row(
        name,
        rows_label(n),
        median=fmt_mb(ours["maxrss_mb"]),
        baseline=f"`pl.read_parquet` of {held} (what polars needs to hold it)",
        baseline_median=fmt_mb(base["maxrss_mb"]),
        ratio=f"{ratio:.2f}× holding {held}",
        rss=fmt_mb(ours["maxrss_mb"]),
        target=verdict(ratio <= MEMORY_TARGET, f"≤ {MEMORY_TARGET:g}×"),
        notes=f"plan took {fmt_s(ours['seconds'])}; peak RSS of each process, interpreter "
        f"included; polars' estimated_size of the planned table: {fmt_mb(ours['table_mb'])} "
        "(it leaves out the 16-byte view of each string)",
    )


def diff(n: int, repeat: int) -> Row:
    """pipeline.diff.diff vs a bare key + payload-hash anti-join (bench/state_bench.py data)."""
    name = "diff against the state snapshot"
    try:
        r = run_child("diff", rows=n, repeat=repeat)
    except StepFailed as exc:
        return Row.failed(name, rows_label(n), str(exc))
    s = r["samples"]
    t_diff, t_base = median(s["diff"]), median(s["base"])
    t_diff_rm, t_base_rm = median(s["diff_rm"]), median(s["base_rm"])
    ratio = t_diff / t_base
    counts = r["counts"]
    return Row(
        name,
        rows_label(n),
        median=fmt_s(t_diff),
        baseline="anti-join on token + `hash_rows`",
        baseline_median=fmt_s(t_base),
        ratio=ratio_text(t_diff, t_base, "bare anti-join"),
        rss=f"{fmt_mb(r['maxrss_mb'])} (both, one process)",
        target=verdict(ratio <= DIFF_TARGET, f"≤ {DIFF_TARGET:g}×"),
        notes=f"with removed tokens: {fmt_s(t_diff_rm)} vs {fmt_s(t_base_rm)} "
        f"({t_diff_rm / t_base_rm:.2f}×); vs {counts['state_tokens']:,} state tokens; "
        f"synthetic frames of bench/state_bench.py",
    )


def record(results: int, send: dict | None) -> Row:
    """StateStore.record() per result (as run_sync calls it: one result at a time)."""
    name = "state record() per result"
    try:
        c = run_child("record", results=results, batch=1)
    except StepFailed as exc:
        return Row.failed(name, f"{results:,} results", str(exc))
    cpu_us = c["cpu_us"]
    if send and send.get("wall_us_per_row"):
        per_row, what = send["wall_us_per_row"], "send time per row (first sync @ 0 ms)"
    else:
        per_row, what = 200.0, "assumed 200 µs/row send time (the sync scenario failed)"
    share = cpu_us / per_row
    return Row(
        name,
        f"{results:,} results",
        median=f"{cpu_us:.1f} µs CPU",
        baseline=what,
        baseline_median=f"{per_row:.0f} µs",
        ratio=f"{share:.1%} of send time per row",
        rss=fmt_mb(c["maxrss_mb"]),
        target=verdict(share < RECORD_TARGET, f"< {RECORD_TARGET:.0%}"),
        notes=f"caller {c['caller_us']:.1f} µs, wall incl. fsyncs {c['wall_us']:.1f} µs, "
        f"journal {c['journal_bytes']:.0f} B/result; CPU includes the background writer",
    )
