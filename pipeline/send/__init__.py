"""Bounded concurrent workers over the plan: rate limiting, retries, systemic stops, signals.

Public API: SendOptions, SendResult, SendOutcome, send_plan (async), run_send (sync wrapper),
StopControl + watch_signals (SIGINT/SIGTERM -> cooperative stop, second signal -> at once).
"""

from __future__ import annotations

import gc
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import anyio
import polars as pl

from pipeline.client import ClientOptions, Credentials, MasivoClient
from pipeline.send.bodies import BODY_EXPR, PLAN_COLUMNS, body_for, iter_rows
from pipeline.send.model import SYSTEMIC_REASONS, SendOptions, SendOutcome, SendResult
from pipeline.send.workers import send_plan

__all__ = [
    "BODY_EXPR",
    "PLAN_COLUMNS",
    "SYSTEMIC_REASONS",
    "SendOptions",
    "SendOutcome",
    "SendResult",
    "StopControl",
    "body_for",
    "iter_rows",
    "run_send",
    "send_plan",
    "send_with_client",
    "watch_signals",
]


@dataclass
class StopControl:
    """The two events send_plan listens to. Create inside the event loop.

    request() is what a signal handler calls: the first call asks for a graceful stop, the second
    forces one.
    """

    stop_requested: anyio.Event = field(default_factory=anyio.Event)
    force_stop: anyio.Event = field(default_factory=anyio.Event)
    signal: int | None = None

    def request(self, signum: int | None = None) -> None:
        if self.signal is None and signum is not None:
            self.signal = signum
        if self.stop_requested.is_set():
            self.force_stop.set()
        else:
            self.stop_requested.set()

    def signal_name(self) -> str:
        if self.signal is None:
            return "stop requested"
        try:
            return signal.Signals(self.signal).name
        except ValueError:
            return f"signal {self.signal}"


async def watch_signals(
    control: StopControl,
    signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM),
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Turn SIGINT/SIGTERM into control.request(); run it in a task group, cancel when done."""
    with anyio.open_signal_receiver(*signals) as received:
        task_status.started()
        async for signum in received:
            control.request(int(signum))


async def send_with_client(
    plan: pl.DataFrame,
    client_options: ClientOptions,
    credentials: Credentials,
    send_options: SendOptions,
    on_result: Callable[[SendResult], None],
    *,
    progress: Callable[[SendOutcome], None] | None = None,
    handle_signals: bool = True,
    control: StopControl | None = None,
    transport: object | None = None,
) -> SendOutcome:
    """Open a MasivoClient, optionally watch signals, send the plan."""
    control = control or StopControl()
    async with (
        MasivoClient(client_options, credentials, transport=transport) as client,  # type: ignore[arg-type]
        anyio.create_task_group() as tg,
    ):
        if handle_signals:
            await tg.start(watch_signals, control)
        outcome = await send_plan(
            plan,
            client,
            send_options,
            on_result,
            stop_requested=control.stop_requested,
            force_stop=control.force_stop,
            progress=progress,
            signal_name=control.signal_name,
        )
        tg.cancel_scope.cancel()
    if outcome.stop_reason == "interrupted":
        outcome.signal = control.signal
    return outcome


# Python's cyclic GC collects its young generation every 700 net allocations by default, and a
# PATCH allocates dozens of objects (in aiohttp mostly): a collection every few requests, and
# each one delays every answer waiting in the loop. At 50 ms latency and concurrency 256 that
# cost 3-4% of throughput and ~5% of client CPU (make bench). 50,000 still bounds the cyclic
# garbage between collections to a few MB.
SEND_GC_THRESHOLD = 50_000


@contextmanager
def _young_gc_threshold(threshold: int) -> Iterator[None]:
    """Collect the youngest GC generation every `threshold` allocations while inside (unless
    the process collects less often already, or never: threshold 0); the process's own
    thresholds are restored after, so a caller such as an Airflow task keeps its settings."""
    before = gc.get_threshold()
    if before[0] != 0:
        gc.set_threshold(max(threshold, before[0]), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def run_send(
    plan: pl.DataFrame,
    client_options: ClientOptions,
    credentials: Credentials,
    send_options: SendOptions,
    on_result: Callable[[SendResult], None],
    *,
    progress: Callable[[SendOutcome], None] | None = None,
    handle_signals: bool = True,
    transport: object | None = None,
) -> SendOutcome:
    """Synchronous wrapper: runs send_with_client on asyncio (uvloop when installed: 10-30%)."""
    try:
        import uvloop  # noqa: F401

        backend_options = {"use_uvloop": True}
    except ImportError:  # pragma: no cover
        backend_options = {}

    async def main() -> SendOutcome:
        return await send_with_client(
            plan,
            client_options,
            credentials,
            send_options,
            on_result,
            progress=progress,
            handle_signals=handle_signals,
            transport=transport,
        )

    with _young_gc_threshold(SEND_GC_THRESHOLD):
        return anyio.run(main, backend="asyncio", backend_options=backend_options)
