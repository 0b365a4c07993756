"""The run lock: one writer per state directory.

Uses flock(2) on `<state>/lock` rather than O_EXCL creation: the kernel drops the lock when the
holder dies (even by kill -9), so a dead holder can never block a later run, and two runs racing
to take over a stale lock cannot both win (the classic unlink-and-recreate race of O_EXCL locks).
The file's content (pid, host, run id, start time) only serves the messages: a non-empty file
we could lock means the previous holder died without releasing it, and we say so.

The file is never unlinked: unlinking would let a process that opened the old inode lock it
while another locks a new one. A clean release empties it instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

from pipeline.errors import StateLockedError

from ._fs import FILE_MODE, write_all

LOCK_NAME = "lock"


def _read_holder(fd: int) -> dict[str, object]:
    try:
        raw = os.pread(fd, 4096, 0)
        holder = json.loads(raw) if raw.strip() else {}
    except (OSError, ValueError):
        return {"unreadable": True}
    return holder if isinstance(holder, dict) else {"unreadable": True}


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _describe(holder: dict[str, object]) -> str:
    if not holder or holder.get("unreadable"):
        return "another process (its details were not readable yet)"
    return (
        f"run {holder.get('run_id')!s} (pid {holder.get('pid')} on host {holder.get('host')}, "
        f"since {holder.get('started_at')})"
    )


class StateLock:
    """An exclusive, non-blocking lock on a state directory held for the life of a run."""

    def __init__(self, path: Path, fd: int, took_over: dict[str, object] | None) -> None:
        self.path = path
        self._fd: int | None = fd
        # The holder record of a previous run that died holding the lock, if any.
        self.took_over = took_over

    @classmethod
    def acquire(cls, directory: Path, *, run_id: str) -> StateLock:
        path = directory / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise StateLockedError(
                f"The state directory {directory} is in use by {_describe(holder)}.",
                hint=(
                    "wait for that run to finish or stop it; only one run may use a state "
                    "directory at a time"
                ),
            ) from None
        except BaseException:
            os.close(fd)
            raise
        previous = _read_holder(fd)
        took_over = previous or None
        if took_over is not None:
            took_over = dict(took_over)
            took_over["pid_alive"] = took_over.get("host") == socket.gethostname() and _pid_alive(
                took_over.get("pid")
            )
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "run_id": run_id,
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        try:
            os.ftruncate(fd, 0)
            write_all(fd, json.dumps(record).encode() + b"\n")
            os.fsync(fd)
        except OSError:
            # The lock itself is held; failing to describe it only weakens messages.
            pass
        return cls(path, fd, took_over)

    def stale_warning(self) -> str | None:
        if self.took_over is None:
            return None
        return (
            f"Took over the lock of {self.path.parent} left by {_describe(self.took_over)}, "
            "which ended without releasing it (crash or kill); its durable results are kept "
            "and anything it had not recorded will be resent."
        )

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):  # an empty file marks a clean release
            os.ftruncate(fd, 0)
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
