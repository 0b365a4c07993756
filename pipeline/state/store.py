"""StateStore: the durable, per-token record of what Masivo accepted.

Layout of a state directory (layout 1):

    state.json          version marker {"layout": 1, ...}; another layout is refused
    lock                flock'ed by the run using the directory (see lock.py)
    tokens.parquet      snapshot: one row per token (journal.SNAPSHOT_SCHEMA); its Parquet
                        key-value metadata lists the journals already folded into it
    journal/*.jsonl     one append-only file per run: results since the snapshot
    runs.jsonl          one line per finished run: id, times, summary counts

Why a Parquet snapshot plus journals rather than SQLite: the diff needs the whole state as a
polars frame, and reading Parquet is ~10x faster than pulling 5M rows out of SQLite; appends to
a journal cost a write and an fsync per batch, with no B-tree or index to update per row.

Crash safety: opening for writing folds snapshot + journals into a new snapshot written to a
temp file, fsynced and renamed over the old one; the journals are deleted only afterwards. The
new snapshot names the journals it contains, so journals left behind by a crash between the
rename and the deletion are recognised and not applied twice. At every instant the directory
holds either the old snapshot plus its journals or the new snapshot (plus leftovers it names).
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
from .journal import (
    SNAPSHOT_SCHEMA,
    apply_journal,
    empty_snapshot,
    read_journal,
)
from .lock import LOCK_NAME, StateLock
from .writer import JournalWriter, Row, StateWriteError, write_error

log = logging.getLogger("pipeline.state")

LAYOUT = 1
MARKER = "state.json"
SNAPSHOT = "tokens.parquet"
JOURNALS = "journal"
RUNS = "runs.jsonl"
_FOLDED_KEY = "masivo_sync.folded_journals"
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
        self._closed = False

    # ----------------------------------------------------------------- opening
    @classmethod
    def open(
        cls, directory: Path, *, run_id: str, read_only: bool = False, flush_interval: float = 0.5
    ) -> StateStore:
        """Create (writable) or read the state directory; check layout; lock; compact."""
        store = cls(Path(directory), run_id, read_only)
        store._flush_interval = flush_interval
        if read_only:
            if store.directory.exists():
                store._check_layout(create=False)
                store._base = store._load()
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
            store._base = store._compact()
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

    def _list_journals(self) -> list[Path]:
        try:
            return sorted(self._journal_dir().glob("*.jsonl"))
        except FileNotFoundError:
            return []

    def _read_snapshot(self) -> tuple[pl.DataFrame, set[str]]:
        path = self.directory / SNAPSHOT
        try:
            handle = path.open("rb")  # one handle: data and metadata of the same file
        except FileNotFoundError:
            return empty_snapshot(), set()
        with handle:
            meta = pl.read_parquet_metadata(handle)
            handle.seek(0)
            frame = pl.read_parquet(handle)
        if dict(frame.schema) != SNAPSHOT_SCHEMA:
            raise StateVersionError(
                f"{path} does not have the columns of state layout {LAYOUT}.",
                hint="the file was changed by hand or by another tool; reset the state",
            )
        return frame, set(json.loads(meta.get(_FOLDED_KEY, "[]")))

    def _load(self) -> pl.DataFrame:
        """Read-only view: snapshot + journals not yet folded, without writing anything."""
        for _ in range(5):
            names = self._list_journals()
            frame, folded = self._read_snapshot()
            pending = [p for p in names if p.name not in folded]
            # A journal that vanished but is not in the snapshot we read was compacted by a
            # concurrent writer after our read: read again to get the newer snapshot.
            if all(p.exists() for p in pending):
                for path in pending:
                    frame = apply_journal(frame, read_journal(path))
                return frame
        raise StateVersionError(
            f"The state in {self.directory} kept changing while being read.",
            hint="try again",
        )

    def _compact(self) -> pl.DataFrame:
        frame, folded = self._read_snapshot()
        journals = self._list_journals()
        leftovers = [p for p in journals if p.name in folded]
        pending = [p for p in journals if p.name not in folded]
        try:
            # Temp files of a snapshot write that a crash interrupted: never renamed, never read.
            for tmp in self.directory.glob(f".{SNAPSHOT}.*.tmp"):
                tmp.unlink(missing_ok=True)
            # Leftovers are already in the snapshot; drop them before a new snapshot forgets
            # that they are (it only names what it folds itself).
            for path in leftovers:
                path.unlink(missing_ok=True)
            if leftovers:
                fsync_dir(self._journal_dir())
            if not pending:
                return frame
            for path in pending:
                frame = apply_journal(frame, read_journal(path))
            self._write_snapshot(frame, folded={p.name for p in pending})
            # Newest first: should a crash strike here, the leftovers are the older journals,
            # the ones whose re-application would do harm; the folded list prevents it.
            for path in reversed(pending):
                path.unlink(missing_ok=True)
            fsync_dir(self._journal_dir())
        except OSError as exc:
            raise write_error(self.directory / SNAPSHOT, exc) from exc
        return frame

    def _write_snapshot(self, frame: pl.DataFrame, *, folded: set[str]) -> None:
        metadata = {_FOLDED_KEY: json.dumps(sorted(folded)), "layout": str(LAYOUT)}
        write_atomic(
            self.directory / SNAPSHOT,
            # zstd level 1: on 5M tokens it wrote ~6x faster than the default level and was
            # smaller; lz4 is ~2x faster again but twice the size on disk.
            lambda handle: frame.write_parquet(
                handle, metadata=metadata, statistics=False, compression_level=1
            ),
        )

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
            # time first: names sort in creation order, which is the order to apply them in.
            name = f"{time.time_ns():020d}-{os.getpid()}-{safe_run}.jsonl"
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
