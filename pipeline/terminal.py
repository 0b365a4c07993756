"""What the CLI prints: progress while sending, the end-of-run summary, one-line errors.

On a terminal a rich progress bar; elsewhere (cron, CI) one concise line every few seconds, so
logs read the next morning show how far a run got.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console as RichConsole
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import (
    Progress as ProgressBar,
)
from rich.table import Table

from pipeline.exits import MEANINGS
from pipeline.outcomes import OUTCOMES, REASONS
from pipeline.report import Summary
from pipeline.sync import Progress

_LOG_EVERY_S = 10.0

ProgressFn = Callable[[Progress], None]


def emit_json(event: str, stream: TextIO, **fields: Any) -> None:
    """One log line: a JSON object with `event`, `time` and the event's fields."""
    record = {"event": event, "time": datetime.now(UTC).isoformat(timespec="seconds"), **fields}
    print(json.dumps(record, ensure_ascii=False, default=str), file=stream, flush=True)


class Console:
    def __init__(self, *, quiet: bool = False, log_format: str = "text") -> None:
        self.quiet = quiet
        self.json = log_format == "json"
        self.out = RichConsole(highlight=False)
        self.err = RichConsole(stderr=True, highlight=False)

    def error(self, message: str) -> None:
        if self.json:
            emit_json("error", sys.stderr, message=message)
        else:
            self.err.print(f"[bold red]error:[/] {escape(message)}", markup=True, soft_wrap=True)

    def info(self, message: str) -> None:
        if self.json:
            emit_json("info", sys.stderr, message=message)
        elif not self.quiet:
            self.err.print(message, markup=False, soft_wrap=True)

    @contextmanager
    def progress(self, label: str) -> Iterator[ProgressFn]:
        if self.quiet:
            yield _ignore
        elif self.json:
            yield _LineLogger(label, json_lines=True)
        elif self.err.is_terminal:
            with ProgressBar(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[rate]}"),
                TextColumn("{task.fields[counts]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.err,
                transient=True,
            ) as bar:
                task = bar.add_task(label, total=None, rate="", counts="")
                started = time.monotonic()

                def update(p: Progress) -> None:
                    elapsed = max(time.monotonic() - started, 1e-9)
                    bar.update(
                        task,
                        completed=p.done,
                        total=p.total,
                        rate=f"{p.done / elapsed:,.0f}/s",
                        counts=f"[green]ok {p.succeeded:,}[/] [red]failed {p.failed:,}[/] "
                        f"[yellow]retries {p.retries:,} 429s {p.rate_limit_waits:,}[/]",
                    )

                yield update
        else:
            yield _LineLogger(label)

    def summary(self, summary: Summary, report_dir: Path) -> None:
        data = summary.as_dict()
        if self.json:
            emit_json(
                "summary",
                sys.stdout,
                **data,
                report_dir=str(report_dir),
                exit_meaning=MEANINGS.get(summary.exit_code, ""),
            )
            return
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
            for warning in data.get("warnings") or []:
                self.out.print(f"warning: {warning}", markup=False)
            if summary.stop_message:
                self.out.print(f"stopped: {summary.stop_message}", markup=False)
        meaning = MEANINGS.get(summary.exit_code, "")
        self.out.print(f"report: {report_dir}  exit {summary.exit_code} ({meaning})", markup=False)


def _ignore(progress: Progress) -> None:
    return None


class _LineLogger:
    """Progress for logs: one line every few seconds, never per row."""

    def __init__(self, label: str, *, json_lines: bool = False) -> None:
        self.label = label
        self.json_lines = json_lines
        self.started = time.monotonic()
        self.last = self.started

    def __call__(self, progress: Progress) -> None:
        done, total = progress.done, progress.total
        if total == 0:
            return
        now = time.monotonic()
        if now - self.last < _LOG_EVERY_S and done < total:
            return
        self.last = now
        rate = done / max(now - self.started, 1e-9)
        left = (total - done) / rate if rate > 0 else 0.0
        if self.json_lines:
            emit_json(
                "progress",
                sys.stderr,
                stage=self.label.lower(),
                done=done,
                total=total,
                rows_per_s=round(rate, 1),
                eta_s=round(left, 1),
            )
            return
        print(
            f"{self.label}: {done:,}/{total:,} rows ({progress.succeeded:,} ok, "
            f"{progress.failed:,} failed, {progress.retries:,} retries), {rate:,.0f}/s, "
            f"about {left:,.0f}s left",
            file=sys.stderr,
            flush=True,
        )
