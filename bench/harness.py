"""Running measured steps in child processes, the sandbox process, and the results table."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.worker import MARKER

ROOT = Path(__file__).resolve().parents[1]
SANDBOX_CORE, CLIENT_CORE = 0, 1


class StepFailed(RuntimeError):
    """A measured step failed; the message is short enough for a table cell."""


def pin(core: int | None) -> Callable[[], None] | None:
    if core is None or not hasattr(os, "sched_setaffinity"):
        return None
    cores = os.sched_getaffinity(0)
    if core not in cores:  # fewer cores than expected: do not pin
        return None
    return lambda: os.sched_setaffinity(0, {core})


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_child(task: str, core: int | None = None, timeout: float = 900, **args: Any) -> dict:
    """Run bench.worker TASK in a fresh interpreter; its result plus `child_cpu_s` (the whole
    process's user + system CPU from RUSAGE_CHILDREN, interpreter start and imports included)."""
    cmd = [sys.executable, "-m", "bench.worker", task, json.dumps(args)]
    cpu0 = _children_cpu()
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, preexec_fn=pin(core)
        )
    except subprocess.TimeoutExpired as exc:
        raise StepFailed(f"{task} timed out after {timeout:.0f} s") from exc
    cpu = _children_cpu() - cpu0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARKER)]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise StepFailed(f"{task} exited {proc.returncode}: {tail[:160]}")
    result = json.loads(lines[-1][len(MARKER) :])
    result["child_cpu_s"] = cpu
    return result


class Sandbox:
    """`python -m pipeline sandbox` in its own process, pinned to SANDBOX_CORE."""

    def __init__(self, latency_ms: float = 0.0) -> None:
        self.latency_ms = latency_ms
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""  # API base URL
        self.root = ""

    def __enter__(self) -> Sandbox:
        cmd = [sys.executable, "-m", "pipeline", "sandbox", "--port", "0", "--no-memory-log"]
        cmd += ["--latency-ms", str(self.latency_ms), "--seed", "1"]
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            preexec_fn=pin(SANDBOX_CORE),
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if "http" not in line:
            self.__exit__()
            raise StepFailed(f"sandbox did not start: {line!r}")
        self.url = line.split()[-1]
        self.root = self.url.split("/api/")[0]
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def _call(self, method: str, name: str) -> Any:
        request = urllib.request.Request(f"{self.root}/_sandbox/{name}", method=method)
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def cpu_s(self) -> float:
        """The sandbox process's user + system CPU so far (to see whether it is the bottleneck)."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def reset(self) -> None:
        self._call("POST", "reset")

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "stats")

    def registrations(self) -> list[dict[str, Any]]:
        return self._call("GET", "registrations")


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds >= 100:
        return f"{seconds:,.0f} s"
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1000:.0f} ms"


def fmt_mb(mb: float | None) -> str:
    if mb is None:
        return ""
    return f"{mb / 1024:.2f} GB" if mb >= 1024 else f"{mb:.0f} MB"


@dataclass
class Row:
    scenario: str
    size: str
    median: str = "—"
    baseline: str = "—"
    baseline_median: str = "—"
    ratio: str = "—"
    rss: str = ""
    target: str = ""
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # numbers for later rows, not printed

    @classmethod
    def failed(cls, scenario: str, size: str, reason: str) -> Row:
        return cls(scenario, size, median="FAILED", notes=reason.replace("|", "/"))


COLUMNS = ("scenario", "size", "median", "baseline", "baseline median", "ratio", "peak RSS")
COLUMNS += ("target", "notes")


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = (r.scenario, r.size, r.median, r.baseline, r.baseline_median, r.ratio, r.rss)
        cells += (r.target, r.notes)
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


class Clock:
    """Wall time since construction, for the total-runtime line."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start
