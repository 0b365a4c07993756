"""The sandbox over real HTTP on 127.0.0.1: it must behave like the Masivo API page says."""

from __future__ import annotations

import base64
import http.client
import json
import math
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from pipeline.sandbox.config import DEFAULT_API_KEY, MARKETING_OFF_MESSAGE, SandboxConfig
from pipeline.sandbox.faults import Fault, FaultPlan
from pipeline.sandbox.server import SandboxServer, run_sandbox_in_thread

REPO = Path(__file__).resolve().parents[1]
BODY = {
    "device_token": "fcm-token-1",
    "device_info": {"platform": "android", "model": "SM-S918B", "osVersion": "34"},
}
MakeSandbox = Callable[..., SandboxServer]


def segment(customer_id: str) -> str:
    """One path segment; dots too, or httpx would resolve a `..` id away."""
    return quote(customer_id, safe="").replace(".", "%2E")


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))  # type: ignore[no-any-return]


def authorize(client: httpx.Client, api_key: str = DEFAULT_API_KEY) -> str:
    response = client.get("/auth/authorize", headers={"x-api-key": api_key})
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


def client_for(sb: SandboxServer, token: str | None = None) -> httpx.Client:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=sb.base_url, headers=headers, timeout=5.0)


def authed(sb: SandboxServer) -> httpx.Client:
    with client_for(sb) as plain:
        token = authorize(plain, sb.config.api_key)
    return client_for(sb, token)


def patch(client: httpx.Client, customer_id: str, body: Any = BODY) -> httpx.Response:
    return client.patch(f"/customers/{segment(customer_id)}/devices", json=body)


# ---- authorize ----------------------------------------------------------------------------


def test_authorize_returns_a_real_jwt_with_exp_and_iat(make_sandbox: MakeSandbox) -> None:
    sb = make_sandbox(token_ttl_s=600)
    with client_for(sb) as client:
        response = client.get("/auth/authorize", headers={"x-api-key": DEFAULT_API_KEY})
    assert response.status_code == 200
    token = response.json()["data"]
    header_b64, _, signature = token.split(".")
    assert json.loads(base64.urlsafe_b64decode(header_b64 + "==")) == {"alg": "HS256", "typ": "JWT"}
    assert "=" not in token and len(signature) == 43  # base64url of a 32-byte HMAC-SHA256
    claims = jwt_claims(token)
    assert claims["iat"] <= time.time() + 1
    assert 600 <= claims["exp"] - claims["iat"] <= 602
    for name in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"):
        assert response.headers[name].isdigit()


@pytest.mark.parametrize("headers", [{"x-api-key": "not-the-key"}, {}], ids=["wrong", "missing"])
def test_authorize_refuses_a_bad_key(sandbox: SandboxServer, headers: dict[str, str]) -> None:
    with client_for(sandbox) as client:
        response = client.get("/auth/authorize", headers=headers)
    assert response.status_code == 401
    assert response.json()["message"]
    assert "x-ratelimit-remaining" in response.headers


def test_custom_api_key_and_fail_auth(make_sandbox: MakeSandbox) -> None:
    sb = make_sandbox(api_key="11111111-2222-3333-4444-555555555555")
    with client_for(sb) as client:
        assert (
            client.get("/auth/authorize", headers={"x-api-key": DEFAULT_API_KEY}).status_code == 401
        )
        authorize(client, "11111111-2222-3333-4444-555555555555")
    failing = make_sandbox(fail_auth=True, fail_auth_status=503)
    with client_for(failing) as client:
        assert (
            client.get("/auth/authorize", headers={"x-api-key": DEFAULT_API_KEY}).status_code == 503
        )


# ---- PATCH devices: auth, validation, outcomes ----------------------------------------------


def test_patch_without_or_with_a_foreign_token_is_401(sandbox: SandboxServer) -> None:
    with client_for(sandbox) as client:
        assert patch(client, "c1").status_code == 401
        token = authorize(client)
        head, payload, sig = token.split(".")
        forged = f"{head}.{payload}.{sig[:-2]}AA"
        for bad in ("nonsense", forged):
            response = client.patch(
                "/customers/c1/devices", json=BODY, headers={"authorization": f"Bearer {bad}"}
            )
            assert response.status_code == 401
    assert sandbox.state.registrations() == []


