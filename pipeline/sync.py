"""Runs the stages in order for one `SyncConfig` and returns a `SyncResult`.

read → normalize → dedupe → diff(state) → send → record → report. This module owns the order,
the run id, the exit code and the guarantee that every input row leaves with one outcome; each
stage's logic lives in its own module.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl

from pipeline import report
from pipeline.client import ClientOptions, Credentials
from pipeline.dedupe import dedupe_parts
from pipeline.diff import diff, reconcile, removed_tokens
from pipeline.exits import Exit
from pipeline.normalize import NormalizeOptions, normalize
from pipeline.outcomes import REASONS, Outcome
from pipeline.send import SendOptions, SendOutcome, SendResult, run_send
from pipeline.shard import Shard, keep_shard
from pipeline.sources import FileInfo, SourceOptions, load_sources
from pipeline.state import StateStore, StateWriteError

DEFAULT_BASE_URL = "https://app.masivo.ai/api/storefront/v1"
DEFAULT_STATE_DIR = Path(".masivo-sync")


PLAN_COLUMNS = ("row_id", "customer_id", "device_token", "platform", "model", "os_version")


@dataclass(frozen=True)
class SyncConfig:
    """Everything one run needs. Build it in Python or let the CLI build it from options."""

    inputs: tuple[str | Path, ...]
    base_url: str = DEFAULT_BASE_URL
    state_dir: Path = DEFAULT_STATE_DIR
    report_dir: Path | None = None  # default: <state_dir>/runs/<run_id>
    credentials: Credentials | None = None  # default: from MASIVO_API_KEY / MASIVO_ACCESS_TOKEN
    mode: str = "sync"  # sync | dry_run | validate | reconcile
    full_resync: bool = False
    max_failure_rate: float | None = None
    unmask_tokens: bool = False
    sources: SourceOptions = field(default_factory=SourceOptions)
    normalize: NormalizeOptions = field(default_factory=NormalizeOptions)
    send: SendOptions = field(default_factory=SendOptions)
    client: ClientOptions | None = None  # default: built from base_url and send.concurrency
    shard: Shard | None = None  # this process's part of a sharded backfill
    # SIGINT/SIGTERM stop the run gracefully; only possible from the main thread, so a caller
    # running syncs in worker threads (Airflow, a web app) turns it off.
    handle_signals: bool = True


@dataclass
class SyncResult:
    run_id: str
    exit_code: int
    summary: report.Summary
    report_dir: Path
    frame: pl.DataFrame  # every input row with its outcome, for Python callers

    @property
    def outcomes(self) -> dict[str, int]:
        return self.summary.outcomes


@dataclass(frozen=True, slots=True)
class Progress:
    """What a progress display gets after each finished row of the send stage."""

    done: int
    total: int
    succeeded: int = 0
    failed: int = 0  # failed + rejected
    retries: int = 0
    rate_limit_waits: int = 0


ProgressCallback = Callable[[Progress], None]


def new_run_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


class _ResultCollector:
    """Keeps send results columnar as they arrive and feeds the state store.

    A backfill can send millions of rows; holding a Python object per result would cost far
    more memory than the same values as a few polars columns.
    """

    _CHUNK = 50_000

    def __init__(self, store: StateStore | None) -> None:
        self._store = store
        self._started = time.monotonic()
        self._pending: list[SendResult] = []
        self._completed: list[float] = []
        self._chunks: list[pl.DataFrame] = []
        self.count = 0

    def __call__(self, result: SendResult) -> None:
        self._pending.append(result)
        self._completed.append(time.monotonic() - self._started)
        self.count += 1
        if self._store is not None:
            self._store.record((result,))
        if len(self._pending) >= self._CHUNK:
            self._spill()

    def _spill(self) -> None:
        if not self._pending:
            return
        rows = self._pending
        self._chunks.append(
            pl.DataFrame(
                {
                    "row_id": [r.row_id for r in rows],
                    "outcome": [r.outcome for r in rows],
                    "reason": [r.reason for r in rows],
                    "http_status": [r.http_status for r in rows],
                    "attempts": [r.attempts for r in rows],
                    "error": [r.error for r in rows],
                    "latency_ms": [r.latency_ms for r in rows],
                    "completed_s": self._completed,
                },
                schema=report.SEND_RESULT_SCHEMA,
            )
        )
        self._pending = []
        self._completed = []

    def frame(self) -> pl.DataFrame:
        self._spill()
        if not self._chunks:
            return pl.DataFrame(schema=report.SEND_RESULT_SCHEMA)
        return pl.concat(self._chunks)


def _normalized(batch: pl.DataFrame, options: NormalizeOptions) -> pl.DataFrame:
    """normalize, with the columns of the part in one chunk each: normalize leaves them chunked
    differently, and polars copies every row to align them in the first filter or concat that
    meets them (+1.7 GB at 10M rows, in dedupe)."""
    return normalize(batch, options).rechunk()


def prepare(config: SyncConfig) -> tuple[pl.DataFrame, list[FileInfo]]:
    """read → normalize → dedupe: the checked frame of every input row, and file infos.

    Each batch is normalized as it is read, and the later steps replace one part at a time,
    so the peak stays near the size of the finished table (docs/benchmarks.md, 10M rows).
    """
    sources = load_sources(
        config.inputs, config.sources, transform=partial(_normalized, options=config.normalize)
    )
    parts = dedupe_parts(sources.parts)
    for i, part in enumerate(parts):
        if config.shard is not None:
            part = keep_shard(part, config.shard)
        if "change" not in part.columns:
            part = part.with_columns(pl.lit(None, pl.String).alias("change"))
        parts[i] = part
    return pl.concat(parts, how="vertical", rechunk=False), list(sources.files)


def _decide(frame: pl.DataFrame, reason: str) -> pl.DataFrame:
    """Every still-eligible row gets `reason` (and its outcome)."""
    return report.mark_undecided(frame, reason)


def _change_counts(frame: pl.DataFrame, removed: int) -> dict[str, int]:
    counts = dict.fromkeys(("new", "changed", "unchanged"), 0)
    for change, n in frame.group_by("change").len().iter_rows():
        if change in counts:
            counts[change] = n
    counts["removed"] = removed
    return counts


@dataclass
class _SendStage:
    """What the send stage leaves behind for the report."""

    stop_reason: str | None = None
    stop_message: str | None = None
    exit_code: int = Exit.OK
    stats: dict[str, Any] = field(default_factory=dict)


def _send(
    frame: pl.DataFrame,
    store: StateStore,
    config: SyncConfig,
    credentials: Credentials,
    progress: ProgressCallback | None,
) -> tuple[pl.DataFrame, _SendStage]:
    """Send every eligible row; rows left without a result are aborted with the stop's reason."""
    plan = frame.filter(pl.col("outcome").is_null()).select(PLAN_COLUMNS)
    collector = _ResultCollector(store)
    client_options = config.client or ClientOptions(
        base_url=config.base_url, concurrency=config.send.concurrency
    )
    stage = _SendStage()
    try:
        outcome = run_send(
            plan,
            client_options,
            credentials,
            config.send,
            collector,
            progress=_progress_counter(progress, plan.height),
            handle_signals=config.handle_signals,
        )
        stage = _SendStage(outcome.stop_reason, outcome.stop_message, outcome.exit_code)
        stage.stats = _send_stats(outcome)
        store.flush()
    except StateWriteError as exc:
        # Disk full or I/O error while recording: what was durable stays durable; the rest is
        # resent next run (the PATCH is register-or-update, so that is safe).
        stage = _SendStage("state_write_failed", str(exc), Exit.SYSTEMIC, stage.stats)
    frame = report.apply_send_results(frame, collector.frame())
    if stage.stop_reason is not None:
        frame = _decide(frame, _abort_reason(stage.stop_reason))
    return frame, stage


