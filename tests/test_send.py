"""send_plan over a scripted MockTransport: retries, 429s, stops, preflight, signals, bounds."""

from __future__ import annotations

import json
import threading

import anyio
import httpx
import polars as pl
import pytest
from _masivo_fakes import FAKE_API_KEY, FakeMasivo, plan_frame
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.client import ClientOptions, Credentials, MasivoClient
from pipeline.outcomes import REASONS
from pipeline.send import SendOptions, SendResult, StopControl, body_for, iter_rows, send_plan
from pipeline.send.ratelimit import RateLimiter

pytestmark = pytest.mark.anyio
FAST = {"backoff_base_s": 0.001, "backoff_cap_s": 0.005, "seed": 1}


async def run(fake: FakeMasivo, plan: pl.DataFrame, **opts):
    results: list[SendResult] = []
    options = SendOptions(**{**FAST, **opts})
    client = MasivoClient(
        ClientOptions(base_url="https://m.test/v1", concurrency=options.concurrency),
        Credentials(api_key=FAKE_API_KEY),
        transport=fake.transport(),
    )
    async with client:
        outcome = await send_plan(plan, client, options, results.append)
    return outcome, results


def customer(request: httpx.Request) -> str:
    return request.url.path.split("/")[-2]


async def test_all_succeed_with_bodies_and_one_result_per_row() -> None:
    fake = FakeMasivo()
    outcome, results = await run(fake, plan_frame(300), concurrency=8)
    assert outcome.completed and outcome.exit_code == 0
    assert sorted(r.row_id for r in results) == list(range(300))
    assert {r.outcome for r in results} == {"succeeded"} and outcome.sent == 300
    body = json.loads(next(c.content for c in fake.calls if customer(c) == "c0"))
    assert body == {
        "device_token": "fcm0:APA91b" + "x" * 20,
        "device_info": {"platform": "android", "osVersion": "34"},
    }
    r1 = next(r for r in results if r.row_id == 1)
    assert (r1.customer_id, r1.model, r1.attempts, r1.http_status) == ("c1", "SM-S918B", 1, 200)


async def test_transient_errors_retry_then_succeed_or_fail() -> None:
    seen: dict[str, int] = {}

    def devices(request):
        cid = customer(request)
        seen[cid] = seen.get(cid, 0) + 1
        if cid == "c0" and seen[cid] < 3:
            return httpx.Response(503)
        if cid == "c1":
            raise httpx.ReadTimeout("slow")
        return httpx.Response(200)

    outcome, results = await run(FakeMasivo(devices), plan_frame(3), concurrency=2, max_attempts=4)
    by_id = {r.row_id: r for r in results}
    assert (by_id[0].outcome, by_id[0].attempts) == ("succeeded", 3)
    assert (by_id[1].outcome, by_id[1].reason, by_id[1].attempts) == ("failed", "timeout", 4)
    assert "ReadTimeout" in (by_id[1].error or "")
    assert outcome.retries == 2 + 3 and outcome.completed


async def test_rejections_are_immediate_with_reason() -> None:
    def devices(request):
        cid = customer(request)
        if cid == "c1":
            return httpx.Response(404, json={"message": "Customer not found"})
        if cid == "c2":
            return httpx.Response(400, json={"details": "device_token malformed"})
        return httpx.Response(200)

    outcome, results = await run(FakeMasivo(devices), plan_frame(4), concurrency=1)
    by_id = {r.row_id: r for r in results}
    assert (by_id[1].outcome, by_id[1].reason, by_id[1].attempts) == (
        "rejected",
        "customer_not_found",
        1,
    )
    assert (by_id[2].reason, by_id[2].error) == ("bad_request", "HTTP 400: device_token malformed")
    assert outcome.completed
    assert all(r.reason in REASONS for r in results)


