"""Scenarios 4-6 against the sandbox: first sync vs bare clients, incremental rerun, resume.

The sandbox runs in its own process pinned to core 0; every client (ours and the baselines) runs
in a child process pinned to core 1, so "client CPU per row" is that process's RUSAGE_CHILDREN
user + system time (interpreter start, imports, reading and the report included) per sent row.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from bench.clients import API_KEY
from bench.harness import (
    CLIENT_CORE,
    Row,
    Sandbox,
    StepFailed,
    fmt_mb,
    fmt_s,
    median,
    pin,
    run_child,
)
from bench.scenarios import ratio_text, rows_label, verdict

CPU_TARGET_MS = 0.4  # client CPU per row at zero latency
THROUGHPUT_TARGET = 0.9  # share of concurrency / latency
BASELINE_NAMES = {
    "httpx": "bare httpx `AsyncClient` loop",
    "aiohttp": "bare aiohttp loop",
    "naive": "pandas + requests, one row at a time",
}


@dataclass
class Baseline:
    kind: str
    rows: int  # rows measured (capped); the time is extrapolated to the whole file
    repeat: int


def _rate(r: dict) -> float:
    return r["sent"] / r["seconds"]


def first_sync(
    path: Path, n: int, latency_ms: float, concurrency: int, repeat: int,
    baselines: list[Baseline], work: Path,
) -> tuple[list[Row], dict]:  # fmt: skip
    """Rows (one per baseline) and numbers for later scenarios (state dir, times)."""
    label = f"first sync @ {latency_ms:g} ms, c={concurrency}"
    size = rows_label(n)
    try:
        ours, base = _measure(path, n, latency_ms, concurrency, repeat, baselines, work)
    except StepFailed as exc:
        return [Row.failed(label, size, str(exc))], {}
    t_ours = median(r["seconds"] for r in ours)
    sent = ours[-1]["sent"]
    cpu_ms = median(r["child_cpu_s"] for r in ours) / sent * 1000
    run_cpu_ms = median(r["run_cpu_s"] for r in ours) / sent * 1000
    send_rate = median(r["send"].get("rows_per_s", 0.0) for r in ours)
    server_us = median(r["server_cpu_s"] for r in ours) / sent * 1e6
    info = {
        "state_dir": ours[-1]["state_dir"],
        "seconds": t_ours,
        "sent": sent,
        "wall_us_per_row": t_ours / sent * 1e6,
    }
    if latency_ms == 0:
        target = verdict(cpu_ms <= CPU_TARGET_MS, f"≤ {CPU_TARGET_MS} ms CPU/row: {cpu_ms:.2f}")
    else:
        ideal = concurrency / (latency_ms / 1000)
        share = send_rate / ideal
        target = verdict(
            share >= THROUGHPUT_TARGET,
            f"≥ {THROUGHPUT_TARGET:.0%} of {ideal:,.0f}/s: {send_rate:,.0f}/s ({share:.0%})",
        )
    ours_note = (
        f"ours: {sent:,} rows sent, {sent / t_ours:,.0f} rows/s end to end, {send_rate:,.0f}/s "
        f"in the send stage, {cpu_ms:.3f} ms CPU/row ({run_cpu_ms:.3f} in run_sync); "
        f"sandbox {server_us:.0f} µs CPU/request"
    )
    rows = []
    for b in baselines:
        name = BASELINE_NAMES[b.kind]
        results = base.get(b.kind)
        if isinstance(results, str):
            rows.append(Row(label, size, fmt_s(t_ours), name, "FAILED", notes=results))
            continue
        assert results is not None
        rate = median(_rate(r) for r in results)
        t_base = n / rate
        b_cpu = median(r["child_cpu_s"] / r["sent"] for r in results) * 1000
        measured = results[0]["sent"]
        how = "" if measured >= n else f", measured on {measured:,} rows and extrapolated"
        rows.append(
            Row(
                label,
                size,
                median=fmt_s(t_ours),
                baseline=name,
                baseline_median=fmt_s(t_base),
                ratio=ratio_text(t_ours, t_base, "its time"),
                rss=f"{fmt_mb(max(r['maxrss_mb'] for r in ours))} vs "
                f"{fmt_mb(max(r['maxrss_mb'] for r in results))}",
                target=target if not rows else "",
                notes=(ours_note + "; " if not rows else "")
                + f"{b.kind}: {rate:,.0f} rows/s, {b_cpu:.3f} ms CPU/row"
                + f" ({len(results)} run{'s' if len(results) > 1 else ''}{how})",
            )
        )
    return rows, info


def _measure(
    path: Path, n: int, latency_ms: float, concurrency: int, repeat: int,
    baselines: list[Baseline], work: Path,
) -> tuple[list[dict], dict[str, list[dict] | str]]:  # fmt: skip
    ours: list[dict] = []
    base: dict[str, list[dict] | str] = {b.kind: [] for b in baselines}
    with Sandbox(latency_ms) as sb:
        for i in range(repeat):  # interleaved, so drift on the machine hits every client alike
            sb.reset()
            state = work / f"state-{latency_ms:g}ms-{i}"
            shutil.rmtree(state, ignore_errors=True)
            server0 = sb.cpu_s()
            r = run_child("sync", core=CLIENT_CORE, csv=str(path), url=sb.url,
                          state_dir=str(state), concurrency=concurrency)  # fmt: skip
            if r["exit_code"] != 0 or r["sent"] == 0:
                raise StepFailed(f"run_sync exit {r['exit_code']}, outcomes {r['outcomes']}")
            r["state_dir"] = str(state)
            r["server_cpu_s"] = sb.cpu_s() - server0
            ours.append(r)
            for b in baselines:
                done = base[b.kind]
                if isinstance(done, str) or len(done) >= b.repeat:
                    continue
                sb.reset()
                try:
                    done.append(
                        run_child("client", core=CLIENT_CORE, kind=b.kind, csv=str(path),
                                  url=sb.url, rows=min(n, b.rows), concurrency=concurrency)
                    )  # fmt: skip
                except StepFailed as exc:
                    base[b.kind] = str(exc)
    return ours, base


def incremental(path: Path, n: int, first: dict, repeat: int, work: Path) -> Row:
    """Rerun after 1% of the rows changed (model), from the first sync's state."""
    label = "incremental rerun, 1% changed"
    if not first:
        return Row.failed(label, rows_label(n), "needs the first sync @ 0 ms, which failed")
    try:
        changed = _changed_copy(path)
        runs = []
        with Sandbox(0) as sb:
            for i in range(repeat):
                state = work / f"state-incremental-{i}"
                shutil.rmtree(state, ignore_errors=True)
                shutil.copytree(first["state_dir"], state)
                runs.append(run_child("sync", core=CLIENT_CORE, csv=str(changed), url=sb.url,
                                      state_dir=str(state), concurrency=64))  # fmt: skip
    except (StepFailed, OSError) as exc:
        return Row.failed(label, rows_label(n), str(exc))
    t = median(r["seconds"] for r in runs)
    sent = runs[-1]["sent"]
    changes = runs[-1]["changes"]
    return Row(
        label,
        rows_label(n),
        median=fmt_s(t),
        baseline="the first sync @ 0 ms",
        baseline_median=fmt_s(first["seconds"]),
        ratio=ratio_text(t, first["seconds"], "first sync"),
        rss=fmt_mb(max(r["maxrss_mb"] for r in runs)),
        target=verdict(sent <= first["sent"] * 0.02, f"sends only the changes: {sent:,} rows"),
        notes=f"{sent:,} rows sent vs {first['sent']:,} in the first sync; changes "
        f"{changes.get('changed', 0):,} changed, {changes.get('new', 0):,} new, "
        f"{changes.get('unchanged', 0):,} unchanged",
    )


