"""The progress callback is throttled (PROGRESS_EVERY_S) and always gets the final counts."""

from __future__ import annotations

import pytest
from _masivo_fakes import FAKE_API_KEY, FakeMasivo, plan_frame

from pipeline.client import ClientOptions, Credentials, MasivoClient
from pipeline.send import SendOptions, SendOutcome, SendResult, send_plan, workers

pytestmark = pytest.mark.anyio


async def _run(rows: int) -> tuple[SendOutcome, list[SendResult], list[tuple[int, dict]]]:
    results: list[SendResult] = []
    calls: list[tuple[int, dict]] = []
    options = SendOptions(concurrency=8, seed=1)
    client = MasivoClient(
        ClientOptions(base_url="https://m.test/v1", concurrency=8),
        Credentials(api_key=FAKE_API_KEY),
        transport=FakeMasivo().transport(),
    )
    async with client:
        outcome = await send_plan(
            plan_frame(rows),
            client,
            options,
            results.append,
            progress=lambda s: calls.append((s.sent, dict(s.by_outcome))),
        )
    return outcome, results, calls


async def test_progress_is_throttled_and_ends_with_the_final_counts(monkeypatch) -> None:
    monkeypatch.setattr(workers, "PROGRESS_EVERY_S", 3600.0)
    _, results, calls = await _run(500)
    assert len(results) == 500
    assert len(calls) == 2  # the first row, then the final counts
    assert calls[0][0] == 1
    assert calls[-1] == (500, {"succeeded": 500})


async def test_progress_every_row_when_unthrottled(monkeypatch) -> None:
    monkeypatch.setattr(workers, "PROGRESS_EVERY_S", -1.0)
    _, _, calls = await _run(50)
    assert [sent for sent, _ in calls] == list(range(1, 51))  # no duplicate final call