async def test_429_pauses_and_is_not_an_attempt() -> None:
    count = {"n": 0}

    def devices(request):
        count["n"] += 1
        if count["n"] <= 2:
            return httpx.Response(429, headers={"Retry-After": "0.2"})
        return httpx.Response(200)

    start = anyio.current_time()
    outcome, results = await run(FakeMasivo(devices), plan_frame(4), concurrency=1)
    assert anyio.current_time() - start >= 0.2
    assert {r.outcome for r in results} == {"succeeded"}
    assert next(r for r in results if r.row_id == 0).attempts == 1
    assert outcome.rate_limit_waits == 2 and outcome.retries == 0 and outcome.completed


async def test_retry_after_is_capped() -> None:
    state = {"first": True}

    def devices(request):
        if state.pop("first", False):
            return httpx.Response(429, headers={"Retry-After": "3600"})
        return httpx.Response(200)

    with anyio.fail_after(5):
        outcome, results = await run(
            FakeMasivo(devices), plan_frame(2), concurrency=1, retry_after_cap_s=0.1
        )
    assert len(results) == 2 and outcome.rate_limit_wait_s <= 0.1 + 1e-9


async def test_marketing_automation_400_stops_the_run() -> None:
    fake = FakeMasivo(
        lambda r: httpx.Response(400, json={"message": "Marketing automation is not enabled"})
    )
    outcome, results = await run(fake, plan_frame(500), concurrency=4)
    assert outcome.stop_reason == "marketing_automation_disabled" and outcome.exit_code == 3
    assert results == [] and len(fake.calls) <= 4 + 4
    assert "marketing automation" in (outcome.stop_message or "").lower()
    assert "\n" not in (outcome.stop_message or "")


async def test_preflight_sends_first_row_alone() -> None:
    fake = FakeMasivo(lambda r: httpx.Response(400, json={"message": "marketing automation off"}))
    outcome, results = await run(fake, plan_frame(500), concurrency=16, preflight=True)
    assert outcome.stop_reason == "marketing_automation_disabled" and len(fake.calls) == 1
    ok = FakeMasivo()
    outcome, results = await run(ok, plan_frame(50), concurrency=16, preflight=True)
    assert outcome.completed and len(results) == 50 and customer(ok.calls[0]) == "c0"


async def test_k_consecutive_identical_failures_stop() -> None:
    fake = FakeMasivo(lambda r: httpx.Response(503))
    outcome, results = await run(
        fake, plan_frame(1000), concurrency=2, systemic_after=6, max_attempts=3
    )
    assert outcome.stop_reason == "systemic_failure" and outcome.exit_code == 3
    assert len(fake.calls) < 12 and len(results) < 6
    assert "6 consecutive" in (outcome.stop_message or "")


async def test_rejections_count_only_before_first_success() -> None:
    def devices(request):
        return httpx.Response(200) if customer(request) == "c0" else httpx.Response(404)

    outcome, results = await run(
        FakeMasivo(devices), plan_frame(30), concurrency=1, systemic_after=5
    )
    assert outcome.completed and len(results) == 30
    outcome, results = await run(
        FakeMasivo(lambda r: httpx.Response(404)), plan_frame(30), concurrency=1, systemic_after=5
    )
    assert outcome.stop_reason == "systemic_failure" and len(results) == 5


async def test_preissued_token_401_stops_with_unauthorized() -> None:
    fake = FakeMasivo()
    client = MasivoClient(
        ClientOptions(base_url="https://m.test/v1"),
        Credentials(access_token="eyJx.eyJy.zzzzzzzz"),
        transport=fake.transport(),
    )
    async with client:
        outcome = await send_plan(
            plan_frame(20), client, SendOptions(concurrency=2), lambda r: None
        )
    assert outcome.stop_reason == "unauthorized" and outcome.exit_code == 3
    with pytest.raises(Exception) as info:
        outcome.raise_for_stop()
    assert info.value.reason == "unauthorized"  # type: ignore[attr-defined]


async def test_auth_failure_stops_before_any_row() -> None:
    fake = FakeMasivo()
    fake.auth_status = 403
    outcome, results = await run(fake, plan_frame(10))
    assert outcome.stop_reason == "auth_failed" and fake.calls == [] and results == []
    assert FAKE_API_KEY not in (outcome.stop_message or "")


