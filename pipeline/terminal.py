"""What the CLI prints: progress while sending, the end-of-run summary, one-line errors.

On a terminal a rich progress bar; elsewhere (cron, CI) one concise line every few seconds, so
logs read the next morning show how far a run got.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console as RichConsole
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from pipeline.outcomes import OUTCOMES, REASONS
from pipeline.report import Summary

EXIT_MEANINGS = {
    0: "run completed",
    1: "completed, but too many rows failed or were rejected (--max-failure-rate)",
    2: "usage, configuration or input error",
    3: "stopped by a systemic error",
    130: "interrupted (Ctrl-C)",
    143: "terminated (SIGTERM)",
}

_LOG_EVERY_S = 10.0

ProgressFn = Callable[[int, int], None]


class Console:
    def __init__(self, *, quiet: bool = False) -> None:
        self.quiet = quiet
        self.out = RichConsole(highlight=False)
        self.err = RichConsole(stderr=True, highlight=False)

    def error(self, message: str) -> None:
        self.err.print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)

    def info(self, message: str) -> None:
        if not self.quiet:
            self.err.print(message, markup=False, soft_wrap=True)

    @contextmanager
    def progress(self, label: str) -> Iterator[ProgressFn]:
        if self.quiet:
            yield _ignore
        elif self.err.is_terminal:
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.err,
                transient=True,
            ) as bar:
                task = bar.add_task(label, total=None, rate="")
                started = time.monotonic()

                def update(done: int, total: int) -> None:
                    elapsed = max(time.monotonic() - started, 1e-9)
                    bar.update(task, completed=done, total=total, rate=f"{done / elapsed:,.0f}/s")

                yield update
        else:
            yield _LineLogger(label, self.err)

    def summary(self, summary: Summary, report_dir: Path) -> None:
        data = summary.as_dict()
        if not self.quiet:
            table = Table(title=f"Run {summary.run_id} ({summary.mode})", title_justify="left")
            table.add_column("outcome")
            table.add_column("rows", justify="right")
            table.add_column("top reasons")
            for outcome in OUTCOMES:
                reasons = [
                    f"{code} {n:,}"
                    for code, n in summary.reasons.items()
                    if REASONS.get(code, (None,))[0] == outcome
                ][:3]
                table.add_row(outcome, f"{summary.outcomes[outcome]:,}", ", ".join(reasons))
            table.add_row("[bold]input rows[/]", f"[bold]{summary.input_rows:,}[/]", "")
            self.out.print(table)
            changes = data.get("changes")
            if changes and summary.mode != "validate":
                self.out.print(
                    "changes against state: " + ", ".join(f"{k} {v:,}" for k, v in changes.items()),
                    markup=False,
                )
            apns = data.get("apns_tokens_needing_conversion") or 0
            if apns:
                self.out.print(
                    f"{apns:,} rows hold APNs tokens: convert them to FCM tokens before "
                    "Masivo can use them (reason apns_token_not_fcm).",
                    markup=False,
                )
            if summary.stop_message:
                self.out.print(f"stopped: {summary.stop_message}", markup=False)
        meaning = EXIT_MEANINGS.get(summary.exit_code, "")
        self.out.print(f"report: {report_dir}  exit {summary.exit_code} ({meaning})", markup=False)


def _ignore(done: int, total: int) -> None:
    return None


class _LineLogger:
    """Progress for logs: one line every few seconds, never per row."""

    def __init__(self, label: str, console: RichConsole) -> None:
        self.label = label
        self.console = console
        self.started = time.monotonic()
        self.last = self.started

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < _LOG_EVERY_S and done < total:
            return
        self.last = now
        rate = done / max(now - self.started, 1e-9)
        left = (total - done) / rate if rate > 0 else 0.0
        print(
            f"{self.label}: {done:,}/{total:,} rows, {rate:,.0f}/s, about {left:,.0f}s left",
            file=sys.stderr,
            flush=True,
        )