def test_expired_token_is_401(make_sandbox: MakeSandbox) -> None:
    sb = make_sandbox(token_ttl_s=1)
    with client_for(sb) as plain:
        token = authorize(plain)
    with client_for(sb, token) as client:
        assert patch(client, "c1").status_code == 200
        time.sleep(max(0.0, jwt_claims(token)["exp"] - time.time()) + 0.05)
        response = patch(client, "c1")
    assert response.status_code == 401
    assert response.json()["message"] == "Unauthorized"


def test_revoked_tokens_are_401(sandbox: SandboxServer) -> None:
    with authed(sandbox) as client:
        assert patch(client, "c1").status_code == 200
        assert sandbox.state.issued_tokens() == [
            client.headers["authorization"].removeprefix("Bearer ")
        ]
        assert httpx.post(sandbox.root_url + "/_sandbox/revoke-tokens").json()["count"] == 1
        assert patch(client, "c1").status_code == 401


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"device_info": {"platform": "ios"}}, "device_token"),
        ({"device_token": "", "device_info": {"platform": "ios"}}, "device_token"),
        ({"device_token": "t"}, "device_info"),
        ({"device_token": "t", "device_info": {"platform": "windows"}}, "platform"),
        ({"device_token": "t", "device_info": {}}, "platform"),
        ({"device_token": "t", "device_info": {"platform": "ios", "osVersion": 17}}, "osVersion"),
        ({"device_token": "t", "device_info": {"platform": "ios", "extra": 1}}, "extra"),
        ({"device_token": "t", "device_info": {"platform": "ios"}, "extra": 1}, "extra"),
        (["not", "an", "object"], "object"),
    ],
)
def test_schema_failures_are_400_with_details(
    sandbox: SandboxServer, body: Any, needle: str
) -> None:
    with authed(sandbox) as client:
        response = patch(client, "c1", body)
    assert response.status_code == 400
    payload = response.json()
    assert payload["message"] == "Invalid request body"
    assert needle in payload["details"]
    assert sandbox.state.registrations() == []


def test_invalid_json_is_400(sandbox: SandboxServer) -> None:
    with authed(sandbox) as client:
        response = client.patch("/customers/c1/devices", content=b"{not json")
    assert response.status_code == 400
    assert "JSON" in response.json()["details"]


def test_unknown_customers_are_404(make_sandbox: MakeSandbox) -> None:
    sb = make_sandbox(unknown_customers={"ghost"}, unknown_prefix="missing-")
    with authed(sb) as client:
        for customer_id in ("ghost", "missing-42"):
            response = patch(client, customer_id)
            assert response.status_code == 404
            assert response.json() == {"message": "Customer not found"}
            assert client.get(f"/customers/{customer_id}").status_code == 404
        assert patch(client, "ghost-but-known").status_code == 200
    assert [r.customer_id for r in sb.state.registrations()] == ["ghost-but-known"]


def test_success_is_recorded_register_or_update(sandbox: SandboxServer) -> None:
    with authed(sandbox) as client:
        response = patch(client, "c1")
        assert response.status_code == 200
        assert response.json() == {"message": "FCM token registered successfully"}
        updated = {
            "device_token": "fcm-token-1",
            "device_info": {"platform": "android", "osVersion": "35"},
        }
        assert patch(client, "c1", updated).status_code == 200
        second = {"device_token": "fcm-token-2", "device_info": {"platform": "ios"}}
        assert patch(client, "c1", second).status_code == 200
        customer = client.get("/customers/c1").json()["data"]["customer"]
    assert sandbox.state.accepted_count("c1", "fcm-token-1") == 2
    assert sandbox.state.devices_of("c1") == {
        "fcm-token-1": {"platform": "android", "osVersion": "35"},
        "fcm-token-2": {"platform": "ios"},
    }
    assert [d["device_token"] for d in customer["devices"]] == ["fcm-token-1", "fcm-token-2"]
    log = sandbox.state.request_log
    assert [(e.route, e.status) for e in log][-4:] == [("patch_devices", 200)] * 3 + [
        ("get_customer", 200)
    ]
    assert log[-2].device_token == "fcm-token-2" and log[-2].customer_id == "c1"


ODD_IDS = [
    "a/b",
    "x?y",
    "hash#tag",
    "100%",
    "%2F",
    "..",
    ".",
    "back\\slash",
    "with space",
    "ünïcödé-客户-😀",
    " lead",
]