def run_sync(config: SyncConfig, *, progress: ProgressCallback | None = None) -> SyncResult:
    """Run one sync (or dry run / validation). Raises UsageError (exit 2) before anything is sent."""
    started = datetime.now(UTC)
    clock = time.monotonic()
    run_id = new_run_id(started)
    state_dir = Path(config.state_dir)
    if config.shard is not None and config.shard.count > 1:
        state_dir = config.shard.state_dir(state_dir)
    report_dir = config.report_dir or (state_dir / "runs" / run_id)

    credentials = None
    if config.mode == "sync":
        credentials = config.credentials or Credentials.from_env()  # fail fast, before reading

    frame, files = prepare(config)

    store: StateStore | None = None
    removed = 0
    stage = _SendStage()
    reconciled: pl.DataFrame | None = None
    try:
        if config.mode in ("sync", "dry_run", "reconcile"):
            store = StateStore.open(state_dir, run_id=run_id, read_only=config.mode != "sync")
            snapshot = store.snapshot()
            frame = diff(frame, snapshot, full_resync=config.full_resync)
            removed = removed_tokens(frame, snapshot).height
            if config.mode == "reconcile":
                reconciled = reconcile(frame, snapshot)
        if config.mode == "sync":
            assert store is not None and credentials is not None
            frame, stage = _send(frame, store, config, credentials, progress)
        else:  # dry run and validate: eligible rows would be sent
            frame = _decide(frame, "dry_run")
    except BaseException:
        if store is not None:
            store.close()
        raise
    stop_reason, stop_message = stage.stop_reason, stage.stop_message
    send_stats = stage.stats

    exit_code = stage.exit_code if stop_reason else _exit_code(frame, config.max_failure_rate)
    finished = datetime.now(UTC)
    extra = {
        "inputs": [str(p) for p in config.inputs],
        "files": [dataclasses.asdict(f) for f in files],
        "base_url": config.base_url,
        "shard": str(config.shard) if config.shard else None,
        "changes": _change_counts(frame, removed),
        "apns_tokens_needing_conversion": int(
            frame.filter(pl.col("reason") == "apns_token_not_fcm").height
        ),
        "duration_s": round(time.monotonic() - clock, 3),
        "send": send_stats,
    }
    if reconciled is not None:
        extra["reconcile"] = report.status_counts(reconciled)
    if store is not None and store.warnings:
        extra["warnings"] = list(store.warnings)
    summary = report.build_summary(
        frame,
        meta={
            "run_id": run_id,
            "started_at": _iso(started),
            "finished_at": _iso(finished),
            "mode": config.mode,
            "exit_code": exit_code,
            "stop_reason": stop_reason,
            "stop_message": stop_message,
        },
        extra=extra,
    )
    # After a state write failure the store cannot record the run either; the report still
    # says what happened, and the next run resends what was not durable.
    state_broken = stop_reason == "state_write_failed"
    try:
        report.write_report(frame, summary, report_dir, unmask_tokens=config.unmask_tokens)
        if reconciled is not None:
            report.write_reconcile(reconciled, report_dir, unmask_tokens=config.unmask_tokens)
        if store is not None and config.mode == "sync" and not state_broken:
            store.finish_run(summary.as_dict() | {"report_dir": str(report_dir)})
    finally:
        if store is not None:
            with contextlib.suppress(StateWriteError) if state_broken else nullcontext():
                store.close()
    return SyncResult(run_id, exit_code, summary, report_dir, frame)


