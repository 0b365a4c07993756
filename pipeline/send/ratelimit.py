"""A rate limiter shared by all workers: token bucket, 429 pauses, step-down and recovery.

- `--rate-limit` is a token bucket (GCRA: each request reserves the next free slot; a small
  burst is allowed), so requests stay evenly spread whatever the concurrency.
- A 429 pauses every worker until Retry-After (capped) and halves the rate; the rate then climbs
  back by RECOVERY_STEP every RECOVERY_EVERY_S without a 429, and by SUCCESS_STEP with every answer
  that is not a 429, up to the configured rate (or back to unlimited). The per-answer step keeps
  a server that sheds a few percent of requests with 429 regardless of rate from ratcheting the
  run down to the floor: halving per 429 and +5% per success settle where 429s are rarer than ~1
  in 15 answers, which a real limiter reaches by being obeyed.
- X-RateLimit-Remaining / -Reset: when the remaining budget is low, the rate is capped for the
  rest of the window at remaining/reset so the budget lasts until the reset, before any 429.

Waiting here is not an attempt. When nothing limits (no rate, no pause) `acquire` does not await.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio

MIN_RATE = 0.2  # requests/s; the floor of step-downs (one request every 5 s)
STEP_DOWN = 0.5
RECOVERY_STEP = 1.25
RECOVERY_EVERY_S = 5.0
SUCCESS_STEP = 1.05
DEFAULT_RETRY_AFTER_S = 1.0  # when a 429 has no (numeric) Retry-After
RATE_WINDOW_S = 2.0  # how far back the observed request rate looks


class RateLimiter:
    def __init__(
        self,
        rate: float | None,
        *,
        retry_after_cap_s: float = 60.0,
        low_remaining: int = 0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.configured = rate if rate and rate > 0 else None
        self.current = self.configured
        self.retry_after_cap_s = retry_after_cap_s
        # Below this X-RateLimit-Remaining the sender slows down (set to the concurrency: that
        # many requests may already be on their way).
        self.low_remaining = low_remaining
        self._now = monotonic
        self._next_slot = 0.0
        self._pause_until = 0.0
        self._hint_rate: float | None = None
        self._hint_until = 0.0
        self._last_429 = 0.0
        self._last_step = 0.0
        self._ceiling: float | None = None  # unlimited runs: the rate a 429 happened at
        # observed start rate (for stepping down an unlimited run)
        self._window_start = monotonic()
        self._window_count = 0
        self._observed = 0.0
        self.waits = 0  # times a worker had to wait (pause or bucket)
        self.pauses = 0  # 429 pauses
        self.waited_s = 0.0

    def _effective_rate(self, now: float) -> float | None:
        rate = self.current
        if self._hint_rate is not None:
            if now < self._hint_until:
                rate = self._hint_rate if rate is None else min(rate, self._hint_rate)
            else:
                self._hint_rate = None
        return rate

    def _recover(self, now: float) -> None:
        if self.current == self.configured or now - self._last_429 < RECOVERY_EVERY_S:
            return
        if now - self._last_step < RECOVERY_EVERY_S:
            return
        self._last_step = now
        self._raise(RECOVERY_STEP)

    def _raise(self, factor: float) -> None:
        assert self.current is not None
        stepped = self.current * factor
        if self.configured is not None:
            self.current = min(stepped, self.configured)
        elif self._ceiling is not None and stepped >= self._ceiling:
            self.current = None  # back to unlimited
        else:
            self.current = stepped

    def on_success(self) -> None:
        """An answer that was not a 429: earn back a little of a stepped-down rate."""
        if self.current is not None and self.current != self.configured:
            self._raise(SUCCESS_STEP)

    async def acquire(self) -> None:
        """Wait until a request may start (`reserve` + `wait`)."""
        delay = self.reserve()
        if delay > 0:
            await self.wait(delay)

    def reserve(self) -> float:
        """Take the next request slot; the seconds to wait before using it (0.0: go now).

        Synchronous so the sender's common case (no rate, no pause) costs no coroutine per row.
        """
        now = self._now()
        self._count(now)
        if self.current is not self.configured:
            self._recover(now)
        delay = 0.0
        if now < self._pause_until:
            delay = self._pause_until - now
        rate = self._effective_rate(now)
        if rate is not None:
            # GCRA: _next_slot is the theoretical arrival time; a request may run up to
            # `tolerance` before it, which allows ~0.1 s of burst after an idle spell.
            interval = 1.0 / rate
            tolerance = max(0.0, 0.1 - interval)
            earliest = now + delay
            tat = max(self._next_slot, earliest)
            slot = max(earliest, tat - tolerance)
            self._next_slot = tat + interval
            delay = slot - now
        return delay

    async def wait(self, delay: float) -> None:
        """Sleep a delay from `reserve`, then any pause a 429 imposed meanwhile."""
        if delay <= 0:
            return
        self.waits += 1
        self.waited_s += delay
        await anyio.sleep(delay)
        # A 429 may have arrived while we slept: honour the newer pause as well.
        now = self._now()
        if now < self._pause_until:
            extra = self._pause_until - now
            self.waited_s += extra
            await anyio.sleep(extra)

    def _count(self, now: float) -> None:
        self._window_count += 1
        elapsed = now - self._window_start
        if elapsed >= RATE_WINDOW_S:
            self._observed = self._window_count / elapsed
            self._window_start = now
            self._window_count = 0

    def on_429(self, retry_after: float | None) -> float:
        """Pause everyone and step the rate down. Returns the pause in seconds."""
        now = self._now()
        wait = DEFAULT_RETRY_AFTER_S if retry_after is None else retry_after
        wait = min(max(wait, 0.0), self.retry_after_cap_s)
        self._pause_until = max(self._pause_until, now + wait)
        # Several in-flight requests see the same 429 burst: step down once per pause.
        if now - self._last_429 > max(wait, 0.5) or self.pauses == 0:
            base = self.current
            if base is None:
                elapsed = max(now - self._window_start, 1e-3)
                observed = self._observed or (self._window_count / elapsed)
                base = max(observed, MIN_RATE)
                self._ceiling = base
            self.current = max(MIN_RATE, base * STEP_DOWN)
            self.pauses += 1
        self._last_429 = now
        self._last_step = now
        return wait

    def on_headers(self, remaining: int | None, reset: float | None) -> None:
        """Slow down ahead of a 429 when the window's remaining budget is low."""
        if remaining is None or reset is None or remaining > self.low_remaining:
            return
        now = self._now()
        reset = min(reset, self.retry_after_cap_s)
        if remaining <= 0:
            self._pause_until = max(self._pause_until, now + reset)
            return
        self._hint_rate = max(MIN_RATE, remaining / max(reset, 1e-3))
        self._hint_until = now + reset
