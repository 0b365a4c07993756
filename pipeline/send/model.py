"""The send stage's data types: options, one row's result, the run's outcome."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field

from pipeline.errors import SystemicStop
from pipeline.exits import Exit

# Stops that mean "every further call would fail the same way" (exit 3).
SYSTEMIC_REASONS = frozenset(
    {
        "marketing_automation_disabled",
        "unauthorized",
        "auth_failed",
        "systemic_failure",
        "state_write_failed",
    }
)


@dataclass(frozen=True, slots=True)
class SendResult:
    """One finished planned row. latency_ms is the duration of its last HTTP attempt."""

    row_id: int
    outcome: str
    reason: str
    http_status: int | None
    attempts: int  # HTTP attempts, not counting 429 answers (rate-limit waits are not attempts)
    error: str | None  # bounded, secret-free excerpt
    latency_ms: float
    device_token: str
    customer_id: str
    platform: str
    model: str | None
    os_version: str | None


@dataclass(frozen=True)
class SendOptions:
    concurrency: int = 64
    rate_limit: float | None = None  # requests/second for the whole run; None = unlimited
    max_attempts: int = 5
    retry_after_cap_s: float = 60.0  # longest pause a 429's Retry-After can impose
    max_rate_limit_waits: int = 50  # 429s one row may get before it fails as rate_limited
    systemic_after: int = 20  # K: consecutive same-way failures that stop the run; 0 = never
    preflight: bool = False
    grace_period_s: float = 10.0  # how long in-flight calls may finish after a stop
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    queue_size: int | None = None  # rows buffered ahead of the workers; None = concurrency
    slice_rows: int = 4096  # plan rows materialised as Python objects at a time
    seed: int | None = None  # jitter RNG seed (tests)

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.rate_limit is not None and self.rate_limit <= 0:
            raise ValueError("rate_limit must be positive")


@dataclass
class SendOutcome:
    """What send_plan returns. Rows without a result are aborted with stop_reason."""

    stop_reason: str | None = None  # None = completed
    stop_message: str | None = None  # one line, no secrets
    signal: int | None = None  # the signal that interrupted the run, when one did
    sent: int = 0  # rows with a result
    by_outcome: dict[str, int] = field(default_factory=dict)
    attempts: int = 0  # HTTP calls, 429s included
    retries: int = 0
    rate_limit_waits: int = 0  # 429 answers
    rate_limit_pauses: int = 0  # distinct run-wide pauses (and rate step-downs)
    rate_limit_wait_s: float = 0.0
    token_renewals: int = 0
    max_ahead: int = 0  # most rows produced but not yet finished (bounded-memory check)
    elapsed_s: float = 0.0
    transport: str = ""

    @property
    def completed(self) -> bool:
        return self.stop_reason is None

    @property
    def exit_code(self) -> int:
        """0 completed; 130/143 for SIGINT/SIGTERM; 3 for a systemic stop."""
        if self.stop_reason is None:
            return Exit.OK
        if self.stop_reason == "interrupted":
            return Exit.TERMINATED if self.signal == signal.SIGTERM else Exit.INTERRUPTED
        return Exit.SYSTEMIC

    def raise_for_stop(self) -> None:
        """Raise SystemicStop for a systemic stop (the CLI turns it into exit 3)."""
        if self.stop_reason in SYSTEMIC_REASONS:
            raise SystemicStop(self.stop_message or self.stop_reason, reason=self.stop_reason)
