"""Small durable-file helpers: private permissions, fsync, atomic replace.

Every file the state store writes goes through here so the rules hold everywhere: files are
0600 and the directory 0700 (tokens are personal data), and a file is either the complete old
version or the complete new one (write to a temp name, fsync, rename, fsync the directory).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

FILE_MODE = 0o600
DIR_MODE = 0o700


def ensure_private_dir(directory: Path) -> None:
    """Create the directory (and parents) 0700; tighten an existing one we own."""
    directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    # mkdir's mode is filtered by the umask and ignored for an existing directory.
    if directory.stat().st_mode & 0o077:
        # Not ours: leave it; its owner chose the mode.
        with contextlib.suppress(PermissionError):
            directory.chmod(DIR_MODE)


def fsync_dir(directory: Path) -> None:
    """Make a rename/create/unlink inside `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes | memoryview) -> None:
    """os.write may write less than asked (signals, nearly full disks); loop until done."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written == 0:  # should not happen on a regular file; do not spin
            raise OSError(errno.EIO, "write returned 0 bytes")
        view = view[written:]


def write_atomic(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write `path` through a temp file so a crash leaves the old or the new file, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def append_durable(path: Path, data: bytes) -> None:
    """Append one complete record and fsync it (used for rare records such as runs.jsonl)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    try:
        size = os.fstat(fd).st_size
        try:
            write_all(fd, data)
            os.fsync(fd)
        except OSError:
            # Cut a partial record off so the next append does not glue onto a torn line.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)