async def test_stop_requested_finishes_in_flight_and_takes_no_new_rows() -> None:
    started: list[str] = []
    stop = StopControl()

    async def devices(request):
        started.append(customer(request))
        if len(started) == 6:
            stop.request(2)  # SIGINT while 4 calls are in flight
        await anyio.sleep(0.05)
        return httpx.Response(200)

    fake = FakeMasivo()
    fake.devices = devices  # type: ignore[assignment]

    async def handler(request):
        if request.url.path.endswith("/auth/authorize"):
            return fake.handler(request)
        return await devices(request)

    results: list[SendResult] = []
    client = MasivoClient(
        ClientOptions(base_url="https://m.test/v1"),
        Credentials(api_key=FAKE_API_KEY),
        transport=httpx.MockTransport(handler),
    )
    async with client:
        outcome = await send_plan(
            plan_frame(200),
            client,
            SendOptions(concurrency=4, grace_period_s=5),
            results.append,
            stop_requested=stop.stop_requested,
            force_stop=stop.force_stop,
            signal_name=stop.signal_name,
        )
    outcome.signal = stop.signal
    assert outcome.stop_reason == "interrupted" and outcome.exit_code == 130
    assert "SIGINT" in (outcome.stop_message or "")
    assert len(started) <= 8 and len(results) == len(started)  # every started call recorded
    assert {r.outcome for r in results} == {"succeeded"}


async def test_force_stop_cancels_in_flight_without_results() -> None:
    stop = StopControl()

    async def handler(request):
        if request.url.path.endswith("/auth/authorize"):
            return httpx.Response(200, json={"data": "eyJh.eyJi.c"})
        stop.request(15)
        stop.request(15)
        await anyio.sleep(10)
        return httpx.Response(200)

    results: list[SendResult] = []
    client = MasivoClient(
        ClientOptions(base_url="https://m.test/v1"),
        Credentials(api_key=FAKE_API_KEY),
        transport=httpx.MockTransport(handler),
    )
    with anyio.fail_after(3):
        async with client:
            outcome = await send_plan(
                plan_frame(50),
                client,
                SendOptions(concurrency=4),
                results.append,
                stop_requested=stop.stop_requested,
                force_stop=stop.force_stop,
            )
    assert outcome.stop_reason == "interrupted" and results == []


async def test_queue_is_bounded_by_concurrency_not_rows() -> None:
    async def handler(request):
        if request.url.path.endswith("/auth/authorize"):
            return httpx.Response(200, json={"data": "eyJh.eyJi.c"})
        await anyio.sleep(0)
        return httpx.Response(200)

    results: list[SendResult] = []
    client = MasivoClient(
        ClientOptions(base_url="https://m.test/v1"),
        Credentials(api_key=FAKE_API_KEY),
        transport=httpx.MockTransport(handler),
    )
    async with client:
        outcome = await send_plan(
            plan_frame(3000),
            client,
            SendOptions(concurrency=8, queue_size=4, slice_rows=100),
            results.append,
        )
    assert len(results) == 3000
    assert 0 < outcome.max_ahead <= 4 + 8 + 1


async def test_rate_limit_spreads_requests() -> None:
    start = anyio.current_time()
    _, results = await run(FakeMasivo(), plan_frame(30), concurrency=8, rate_limit=100.0)
    elapsed = anyio.current_time() - start
    assert (
        len(results) == 30 and 0.15 <= elapsed < 2.0
    )  # 30 requests at 100/s ≈ 0.2 s after a small burst


async def test_ratelimit_limiter_steps_down_and_recovers() -> None:
    now = [0.0]
    limiter = RateLimiter(10.0, monotonic=lambda: now[0], retry_after_cap_s=5, low_remaining=4)
    assert limiter.on_429(30) == 5
    assert limiter.current == 5.0
    now[0] += 6
    limiter._recover(now[0])
    assert limiter.current == 6.25
    for _ in range(10):
        now[0] += 6
        limiter._recover(now[0])
    assert limiter.current == 10.0
    limiter.on_headers(remaining=2, reset=4)  # low budget: 2 requests over 4 s
    assert limiter._effective_rate(now[0]) == 0.5