@pytest.mark.parametrize("customer_id", ODD_IDS)
def test_percent_encoded_ids_arrive_decoded_exactly_once(
    sandbox: SandboxServer, customer_id: str
) -> None:
    with authed(sandbox) as client:
        response = patch(client, customer_id)
        assert response.status_code == 200, response.text
        assert (
            client.get(f"/customers/{segment(customer_id)}").json()["data"]["customer"]["id"]
            == customer_id
        )
    assert [r.customer_id for r in sandbox.state.registrations()] == [customer_id]


def test_unencoded_dot_segments_do_not_reach_a_customer(sandbox: SandboxServer) -> None:
    # httpx would normalise `..` away, so speak raw HTTP like a careless client would.
    conn = http.client.HTTPConnection("127.0.0.1", sandbox.port, timeout=5)
    conn.request("PATCH", "/api/storefront/v1/customers/../devices", body=json.dumps(BODY))
    assert conn.getresponse().status == 404
    conn.close()
    assert sandbox.state.registrations() == []


def test_unknown_routes_and_methods(sandbox: SandboxServer) -> None:
    with authed(sandbox) as client:
        assert client.get("/customers/c1/devices").status_code == 405
        assert client.post("/auth/authorize").status_code == 405
        assert client.get("/nowhere").status_code == 404
        assert client.patch("/customers//devices", json=BODY).status_code == 404
        not_utf8 = client.patch("/customers/%FF/devices", json=BODY)
        assert not_utf8.status_code == 400 and not_utf8.json()["details"] == "not UTF-8"
    assert [e.method for e in sandbox.state.request_log][1:3] == ["GET", "POST"]


def test_marketing_automation_off_answers_400_on_every_patch(make_sandbox: MakeSandbox) -> None:
    sb = make_sandbox(marketing_automation_off=True)
    with authed(sb) as client:
        responses = [patch(client, f"c{i}") for i in range(3)]
    assert {r.status_code for r in responses} == {400}
    assert responses[0].json()["message"] == MARKETING_OFF_MESSAGE
    assert responses[0].json()["details"]
    assert sb.state.registrations() == []


# ---- faults -------------------------------------------------------------------------------


def run_patches(sb: SandboxServer, n: int) -> list[int | str]:
    """Sequential PATCHes; a dropped connection is recorded as the httpx exception's name."""
    outcomes: list[int | str] = []
    with authed(sb) as client:
        for i in range(n):
            try:
                outcomes.append(patch(client, f"c{i}").status_code)
            except httpx.TransportError as exc:
                outcomes.append(type(exc).__name__)
    return outcomes


def test_each_fault_shows_up_at_its_share_and_is_reproducible(make_sandbox: MakeSandbox) -> None:
    n = 1000
    shares = {500: 0.10, 503: 0.05, 429: 0.05, "RemoteProtocolError": 0.05}
    sb = make_sandbox(
        seed=7, error_500_rate=0.10, error_503_rate=0.05, rate_429_rate=0.05, drop_rate=0.05
    )
    first = run_patches(sb, n)
    counts = Counter(first)
    for outcome, share in shares.items():
        expected = n * share
        assert abs(counts[outcome] - expected) <= 4 * math.sqrt(expected * (1 - share)), (
            outcome,
            counts,
        )
    assert counts[200] == n - sum(counts[k] for k in shares)
    stats = sb.state.stats()["by_route"]["patch_devices"]
    assert stats["0"] == counts["RemoteProtocolError"] and stats["500"] == counts[500]

    other = make_sandbox(
        seed=7, error_500_rate=0.10, error_503_rate=0.05, rate_429_rate=0.05, drop_rate=0.05
    )
    assert run_patches(other, 300) == first[:300]
    sb.reset()  # reseeds: the same sequence again
    assert run_patches(sb, 100) == first[:100]


def test_fault_plan_is_a_pure_function_of_the_seed() -> None:
    config = SandboxConfig(seed=11, error_500_rate=0.3, drop_rate=0.1, latency_ms=5, jitter_ms=10)
    a, b = FaultPlan(config), FaultPlan(config)
    first = [a.next() for _ in range(5000)]
    assert first == [b.next() for _ in range(5000)]
    assert all(0.005 <= d.delay_s <= 0.015 for d in first)
    counts = Counter(d.fault for d in first)
    assert abs(counts[Fault.ERROR_500] - 1500) < 150 and abs(counts[Fault.DROP] - 500) < 100
    # Changing only the latency leaves the fault sequence alone (two draws per request, always).
    c = FaultPlan(config.replace(latency_ms=0, jitter_ms=0))
    assert [d.fault for d in first] == [c.next().fault for _ in range(5000)]


