"""The exception hierarchy. Per-row problems are data (an outcome and a reason), never exceptions.

Only two kinds escape the library: problems the user must fix before a run can start (exit 2)
and systemic stops during a run (exit 3). Messages never contain secrets; they name the file,
row or option and the fix.
"""

from __future__ import annotations

from pipeline.exits import Exit


class MasivoSyncError(Exception):
    """Base class of every error the library raises on purpose."""

    # every error raised is a UsageError or a SystemicStop; another one would be a bug
    exit_code: int = Exit.INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(MasivoSyncError):
    """Bad input files, options or configuration: nothing was sent. Exit 2."""

    exit_code = Exit.USAGE


class InputError(UsageError):
    """An input file cannot be read as a table (names the file and, where known, the row)."""


class ConfigError(UsageError):
    """An option, environment variable or config file value is wrong or missing."""


class StateLockedError(UsageError):
    """Another run holds the state directory."""


class StateVersionError(UsageError):
    """The state directory was written by an incompatible version of this tool."""


class SystemicStop(MasivoSyncError):
    """The run stopped because every call would fail the same way. Exit 3.

    `reason` is a code from pipeline.outcomes.REASONS, given to every row not yet done.
    """

    exit_code = Exit.SYSTEMIC

    def __init__(self, message: str, *, reason: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason
