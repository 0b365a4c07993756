"""Seeded fault decisions and the fixed-window rate limiter.

Both are plain synchronous objects called from the event loop before the request first awaits,
so the order of draws is the order in which requests arrive.
"""

from __future__ import annotations

import math
import random
import secrets
from dataclasses import dataclass
from enum import StrEnum

from pipeline.sandbox.config import NOMINAL_LIMIT, SandboxConfig


class Fault(StrEnum):
    NONE = "none"
    DROP = "drop"  # close the connection without any response
    ERROR_500 = "500"
    ERROR_503 = "503"
    RATE_429 = "429"


@dataclass(frozen=True, slots=True)
class Decision:
    fault: Fault
    delay_s: float


_NO_FAULT = Decision(Fault.NONE, 0.0)


class FaultPlan:
    """Decides the fault and the added latency of each PATCH, in arrival order.

    Every call consumes exactly two draws (fault, jitter) whatever the config says, so the fault
    sequence for a seed does not shift when latency or shares change between runs.
    """

    def __init__(self, config: SandboxConfig) -> None:
        self.seed = config.seed if config.seed is not None else secrets.randbits(64)
        self._rng = random.Random(self.seed)
        self.draws = 0
        self.configure(config)

    def configure(self, config: SandboxConfig) -> None:
        """Adopt new shares without restarting the RNG sequence."""
        self._latency_s = config.latency_ms / 1000.0
        self._jitter_s = config.jitter_ms / 1000.0
        # Cumulative thresholds, tested in this fixed order against one uniform draw.
        edges: list[tuple[float, Fault]] = []
        acc = 0.0
        for share, fault in (
            (config.drop_rate, Fault.DROP),
            (config.error_500_rate, Fault.ERROR_500),
            (config.error_503_rate, Fault.ERROR_503),
            (config.rate_429_rate, Fault.RATE_429),
        ):
            if share > 0:
                acc += share
                edges.append((acc, fault))
        self._edges = tuple(edges)
        self._idle = not edges and self._latency_s == 0 and self._jitter_s == 0

    def reset(self) -> None:
        self._rng.seed(self.seed)
        self.draws = 0

    def next(self) -> Decision:
        rng = self._rng
        u = rng.random()
        j = rng.random()
        self.draws += 1
        if self._idle:
            return _NO_FAULT
        fault = Fault.NONE
        for edge, candidate in self._edges:
            if u < edge:
                fault = candidate
                break
        return Decision(fault, self._latency_s + j * self._jitter_s)


class RateWindow:
    """Fixed windows aligned to the server start (or the last reset).

    Without a configured limit it still counts, so the X-RateLimit-* headers look real, but never
    refuses.
    """

    def __init__(self, config: SandboxConfig, now: float) -> None:
        self._start = now
        self.count = 0
        self.configure(config)

    def configure(self, config: SandboxConfig) -> None:
        self.enforced = config.rate_limit is not None
        self.limit = config.rate_limit if config.rate_limit is not None else NOMINAL_LIMIT
        self.window_s = config.rate_window_s
        self._limit_header = (b"x-ratelimit-limit", str(self.limit).encode())

    def reset(self, now: float) -> None:
        self._start = now
        self.count = 0

    def _roll(self, now: float) -> None:
        elapsed = now - self._start
        if elapsed >= self.window_s:
            self._start += math.floor(elapsed / self.window_s) * self.window_s
            self.count = 0

    def hit(self, now: float) -> bool:
        """Count one request; True when it is past the limit and must be refused."""
        self._roll(now)
        self.count += 1
        return self.enforced and self.count > self.limit

    def seconds_to_reset(self, now: float) -> int:
        self._roll(now)
        return max(1, math.ceil(self._start + self.window_s - now))

    def headers(self, now: float) -> list[tuple[bytes, bytes]]:
        """The three X-RateLimit-* headers; runs on every response, so kept lean."""
        if now - self._start >= self.window_s:
            self._roll(now)
        remaining = self.limit - self.count
        reset = math.ceil(self._start + self.window_s - now)
        return [
            self._limit_header,
            (b"x-ratelimit-remaining", b"%d" % (remaining if remaining > 0 else 0)),
            (b"x-ratelimit-reset", b"%d" % (reset if reset > 1 else 1)),
        ]