def test_random_429s_do_not_ratchet_the_rate_to_the_floor() -> None:
    # A server that sheds 1 in 20 requests whatever the rate: each 429 halves, each other answer
    # earns back 5%, so the rate settles instead of collapsing to MIN_RATE.
    now = [0.0]
    limiter = RateLimiter(100.0, monotonic=lambda: now[0], retry_after_cap_s=1)
    for _ in range(50):
        now[0] += 2
        limiter.on_429(1)
        for _ in range(19):
            limiter.on_success()
    assert limiter.current is not None and limiter.current >= 50.0


def test_bodies_match_reference_encoding_examples() -> None:
    frame = pl.DataFrame(
        {
            "row_id": [0, 1],
            "customer_id": ["a", "b"],
            "device_token": ['q"\\\n', "t"],
            "platform": ["ios", "web"],
            "model": [None, "M"],
            "os_version": ["17", None],
        }
    )
    rows = list(iter_rows(frame))
    assert (
        rows[0][6]
        == b'{"device_token":"q\\"\\\\\\n","device_info":{"platform":"ios","osVersion":"17"}}'
    )
    assert json.loads(rows[1][6]) == {
        "device_token": "t",
        "device_info": {"platform": "web", "model": "M"},
    }


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(min_size=1),
            st.sampled_from(["android", "ios", "web"]),
            st.none() | st.text(),
            st.none() | st.text(),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_vectorised_bodies_equal_json_dumps(rows) -> None:
    frame = pl.DataFrame(
        {
            "row_id": list(range(len(rows))),
            "customer_id": ["c"] * len(rows),
            "device_token": [r[0] for r in rows],
            "platform": [r[1] for r in rows],
            "model": [r[2] for r in rows],
            "os_version": [r[3] for r in rows],
        },
        schema={
            "row_id": pl.Int64,
            "customer_id": pl.String,
            "device_token": pl.String,
            "platform": pl.String,
            "model": pl.String,
            "os_version": pl.String,
        },
    )
    for got, row in zip(iter_rows(frame, slice_rows=3), rows, strict=True):
        assert json.loads(got[6]) == json.loads(body_for(*row))


def test_run_send_sync_wrapper_uses_a_thread_safe_loop() -> None:
    from pipeline.send import run_send

    fake = FakeMasivo()
    got: list[SendResult] = []
    outcome = run_send(
        plan_frame(10),
        ClientOptions(base_url="https://m.test/v1"),
        Credentials(api_key=FAKE_API_KEY),
        SendOptions(concurrency=3),
        got.append,
        handle_signals=threading.current_thread() is threading.main_thread(),
        transport=fake.transport(),
    )
    assert outcome.completed and len(got) == 10 and outcome.transport == "MockTransport"


@pytest.mark.parametrize("before", [(700, 10, 10), (100_000, 5, 5), (0, 10, 10)])
def test_run_send_collects_young_garbage_less_often_and_restores_the_thresholds(
    before: tuple[int, int, int],
) -> None:
    """A young-generation collection every 700 allocations (the default) paused the loop every
    few requests; a caller's own settings win when they collect less often (or never: 0)."""
    import gc

    from pipeline.send import SEND_GC_THRESHOLD, run_send

    seen: list[tuple[int, int, int]] = []
    saved = gc.get_threshold()
    gc.set_threshold(*before)
    try:
        run_send(
            plan_frame(3),
            ClientOptions(base_url="https://m.test/v1"),
            Credentials(api_key=FAKE_API_KEY),
            SendOptions(concurrency=2),
            lambda _result: seen.append(gc.get_threshold()),
            handle_signals=False,
            transport=FakeMasivo().transport(),
        )
        after = gc.get_threshold()
    finally:
        gc.set_threshold(*saved)
    young = before[0] and max(before[0], SEND_GC_THRESHOLD)
    assert seen == [(young, *before[1:])] * 3
    assert after == before
