"""How a sandbox behaves: one frozen value, so a running server's behaviour is easy to reason about.

Swapping the whole config (``SandboxServer.reconfigure``) is the only way to change behaviour
while running; nothing mutates a config in place.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

API_PREFIX = "/api/storefront/v1"
CONTROL_PREFIX = "/_sandbox"

# A sandbox-only key, fine to print and commit: it opens nothing but this fake server.
DEFAULT_API_KEY = "5a4db0c5-0000-4000-8000-00000000cafe"

# Headers must always carry a limit; without a configured one we advertise a generous window
# that is never enforced, so clients that read the headers see "plenty left".
NOMINAL_LIMIT = 1_000_000

MARKETING_OFF_MESSAGE = "Marketing automation is not enabled for this account"


def _rate(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise ValueError(f"{name} must be a share between 0 and 1, got {value!r}")


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """Everything a sandbox can be told to do. Every field has a harmless default.

    Shares (``*_rate``) are probabilities per PATCH request, drawn from one RNG seeded by ``seed``:
    the N-th PATCH the server receives gets the N-th draw. Under concurrency, which *row* lands on
    which draw depends on arrival order, but for the same seed and request count the number of each
    fault is the same on every run.
    """

    api_key: str = DEFAULT_API_KEY
    # Lifetime of issued access tokens; the JWT `exp` is rounded up to the whole second and the
    # server enforces exactly that `exp`, so a client trusting `exp` is never surprised.
    token_ttl_s: float = 3600.0
    unknown_customers: frozenset[str] = field(default_factory=frozenset)
    unknown_prefix: str | None = None
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_500_rate: float = 0.0
    error_503_rate: float = 0.0
    rate_429_rate: float = 0.0
    retry_after_s: int = 1
    drop_rate: float = 0.0
    rate_limit: int | None = None
    rate_window_s: float = 60.0
    marketing_automation_off: bool = False
    fail_auth: bool = False
    fail_auth_status: int = 500
    seed: int | None = None
    request_log: Path | None = None
    # The in-memory request log grows by one entry per request; long benchmarks can turn it off.
    keep_request_log: bool = True
    max_body_bytes: int = 64 * 1024

    def __post_init__(self) -> None:
        # Accept any iterable of ids (lists from CLI options, sets from tests) but store a frozenset.
        if not isinstance(self.unknown_customers, frozenset):
            ids: Iterable[str] = self.unknown_customers
            object.__setattr__(self, "unknown_customers", frozenset(ids))
        if self.request_log is not None and not isinstance(self.request_log, Path):
            object.__setattr__(self, "request_log", Path(self.request_log))
        for name in ("error_500_rate", "error_503_rate", "rate_429_rate", "drop_rate"):
            _rate(name, getattr(self, name))
        if self.fault_share > 1.0 + 1e-9:
            raise ValueError(f"fault shares add up to {self.fault_share:.3f}, more than 1")
        if self.token_ttl_s <= 0:
            raise ValueError("token_ttl_s must be positive")
        if self.latency_ms < 0 or self.jitter_ms < 0:
            raise ValueError("latency_ms and jitter_ms must not be negative")
        if self.retry_after_s < 0:
            raise ValueError("retry_after_s must not be negative")
        if self.rate_limit is not None and self.rate_limit < 0:
            raise ValueError("rate_limit must not be negative")
        if self.rate_window_s <= 0:
            raise ValueError("rate_window_s must be positive")
        if not 400 <= self.fail_auth_status <= 599:
            raise ValueError("fail_auth_status must be a 4xx or 5xx status")
        if not self.api_key:
            raise ValueError("api_key must not be empty")

    @property
    def fault_share(self) -> float:
        return self.drop_rate + self.error_500_rate + self.error_503_rate + self.rate_429_rate

    def is_unknown(self, customer_id: str) -> bool:
        if customer_id in self.unknown_customers:
            return True
        return bool(self.unknown_prefix) and customer_id.startswith(self.unknown_prefix)  # type: ignore[arg-type]

    def replace(self, **changes: Any) -> SandboxConfig:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe view for the control endpoint; a custom API key is masked."""
        out = dataclasses.asdict(self)
        if self.api_key != DEFAULT_API_KEY:
            out["api_key"] = "(custom, not shown)"
        out["unknown_customers"] = sorted(self.unknown_customers)
        out["request_log"] = str(self.request_log) if self.request_log else None
        return out
