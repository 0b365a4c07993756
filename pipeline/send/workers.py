"""The send loop: a producer, a bounded memory object stream, a fixed set of workers.

Memory is proportional to --concurrency: the producer turns one slice of the plan at a time into
rows and blocks on the stream (buffer = queue_size) while every worker is busy, so it is never
more than queue_size + concurrency rows ahead of the results (SendOutcome.max_ahead).

Stopping (systemic, or stop_requested from a signal): no new row and no new attempt starts;
workers waiting (rate limit, backoff, queue) are cancelled at once; HTTP calls in flight may
finish within grace_period_s and are recorded when their answer is definite (success or a
permanent rejection). Anything else gets no result: the orchestrator marks it aborted. force_stop
(a second signal) cancels everything immediately; on_result is synchronous, so a row is either
fully recorded or not at all.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import anyio.abc
import polars as pl

from pipeline.client import OK, RATE_LIMITED, REJECT, STOP, CallResult, MasivoClient
from pipeline.errors import SystemicStop
from pipeline.outcomes import Outcome, outcome_of
from pipeline.secrets import redact
from pipeline.send.bodies import Row, iter_rows
from pipeline.send.model import SendOptions, SendOutcome, SendResult
from pipeline.send.ratelimit import RateLimiter
from pipeline.send.retry import SystemicDetector, backoff_delay

# How often the progress callback runs: a display needs ~10 updates a second, not one per row
# (a rich bar update per row cost more CPU than the row's state record). The last update is
# always delivered when the send stage ends.
PROGRESS_EVERY_S = 0.1

# outcome_of(reason).value, looked up once per reason instead of through the enum per row.
_OUTCOME_VALUES: dict[str, str] = {}
_FAILED = Outcome.FAILED.value

_STOP_HINTS = {
    "marketing_automation_disabled": "enable marketing automation for the Masivo account, then rerun",
    "unauthorized": "check MASIVO_API_KEY / MASIVO_ACCESS_TOKEN, then rerun",
    "auth_failed": "check MASIVO_API_KEY and the base URL, then rerun",
    "systemic_failure": "check the base URL, the account and Masivo's status, then rerun",
}


@dataclass(eq=False)
class _Slot:
    scope: anyio.CancelScope
    in_call: bool = False


class _Run:
    def __init__(
        self,
        client: MasivoClient,
        options: SendOptions,
        on_result: Callable[[SendResult], None],
        progress: Callable[[SendOutcome], None] | None,
    ) -> None:
        self.client = client
        self.options = options
        self.on_result = on_result
        self.progress = progress
        self.limiter = RateLimiter(
            options.rate_limit,
            retry_after_cap_s=options.retry_after_cap_s,
            low_remaining=options.concurrency,
        )
        self.detector = SystemicDetector(options.systemic_after)
        self.rng = random.Random(options.seed)
        self.outcome = SendOutcome(transport=client.transport_name)
        self.stopping = False
        self.stop_event = anyio.Event()
        self.slots: list[_Slot] = []
        self.producer_scope = anyio.CancelScope()
        self.produced = 0
        self.finished = 0
        self._progress_due = 0.0  # monotonic time of the next progress call
        self._progress_sent = -1  # `finished` at the last progress call

    # -- stopping -------------------------------------------------------------------------------

    def stop(self, reason: str, message: str) -> None:
        if self.stopping:
            return
        self.stopping = True
        hint = _STOP_HINTS.get(reason)
        line = " ".join(redact(message).split())
        self.outcome.stop_reason = reason
        self.outcome.stop_message = f"{line} ({hint})" if hint else line
        self.producer_scope.cancel()
        for slot in self.slots:
            if not slot.in_call:
                slot.scope.cancel()
        self.stop_event.set()

    # -- results --------------------------------------------------------------------------------

    def emit(self, row: Row, result: CallResult, attempts: int, *, failed: bool = False) -> None:
        reason = result.reason
        if failed:
            outcome = _FAILED
        else:
            outcome = _OUTCOME_VALUES.get(reason)  # type: ignore[assignment]
            if outcome is None:
                outcome = _OUTCOME_VALUES[reason] = outcome_of(reason).value
        send_result = SendResult(
            row_id=row[0],
            outcome=outcome,
            reason=reason,
            http_status=result.http_status,
            attempts=attempts,
            error=result.error,
            latency_ms=round(result.latency_ms, 3),
            device_token=row[2],
            customer_id=row[1],
            platform=row[3],
            model=row[4],
            os_version=row[5],
        )
        try:
            self.on_result(send_result)
        except (OSError, SystemicStop) as exc:
            # The record of this row could not be written: stop before sending more rows whose
            # results could not be kept either.
            self.stop("state_write_failed", f"recording a result failed: {exc}")
            return
        self.finished += 1
        stats = self.outcome
        stats.sent += 1
        stats.by_outcome[outcome] = stats.by_outcome.get(outcome, 0) + 1
        if self.progress is not None:
            now = time.monotonic()
            if now >= self._progress_due:
                self._progress_due = now + PROGRESS_EVERY_S
                self.report_progress()

    def report_progress(self) -> None:
        """Call the progress callback (throttled by emit; once more at the end of the run)."""
        if self.progress is not None and self._progress_sent != self.finished:
            self._progress_sent = self.finished
            self.progress(self.outcome)

    # -- one row --------------------------------------------------------------------------------

    async def process(self, row: Row, slot: _Slot) -> None:
        options = self.options
        stats = self.outcome
        attempts = 0
        rate_waits = 0
        customer_id, body = row[1], row[6]
        while True:
            if self.stopping:
                return
            delay = self.limiter.reserve()
            if delay > 0:
                await self.limiter.wait(delay)
            if self.stopping:
                return
            attempts += 1
            slot.in_call = True
            try:
                result = await self.client.register_device(customer_id, body)
            finally:
                slot.in_call = False
            stats.attempts += 1
            if result.ratelimit_remaining is not None:
                self.limiter.on_headers(result.ratelimit_remaining, result.ratelimit_reset)
            kind = result.kind
            if kind != RATE_LIMITED:
                self.limiter.on_success()
            if kind == OK:
                self.detector.success()
                self.emit(row, result, attempts)
                return
            if kind == RATE_LIMITED:
                attempts -= 1  # a rate-limit wait is not an attempt
                rate_waits += 1
                stats.rate_limit_waits += 1
                stats.rate_limit_wait_s += self.limiter.on_429(result.retry_after)
                if rate_waits > options.max_rate_limit_waits:
                    self.emit(row, result, attempts, failed=True)
                    return
                continue
            if kind == STOP:
                self.stop(result.reason, result.error or result.reason)
                return
            if self.stopping:
                # Another worker stopped the run while this call was in flight.
                if kind == REJECT:
                    self.emit(row, result, attempts)
                return
            if self.detector.failure(result):
                self.stop(
                    "systemic_failure",
                    f"{options.systemic_after} consecutive calls failed the same way "
                    f"({result.reason}: {result.error or result.http_status})",
                )
                if kind == REJECT:
                    self.emit(row, result, attempts)
                return
            if kind == REJECT:
                self.emit(row, result, attempts)
                return
            if attempts >= options.max_attempts:
                self.emit(row, result, attempts, failed=True)
                return
            stats.retries += 1
            await anyio.sleep(
                backoff_delay(attempts, options.backoff_base_s, options.backoff_cap_s, self.rng)
            )

    # -- tasks ----------------------------------------------------------------------------------

    async def worker(self, receive: anyio.abc.ObjectReceiveStream[Row], slot: _Slot) -> None:
        with slot.scope:
            async with receive:
                while not self.stopping:
                    # receive_nowait first: the awaiting receive() adds a checkpoint per row
                    # (measured ~8% of per-row CPU) that buys nothing while rows are waiting.
                    try:
                        row = receive.receive_nowait()
                    except anyio.WouldBlock:
                        try:
                            row = await receive.receive()
                        except anyio.EndOfStream:
                            return
                    except anyio.EndOfStream:
                        return
                    if self.stopping:
                        return
                    await self.process(row, slot)

    async def producer(self, send: anyio.abc.ObjectSendStream[Row], rows: object) -> None:
        with self.producer_scope:
            async with send:
                for row in rows:  # type: ignore[attr-defined]
                    if self.stopping:
                        return
                    try:
                        send.send_nowait(row)
                    except anyio.WouldBlock:
                        await send.send(row)
                    self.produced += 1
                    ahead = self.produced - self.finished
                    if ahead > self.outcome.max_ahead:
                        self.outcome.max_ahead = ahead

    async def grace(self, outer: anyio.CancelScope) -> None:
        await self.stop_event.wait()
        await anyio.sleep(self.options.grace_period_s)
        outer.cancel()

    async def watch(
        self, event: anyio.Event, outer: anyio.CancelScope | None, name: Callable[[], str]
    ) -> None:
        await event.wait()
        if outer is None:
            self.stop("interrupted", f"{name()}: stopped taking new rows")
        else:
            self.stop("interrupted", f"{name()} again: stopped at once")
            outer.cancel()


async def send_plan(
    plan: pl.DataFrame,
    client: MasivoClient,
    options: SendOptions,
    on_result: Callable[[SendResult], None],
    *,
    stop_requested: anyio.Event | None = None,
    force_stop: anyio.Event | None = None,
    progress: Callable[[SendOutcome], None] | None = None,
    signal_name: Callable[[], str] | None = None,
) -> SendOutcome:
    """Send every row of `plan`; call on_result once per finished row (see module doc)."""
    run = _Run(client, options, on_result, progress)
    started = time.perf_counter()
    try:
        await _drive(run, plan, stop_requested, force_stop, signal_name)
    finally:
        run.outcome.elapsed_s = time.perf_counter() - started
        run.outcome.token_renewals = client.token_renewals
        run.outcome.rate_limit_pauses = run.limiter.pauses
    run.report_progress()  # the final counts, whatever the throttle skipped
    return run.outcome


async def _drive(
    run: _Run,
    plan: pl.DataFrame,
    stop_requested: anyio.Event | None,
    force_stop: anyio.Event | None,
    signal_name: Callable[[], str] | None,
) -> None:
    options = run.options
    if plan.height == 0:
        return
    auth_stop = await run.client.ensure_token()
    if auth_stop is not None:
        run.stop(auth_stop.reason, auth_stop.error or auth_stop.reason)
        return
    rows = iter_rows(plan, options.slice_rows)
    name = signal_name or (lambda: "interrupted")

    async with anyio.create_task_group() as outer:
        if stop_requested is not None:
            outer.start_soon(lambda: run.watch(stop_requested, None, name))
        if force_stop is not None:
            outer.start_soon(lambda: run.watch(force_stop, outer.cancel_scope, name))
        outer.start_soon(run.grace, outer.cancel_scope)
        if options.preflight:
            # The first row alone, before any concurrency: a systemic problem costs one call.
            first = next(rows, None)
            if first is not None:
                slot = _Slot(anyio.CancelScope())
                run.slots.append(slot)
                run.produced += 1
                with slot.scope:
                    await run.process(first, slot)
                run.slots.remove(slot)
        if not run.stopping:
            n_workers = max(1, min(options.concurrency, plan.height))
            send, receive = anyio.create_memory_object_stream[Row](
                max_buffer_size=options.queue_size or options.concurrency
            )
            run.slots.extend(_Slot(anyio.CancelScope()) for _ in range(n_workers))
            async with anyio.create_task_group() as workers:
                workers.start_soon(run.producer, send, rows)
                for slot in run.slots:
                    workers.start_soon(run.worker, receive.clone(), slot)
                receive.close()
        outer.cancel_scope.cancel()  # done: stop the watchers
