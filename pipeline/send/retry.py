"""Backoff with full jitter, and the detector of systemic failure."""

from __future__ import annotations

import random

from pipeline.client import REJECT, CallResult


def backoff_delay(
    attempt: int, base_s: float, cap_s: float, rng: random.Random | None = None
) -> float:
    """Full jitter (AWS architecture blog): uniform(0, min(cap, base * 2**(attempt-1))).

    Spreads retries of many workers hit by the same outage instead of retrying in lockstep.
    """
    ceiling = min(cap_s, base_s * (2 ** max(attempt - 1, 0)))
    return (rng or random).uniform(0.0, ceiling)


class SystemicDetector:
    """Stops the run when K consecutive attempts fail the same way.

    Transient failures (5xx, timeouts, connection errors) count at any time: an outage should
    not burn the whole table through the retry budget. Permanent per-row rejections (404, 400,
    ...) count only until the first success: K unknown customers in a row at the start mean a
    wrong account or base URL, but in the middle of a run they are just data.
    """

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self._signature: tuple[str, str, int | None] | None = None
        self._count = 0
        self._seen_success = False

    def success(self) -> None:
        self._seen_success = True
        self._signature = None
        self._count = 0

    def failure(self, result: CallResult) -> bool:
        """Record a failed attempt; True when the run should stop."""
        if self.threshold <= 0:
            return False
        if result.kind == REJECT and self._seen_success:
            self._signature = None
            self._count = 0
            return False
        signature = result.signature
        if signature == self._signature:
            self._count += 1
        else:
            self._signature = signature
            self._count = 1
        return self._count >= self.threshold