def _abort_reason(stop_reason: str) -> str:
    if stop_reason in REASONS and REASONS[stop_reason][0] is Outcome.ABORTED:
        return stop_reason
    return "systemic_failure"


def _exit_code(frame: pl.DataFrame, max_failure_rate: float | None) -> int:
    """Exit 1 when failed + rejected rows exceed the allowed share of the rows sent."""
    if max_failure_rate is None:
        return Exit.OK
    sent = frame.filter(pl.col("outcome").is_in(["succeeded", "failed", "rejected"]))
    bad = sent.filter(pl.col("outcome") != "succeeded").height
    if sent.height and bad / sent.height > max_failure_rate:
        return Exit.TOO_MANY_FAILURES
    return Exit.OK


def _progress_counter(
    progress: ProgressCallback | None, total: int
) -> Callable[[SendOutcome], None] | None:
    """Turn the sender's live statistics into what a progress display shows."""
    if progress is None:
        return None

    def update(stats: SendOutcome) -> None:
        counts = stats.by_outcome
        progress(
            Progress(
                done=stats.sent,
                total=total,
                succeeded=counts.get("succeeded", 0),
                failed=counts.get("failed", 0) + counts.get("rejected", 0),
                retries=stats.retries,
                rate_limit_waits=stats.rate_limit_waits,
            )
        )

    progress(Progress(done=0, total=total))
    return update


def _send_stats(outcome: Any) -> dict[str, Any]:
    stats = {
        name: getattr(outcome, name)
        for name in (
            "sent",
            "attempts",
            "retries",
            "rate_limit_waits",
            "rate_limit_pauses",
            "rate_limit_wait_s",
            "token_renewals",
            "elapsed_s",
            "transport",
        )
        if hasattr(outcome, name)
    }
    elapsed = stats.get("elapsed_s") or 0
    if elapsed:
        stats["rows_per_s"] = round(stats.get("sent", 0) / elapsed, 1)
    return stats