def _changed_copy(path: Path) -> Path:
    out = path.with_name(path.stem + "_1pct_changed.csv")
    if not out.exists() or out.stat().st_mtime < path.stat().st_mtime:
        frame = pl.read_csv(path, infer_schema=False)
        idx = pl.int_range(pl.len())
        frame.with_columns(
            pl.when(idx % 100 == 37)
            .then(pl.coalesce(pl.col("model"), pl.lit("")) + " rev2")
            .otherwise(pl.col("model"))
            .alias("model")
        ).write_csv(out)
    return out


def resume(path: Path, n: int, latency_ms: float, concurrency: int, work: Path) -> Row:
    """SIGKILL a CLI sync mid-way, rerun it; count rows Masivo accepted twice."""
    label = f"resume after SIGKILL @ {latency_ms:g} ms, c={concurrency}"
    state = work / "state-resume"
    shutil.rmtree(state, ignore_errors=True)
    cmd = [sys.executable, "-m", "pipeline", "sync", str(path), "--state-dir", str(state),
           "--concurrency", str(concurrency), "--max-age", "0", "--quiet"]  # fmt: skip
    try:
        with Sandbox(latency_ms) as sb:
            env = os.environ | {"MASIVO_API_KEY": API_KEY, "MASIVO_BASE_URL": sb.url}
            killed_at, last_second = _run_and_kill(cmd, env, work, sb, kill_after=int(n * 0.4))
            time.sleep(0.5)  # requests in flight at the kill still reach the server
            before = _accepted(sb)
            start = time.perf_counter()
            rerun = subprocess.run(cmd, env=env, cwd=work, capture_output=True, text=True,
                                   preexec_fn=pin(CLIENT_CORE), timeout=600)  # fmt: skip
            t_rerun = time.perf_counter() - start
            if rerun.returncode != 0:
                raise StepFailed(f"rerun exited {rerun.returncode}: {rerun.stderr[-160:]}")
            regs = sb.registrations()
    except (StepFailed, OSError, subprocess.SubprocessError) as exc:
        return Row.failed(label, rows_label(n), str(exc))
    resent = sum(1 for r in regs if r["accepted"] > 1)
    bound = concurrency + last_second
    return Row(
        label,
        rows_label(n),
        median=f"{resent:,} rows resent",
        baseline="bound: concurrency + rows done in the last second",
        baseline_median=f"{bound:,} rows",
        ratio=f"{resent / bound:.2f}× the bound",
        target=verdict(resent <= bound, "resent ≤ bound"),
        notes=f"killed with {killed_at:,} rows accepted ({before:,} after in-flight ones "
        f"landed); rerun took {fmt_s(t_rerun)}, {len(regs):,} devices registered in all",
    )


def _accepted(sb: Sandbox) -> int:
    return int(sb.stats()["by_route"].get("patch_devices", {}).get("200", 0))


def _run_and_kill(
    cmd: list[str], env: dict, cwd: Path, sb: Sandbox, kill_after: int
) -> tuple[int, int]:
    """Start the CLI, SIGKILL it once `kill_after` rows were accepted; (accepted, last 1 s)."""
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, preexec_fn=pin(CLIENT_CORE))  # fmt: skip
    history: deque[tuple[float, int]] = deque()
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            time.sleep(0.02)
            now, accepted = time.monotonic(), _accepted(sb)
            history.append((now, accepted))
            while len(history) > 1 and history[1][0] <= now - 1.0:
                history.popleft()  # history[0]: the last sample at least 1 s old
            if accepted >= kill_after:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return accepted, accepted - history[0][1]
            if proc.poll() is not None:
                raise StepFailed(f"the sync ended (exit {proc.returncode}) before the kill")
        raise StepFailed("the sync did not get far enough in 300 s")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
