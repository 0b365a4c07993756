"""Exit codes a cron job can act on: the one table that `--help`, the terminal summary,
report.html and the docs (README, docs/operating.md; tests/test_docs.py checks them) follow."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["MEANINGS", "Exit", "help_text"]


class Exit(IntEnum):
    OK = 0
    TOO_MANY_FAILURES = 1  # completed, but failed + rejected rows exceeded --max-failure-rate
    USAGE = 2  # usage, configuration or input error: nothing was sent
    SYSTEMIC = 3  # stopped: every further call would fail the same way
    INTERNAL = 70  # a bug (EX_SOFTWARE)
    INTERRUPTED = 130  # 128 + SIGINT
    TERMINATED = 143  # 128 + SIGTERM


MEANINGS: dict[int, str] = {
    Exit.OK: "run completed",
    Exit.TOO_MANY_FAILURES: "completed, but failed + rejected rows exceeded --max-failure-rate",
    Exit.USAGE: "usage, configuration or input error (nothing was sent)",
    Exit.SYSTEMIC: "stopped by a systemic error (e.g. every call rejected the same way)",
    Exit.INTERNAL: "internal error (a bug: please report it with the --debug output)",
    Exit.INTERRUPTED: "interrupted (Ctrl-C); progress is saved",
    Exit.TERMINATED: "terminated (SIGTERM); progress is saved",
}


def help_text() -> str:
    """The exit-code table for a click epilog (`\\b` keeps click from rewrapping it)."""
    rows = [f"  {int(code):<4} {meaning}" for code, meaning in MEANINGS.items()]
    return "\b\nExit codes:\n" + "\n".join(rows) + "\n"
