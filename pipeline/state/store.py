"""StateStore: the durable, per-token record of what Masivo accepted.

Layout of a state directory (layout 1):

    state.json          version marker {"layout": 1, ...}; another layout is refused
    lock                flock'ed by the run using the directory (see lock.py)
    tokens.parquet      snapshot: one row per token (journal.SNAPSHOT_SCHEMA); its Parquet
                        key-value metadata lists the journals already folded into it
    journal/*.jsonl     one append-only file per run: results not yet folded (files.py)
    runs.jsonl          one line per finished run: id, times, summary counts

Why a Parquet snapshot plus journals rather than SQLite: the diff needs the whole state as a
polars frame, and reading Parquet is ~10x faster than pulling 5M rows out of SQLite; appends to
a journal cost a write and an fsync per batch, with no B-tree or index to update per row.

Crash safety: compaction (at a writable open, when the pending journals are worth it) writes a
new snapshot to a temp file, fsyncs and renames it over the old one, and deletes the journals
only afterwards. The new snapshot names the journals it contains, so journals left behind by a
crash between the rename and the deletion are recognised and not applied twice. At every
instant the directory holds the old snapshot plus its journals or the new snapshot (plus
leftovers it names).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Protocol

import polars as pl

from pipeline.errors import StateVersionError

from ._fs import append_durable, ensure_private_dir, fsync_dir, write_atomic
from .files import JOURNALS, LAYOUT, SNAPSHOT, compact, load
from .journal import apply_journal, empty_snapshot, read_journal
from .lock import LOCK_NAME, StateLock
from .writer import JournalWriter, Row, StateWriteError, write_error

log = logging.getLogger("pipeline.state")

MARKER = "state.json"
RUNS = "runs.jsonl"
_RECORDED = frozenset({"succeeded", "failed", "rejected", "aborted"})
_ERROR_EXCERPT = 500  # characters of an error kept per token


class ResultLike(Protocol):
    """What record() reads from a send result (pipeline.send.SendResult satisfies it)."""

    row_id: int
    outcome: str
    reason: str | None
    http_status: int | None
    attempts: int
    error: str | None
    device_token: str
    customer_id: str
    platform: str
    model: str | None
    os_version: str | None


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


class StateStore:
    """Open with StateStore.open(); use as a context manager so the lock is always released."""

    def __init__(self, directory: Path, run_id: str, read_only: bool) -> None:
        self.directory = directory
        self.run_id = run_id
        self.read_only = read_only
        self.started_at = _now_iso()
        self.warnings: list[str] = []  # for the CLI to show (stale lock taken over, torn lines)
        self._lock: StateLock | None = None
        self._writer: JournalWriter | None = None
        self._journal_path: Path | None = None
        self._base = empty_snapshot()  # snapshot + journals as of open()
        self._seq = 0  # highest journal sequence number in the directory
        self._flush_interval = 0.5
        self._closed = False

    # ----------------------------------------------------------------- opening
    @classmethod
    def open(
        cls,
        directory: Path,
        *,
        run_id: str,
        read_only: bool = False,
        flush_interval: float = 0.5,
        compact_now: bool | None = None,
    ) -> StateStore:
        """Create (writable) or read the state directory; check layout; lock; compact.

        compact_now: None folds pending journals into the snapshot when they are big enough
        to be worth rewriting it (files.compact); True always; False never.
        """
        store = cls(Path(directory), run_id, read_only)
        store._flush_interval = flush_interval
        if read_only:
            if store.directory.exists():
                store._check_layout(create=False)
                store._base, store._seq = load(store.directory)
            return store
        try:
            ensure_private_dir(store.directory)
        except OSError as exc:
            raise write_error(store.directory, exc) from exc
        store._lock = StateLock.acquire(store.directory, run_id=run_id)
        try:
            if warning := store._lock.stale_warning():
                store._warn(warning)
            store._check_layout(create=True)
            try:
                store._base, store._seq = compact(store.directory, force=compact_now)
            except OSError as exc:
                raise write_error(store.directory / SNAPSHOT, exc) from exc
        except BaseException:
            store._lock.release()
            raise
        return store

    def _warn(self, message: str) -> None:
        log.warning("%s", message)
        self.warnings.append(message)

    def _check_layout(self, *, create: bool) -> None:
        marker = self.directory / MARKER
        try:
            info = json.loads(marker.read_bytes())
        except FileNotFoundError:
            others = {p.name for p in self.directory.iterdir()} - {LOCK_NAME}
            if others:
                raise StateVersionError(
                    f"{self.directory} is not empty and has no {MARKER}: it is not a state "
                    f"directory of this tool (found {', '.join(sorted(others)[:5])}).",
                    hint="point --state at an empty or new directory",
                ) from None
            if create:
                body = json.dumps(
                    {"layout": LAYOUT, "tool": "masivo-device-sync", "created_at": _now_iso()}
                )
                try:
                    write_atomic(marker, lambda f: f.write(body.encode() + b"\n"))
                except OSError as exc:
                    raise write_error(marker, exc) from exc
            return
        except ValueError:
            raise StateVersionError(
                f"{marker} is not valid JSON; the state directory cannot be trusted.",
                hint="restore it from a backup or reset the state",
            ) from None
        layout = info.get("layout") if isinstance(info, dict) else None
        if layout != LAYOUT:
            newer = isinstance(layout, int) and layout > LAYOUT
            raise StateVersionError(
                f"The state in {self.directory} has layout {layout!r}; this version of "
                f"masivo-sync reads layout {LAYOUT} only.",
                hint=(
                    "it was written by a newer masivo-sync: upgrade this one"
                    if newer
                    else "export it with the version that wrote it, or reset the state"
                ),
            )

    # ------------------------------------------------------- snapshot / journals
    def _journal_dir(self) -> Path:
        return self.directory / JOURNALS

    # ------------------------------------------------------------------- reading
    def snapshot(self) -> pl.DataFrame:
        """One row per token (SNAPSHOT_SCHEMA), including what this run has recorded."""
        if self._writer is None or self._journal_path is None:
            return self._base
        self.flush()
        return apply_journal(self._base, read_journal(self._journal_path))

    def runs(self) -> list[dict[str, object]]:
        """Finished runs, oldest first (a torn last line from a crash is skipped)."""
        try:
            lines = (self.directory / RUNS).read_bytes().splitlines()
        except FileNotFoundError:
            return []
        runs = []
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                runs.append(entry)
        return runs

    # ------------------------------------------------------------------- writing
    def _require_writable(self) -> None:
        if self.read_only:
            raise RuntimeError("this StateStore was opened read_only")
        if self._closed:
            raise RuntimeError("this StateStore is closed")

    def _ensure_writer(self) -> JournalWriter:
        if self._writer is None:
            journal_dir = self._journal_dir()
            try:
                journal_dir.mkdir(mode=0o700, exist_ok=True)
            except OSError as exc:
                raise write_error(journal_dir, exc) from exc
            safe_run = re.sub(r"[^A-Za-z0-9_.-]", "_", self.run_id)[:80]
            # The sequence orders journals for folding; time and pid only make names unique.
            self._seq += 1
            name = f"{self._seq:010d}-{time.time_ns()}-{os.getpid()}-{safe_run}.jsonl"
            self._journal_path = journal_dir / name
            self._writer = JournalWriter(self._journal_path, interval=self._flush_interval)
        return self._writer

    def record(self, results: Sequence[ResultLike]) -> None:
        """Buffer results; they are durable within ~flush_interval + an fsync.

        Outcomes other than succeeded/failed/rejected/aborted carry nothing to store and are
        ignored. Raises StateWriteError once a background write has failed.
        """
        self._require_writable()
        writer = self._writer or self._ensure_writer()
        at = time.time_ns() // 1000
        run = self.run_id
        rows: list[Row] = [
            (
                at,
                run,
                str(r.outcome),
                str(r.device_token),
                _opt_str(r.customer_id),
                _opt_str(r.platform),
                _opt_str(r.model),
                _opt_str(r.os_version),
                _opt_str(r.reason),
                None if r.error is None else str(r.error)[:_ERROR_EXCERPT],
                None if r.http_status is None else int(r.http_status),
            )
            for r in results
            if r.outcome in _RECORDED
        ]
        writer.append(rows)  # also raises a failed background write, even for no rows

    def flush(self) -> None:
        """Make everything recorded so far durable now."""
        if self._writer is not None:
            self._writer.flush()

    def finish_run(self, summary: Mapping[str, object]) -> None:
        """Flush, then append this run's line to runs.jsonl (durably)."""
        self._require_writable()
        self.flush()
        entry = {
            "run_id": self.run_id,
            "started_at": self.started_at,
            "finished_at": _now_iso(),
            "summary": dict(summary),
        }
        path = self.directory / RUNS
        try:
            append_durable(path, json.dumps(entry, default=str).encode() + b"\n")
        except OSError as exc:
            raise write_error(path, exc) from exc

    def reset(self) -> None:
        """Forget everything: tokens, journals (this run's too) and run history."""
        self._require_writable()
        if self._writer is not None:
            writer, self._writer = self._writer, None
            with contextlib.suppress(StateWriteError):  # it is being wiped anyway
                writer.close()
        try:
            (self.directory / SNAPSHOT).unlink(missing_ok=True)
            (self.directory / RUNS).unlink(missing_ok=True)
            shutil.rmtree(self._journal_dir(), ignore_errors=True)
            fsync_dir(self.directory)
        except OSError as exc:
            raise write_error(self.directory, exc) from exc
        self._journal_path = None
        self._base = empty_snapshot()

    def export(self, path: Path) -> None:
        """Write the current snapshot to a Parquet file (atomically, 0600)."""
        frame = self.snapshot()
        path = Path(path)
        try:
            write_atomic(path, lambda handle: frame.write_parquet(handle))
        except OSError as exc:
            raise write_error(path, exc) from exc

    def close(self) -> None:
        """Flush what is buffered and release the lock (the lock is released even on error)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._writer is not None:
                self._writer.close()
        finally:
            if self._lock is not None:
                self._lock.release()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
