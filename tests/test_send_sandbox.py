"""The sender over real HTTP against the sandbox on 127.0.0.1 (both transports)."""

from __future__ import annotations

import polars as pl
import pytest
from _masivo_fakes import plan_frame

from pipeline.client import ClientOptions, Credentials
from pipeline.send import SendOptions, SendResult, run_send

FAST = {"backoff_base_s": 0.005, "backoff_cap_s": 0.05, "seed": 3}


def send(sb, plan: pl.DataFrame, *, transport: str = "aiohttp", **opts):
    results: list[SendResult] = []
    options = SendOptions(**{**FAST, **opts})
    client_options = ClientOptions(
        base_url=sb.base_url, concurrency=options.concurrency, transport=transport, read_timeout=5
    )
    outcome = run_send(
        plan,
        client_options,
        Credentials(api_key=sb.config.api_key),
        options,
        results.append,
        handle_signals=False,
    )
    return outcome, results


@pytest.mark.parametrize("transport", ["aiohttp", "httpcore"])
def test_happy_path_and_weird_ids(make_sandbox, transport: str) -> None:
    sb = make_sandbox()
    weird = ["a/b", "x?y=1", "h#f", "100%", "two words", "..", "josé", "back\\slash"]
    plan = plan_frame(200).with_columns(
        pl.Series("customer_id", weird + [f"c{i}" for i in range(200 - len(weird))])
    )
    outcome, results = send(sb, plan, transport=transport, concurrency=16)
    assert outcome.completed and len(results) == 200
    assert {r.outcome for r in results} == {"succeeded"}
    for cid in weird:
        assert sb.state.devices_of(cid), cid
    assert len(sb.state.registrations()) == 200


def test_faults_are_retried_to_success(make_sandbox) -> None:
    sb = make_sandbox(
        error_503_rate=0.15,
        error_500_rate=0.05,
        drop_rate=0.05,
        rate_429_rate=0.05,
        retry_after_s=0,
        seed=7,
    )
    outcome, results = send(sb, plan_frame(300), concurrency=16, max_attempts=10, systemic_after=0)
    assert outcome.completed and len(results) == 300
    assert {r.outcome for r in results} == {"succeeded"}
    assert outcome.retries > 0 and outcome.rate_limit_waits > 0
    # a 429 is not an attempt: attempts add up to the non-429 calls
    assert sum(r.attempts for r in results) == outcome.attempts - outcome.rate_limit_waits


def test_short_lived_tokens_are_renewed_during_the_run(make_sandbox) -> None:
    # The rate limit paces the run (~2 s) independently of the sandbox's latency.
    sb = make_sandbox(token_ttl_s=1.0)
    outcome, results = send(sb, plan_frame(80), concurrency=4, rate_limit=40.0)
    assert outcome.completed and len(results) == 80
    assert outcome.token_renewals >= 1
    assert sb.state.status_count(401) <= 2


def test_unknown_customers_are_rejected(make_sandbox) -> None:
    sb = make_sandbox(unknown_prefix="c1")
    outcome, results = send(sb, plan_frame(30), concurrency=4)
    rejected = {r.customer_id for r in results if r.reason == "customer_not_found"}
    assert outcome.completed and rejected == {f"c{i}" for i in range(30) if str(i).startswith("1")}


def test_marketing_automation_off_stops_with_exit_3(make_sandbox) -> None:
    sb = make_sandbox(marketing_automation_off=True)
    outcome, results = send(sb, plan_frame(500), concurrency=8, preflight=True)
    assert outcome.stop_reason == "marketing_automation_disabled" and outcome.exit_code == 3
    assert results == [] and sb.state.status_count(400) == 1


def test_auth_failure_stops(make_sandbox) -> None:
    sb = make_sandbox(fail_auth=True, fail_auth_status=401)
    outcome, results = send(sb, plan_frame(10))
    assert outcome.stop_reason == "auth_failed" and results == []
    assert sb.config.api_key not in (outcome.stop_message or "")