def test_fault_counts_survive_concurrency(make_sandbox: MakeSandbox) -> None:
    config = {"seed": 3, "error_500_rate": 0.2, "error_503_rate": 0.1}
    sequential = Counter(run_patches(make_sandbox(**config), 400))
    sb = make_sandbox(**config)
    with authed(sb) as client, ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda i: patch(client, f"c{i}").status_code, range(400)))
    assert Counter(statuses) == sequential


def test_dropped_connection_is_a_transport_error(make_sandbox: MakeSandbox) -> None:
    sb = make_sandbox(drop_rate=1.0)
    with authed(sb) as client, pytest.raises(httpx.RemoteProtocolError):
        patch(client, "c1")
    assert sb.state.stats()["dropped"] == 1
    assert sb.state.registrations() == []


def test_injected_429_carries_retry_after(make_sandbox: MakeSandbox) -> None:
    sb = make_sandbox(rate_429_rate=1.0, retry_after_s=7)
    with authed(sb) as client:
        response = patch(client, "c1")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"


def test_rate_limit_window(make_sandbox: MakeSandbox) -> None:
    sb = make_sandbox(rate_limit=3, rate_window_s=30)
    with authed(sb) as client:
        responses = [patch(client, f"c{i}") for i in range(5)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429, 429]
    assert [r.headers["x-ratelimit-remaining"] for r in responses] == ["2", "1", "0", "0", "0"]
    assert {r.headers["x-ratelimit-limit"] for r in responses} == {"3"}
    assert 1 <= int(responses[3].headers["retry-after"]) <= 30
    assert 1 <= int(responses[3].headers["x-ratelimit-reset"]) <= 30


def test_latency_and_reconfigure(make_sandbox: MakeSandbox) -> None:
    sb = make_sandbox(latency_ms=80)
    with authed(sb) as client:
        started = time.perf_counter()
        assert patch(client, "c1").status_code == 200
        assert time.perf_counter() - started >= 0.08
        sb.reconfigure(latency_ms=0, error_503_rate=1.0)
        assert patch(client, "c2").status_code == 503


def test_config_rejects_impossible_shares() -> None:
    with pytest.raises(ValueError, match="add up"):
        SandboxConfig(error_500_rate=0.6, drop_rate=0.6)
    with pytest.raises(ValueError):
        SandboxConfig(error_503_rate=1.5)


# ---- control endpoint, lifecycle and CLI ------------------------------------------------------


def test_context_manager_stops_cleanly() -> None:
    with run_sandbox_in_thread(SandboxConfig(seed=1)) as sb, client_for(sb) as client:
        authorize(client)
        url = sb.base_url
    started = time.perf_counter()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/auth/authorize", timeout=2)
    assert time.perf_counter() - started < 1


def test_control_endpoints(sandbox: SandboxServer) -> None:
    with authed(sandbox) as client:
        patch(client, "c/1")
        patch(client, "c2", {"device_token": ""})
    root = sandbox.root_url
    assert httpx.get(root + "/_sandbox/registrations").json()[0]["customer_id"] == "c/1"
    stats = httpx.get(root + "/_sandbox/stats").json()
    assert stats["by_status"] == {"200": 2, "400": 1}  # authorize + PATCH, bad PATCH
    assert [e["status"] for e in httpx.get(root + "/_sandbox/log").json()] == [200, 200, 400]
    assert httpx.post(root + "/_sandbox/reset").status_code == 200
    assert httpx.get(root + "/_sandbox/registrations").json() == []
    assert httpx.get(root + "/_sandbox/stats").json()["total"] == 0


def test_cli_prints_its_url_and_serves(tmp_path: Path) -> None:
    log_file = tmp_path / "requests.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "pipeline.sandbox",
        "--port",
        "0",
        "--seed",
        "1",
        "--request-log",
        str(log_file),
    ]
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        prefix = "Masivo sandbox listening on "
        assert line.startswith(prefix), line
        base_url = line[len(prefix) :]
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/api/storefront/v1")
        with httpx.Client(base_url=base_url, timeout=5) as client:
            token = authorize(client)
            response = client.patch(
                "/customers/cli%2F1/devices",
                json=BODY,
                headers={"authorization": f"Bearer {token}"},
            )
            assert response.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0
    entries = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [(e["route"], e["status"]) for e in entries] == [
        ("authorize", 200),
        ("patch_devices", 200),
    ]
    assert entries[1]["customer_id"] == "cli/1"
    assert token not in log_file.read_text()  # the access token never reaches a log
