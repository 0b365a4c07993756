"""MasivoClient: auth exchange/renewal, classification, URL encoding, secrecy (MockTransport)."""

from __future__ import annotations

import time

import anyio
import httpx
import pytest
from _masivo_fakes import FAKE_API_KEY, FakeMasivo, make_jwt

from pipeline.client import (
    OK,
    RATE_LIMITED,
    REJECT,
    RETRY,
    STOP,
    ClientOptions,
    Credentials,
    MasivoClient,
    customer_path,
    jwt_exp,
)
from pipeline.client.auth import TokenManager
from pipeline.errors import ConfigError
from pipeline.outcomes import REASONS

pytestmark = pytest.mark.anyio
BASE = "https://masivo.test/api/storefront/v1"
BODY = b'{"device_token":"t","device_info":{"platform":"android"}}'


def client_for(fake: FakeMasivo, creds: Credentials | None = None, **opts) -> MasivoClient:
    options = ClientOptions(base_url=BASE, **opts)
    return MasivoClient(
        options, creds or Credentials(api_key=FAKE_API_KEY), transport=fake.transport()
    )


def test_credentials_from_env_and_repr() -> None:
    creds = Credentials.from_env({"MASIVO_API_KEY": FAKE_API_KEY})
    assert creds.api_key == FAKE_API_KEY and creds.renewable
    for text in (repr(creds), str(creds)):
        assert FAKE_API_KEY not in text and "<set>" in text
    token = make_jwt(time.time() + 60)
    pre = Credentials.from_env({"MASIVO_ACCESS_TOKEN": token})
    assert not pre.renewable and token not in repr(pre)
    with pytest.raises(ConfigError) as info:
        Credentials.from_env({"MASIVO_API_KEY": "  "})
    assert "MASIVO_API_KEY" in str(info.value)


def test_jwt_exp() -> None:
    assert jwt_exp(make_jwt(1234567890)) == 1234567890
    assert jwt_exp(make_jwt(None)) is None
    assert jwt_exp("not-a-jwt") is None
    assert jwt_exp("a.!!!.c") is None


async def test_auth_exchange_once_and_reused() -> None:
    fake = FakeMasivo()
    async with client_for(fake) as client:
        for i in range(5):
            result = await client.register_device(f"c{i}", BODY)
            assert result.kind == OK and result.reason == "registered"
    assert fake.auth_calls == 1
    assert all("x-api-key" not in r.headers for r in fake.calls)
    assert fake.calls[0].method == "PATCH"
    assert fake.calls[0].url.path == "/api/storefront/v1/customers/c0/devices"
    assert fake.calls[0].headers["content-type"] == "application/json"
    assert fake.calls[0].content == BODY


async def test_renews_before_exp_with_short_lifetime() -> None:
    fake = FakeMasivo(token_ttl=0.5)  # renew at 80% of the lifetime: ~0.4 s
    async with client_for(fake) as client:
        assert (await client.register_device("a", BODY)).kind == OK
        await anyio.sleep(0.45)
        assert (await client.register_device("b", BODY)).kind == OK
    assert fake.auth_calls == 2
    assert fake.calls[1].headers["authorization"] == f"Bearer {fake.issued[1]}"
    assert all(r.headers["authorization"] != "Bearer " for r in fake.calls)


def test_renewal_margin_is_minutes_for_hour_tokens() -> None:
    now = [1000.0]
    manager = TokenManager(
        Credentials(api_key=FAKE_API_KEY, access_token=make_jwt(time.time() + 3600)),
        exchange=None,  # type: ignore[arg-type]
        monotonic=lambda: now[0],
    )
    assert manager.current() is not None
    now[0] += 3600 - 301
    assert manager.current() is not None
    now[0] += 2
    assert manager.current() is None  # 5 minutes before exp


async def test_401_renews_once_and_retries() -> None:
    fake = FakeMasivo()
    async with client_for(fake) as client:
        assert (await client.register_device("a", BODY)).kind == OK
        fake.valid.clear()  # server revokes the token early
        result = await client.register_device("b", BODY)
    assert result.kind == OK
    assert fake.auth_calls == 2 and client.unauthorized_renewals == 1
    assert [r.url.path.split("/")[-2] for r in fake.calls] == ["a", "b", "b"]


async def test_401_after_renewal_stops() -> None:
    fake = FakeMasivo(devices=lambda r: httpx.Response(401, json={"message": "no"}))
    async with client_for(fake) as client:
        result = await client.register_device("a", BODY)
    assert result.kind == STOP and result.reason == "unauthorized"
    assert fake.auth_calls == 2


async def test_preissued_token_401_stops_without_renewal() -> None:
    fake = FakeMasivo()
    token = make_jwt(time.time() + 3600, "pre")
    async with client_for(fake, Credentials(access_token=token)) as client:
        result = await client.register_device("a", BODY)
    assert result.kind == STOP and result.reason == "unauthorized"
    assert fake.auth_calls == 0
    assert token not in (result.error or "")
    fake.valid.add(token)
    async with client_for(fake, Credentials(access_token=token)) as client:
        assert (await client.register_device("a", BODY)).kind == OK


async def test_auth_failure_is_a_stop_without_secrets() -> None:
    fake = FakeMasivo(api_key="the-right-key-1234")
    async with client_for(fake) as client:
        assert (await client.ensure_token()).reason == "auth_failed"  # type: ignore[union-attr]
        result = await client.register_device("a", BODY)
    assert result.kind == STOP and result.reason == "auth_failed"
    assert FAKE_API_KEY not in (result.error or "") and "401" in (result.error or "")
    assert fake.calls == []


@pytest.mark.parametrize(
    ("status", "body", "kind", "reason"),
    [
        (200, {"message": "FCM token registered successfully"}, OK, "registered"),
        (201, {"data": {"customer": {}}}, OK, "registered"),
        (204, None, OK, "registered"),
        (400, {"details": "device_token is invalid"}, REJECT, "bad_request"),
        (
            400,
            {"message": "Marketing automation is not enabled"},
            STOP,
            "marketing_automation_disabled",
        ),
        (
            400,
            {"error": "marketing_automation disabled for account"},
            STOP,
            "marketing_automation_disabled",
        ),
        (403, {"message": "forbidden"}, REJECT, "client_error"),
        (404, {"message": "Customer not found"}, REJECT, "customer_not_found"),
        (408, None, RETRY, "timeout"),
        (409, None, REJECT, "conflict"),
        (422, None, REJECT, "unprocessable"),
        (429, None, RATE_LIMITED, "rate_limited"),
        (500, None, RETRY, "server_error"),
        (502, "<html>bad gateway</html>", RETRY, "server_error"),
        (503, None, RETRY, "server_error"),
    ],
)
async def test_status_classification(status, body, kind, reason) -> None:
    def devices(request: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body) if body is not None else httpx.Response(status)

    async with client_for(FakeMasivo(devices)) as client:
        result = await client.register_device("a", BODY)
    assert (result.kind, result.reason, result.http_status) == (kind, reason, status)
    assert reason in REASONS
    if status == 400 and kind == REJECT:
        assert result.error == "HTTP 400: device_token is invalid"


async def test_retry_after_and_ratelimit_headers_parsed() -> None:
    def devices(request):
        headers = {"Retry-After": "7", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "12"}
        return httpx.Response(429, headers=headers)

    async with client_for(FakeMasivo(devices)) as client:
        result = await client.register_device("a", BODY)
    assert result.retry_after == 7 and result.ratelimit_remaining == 0
    assert result.ratelimit_reset == 12


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (httpx.ConnectTimeout("slow"), "timeout"),
        (httpx.ReadTimeout("slow"), "timeout"),
        (httpx.ConnectError("refused"), "connection_error"),
        (httpx.RemoteProtocolError("dropped"), "connection_error"),
        (httpx.ReadError("reset"), "connection_error"),
    ],
)
async def test_transport_errors_are_retryable(exc, reason) -> None:
    def devices(request):
        raise exc

    async with client_for(FakeMasivo(devices)) as client:
        result = await client.register_device("a", BODY)
    assert (result.kind, result.reason, result.http_status) == (RETRY, reason, None)


WEIRD_IDS = [
    "a/b",
    "a?b=1",
    "a#frag",
    "100%",
    "two words",
    "..",
    ".",
    "a/../b",
    "back\\slash",
    "josé-ñ-日本",
    "%2F",
    "a;b",
    "+plus",
]


@pytest.mark.parametrize("customer_id", WEIRD_IDS)
async def test_customer_id_is_exactly_one_path_segment(customer_id: str) -> None:
    fake = FakeMasivo()
    async with client_for(fake) as client:
        assert (await client.register_device(customer_id, BODY)).kind == OK
    url = fake.calls[0].url
    raw_path = url.raw_path.decode("ascii")
    assert url.query == b"" and url.fragment == ""
    prefix, segment, suffix = raw_path.rsplit("/", 2)[0], *raw_path.rsplit("/", 2)[1:]
    assert prefix == "/api/storefront/v1/customers" and suffix == "devices"
    from urllib.parse import unquote

    assert unquote(segment) == customer_id
    assert customer_path(customer_id) == segment


def test_fast_url_matches_httpx_parser() -> None:
    client = MasivoClient(ClientOptions(base_url=BASE), Credentials(api_key=FAKE_API_KEY))
    assert client._fast_url
    for cid in WEIRD_IDS:
        assert str(client._device_url_fast(cid)) == str(client._device_url_slow(cid))


async def test_secrets_never_in_results_or_excerpts() -> None:
    def devices(request):
        echoed = request.headers["authorization"]
        return httpx.Response(400, json={"details": f"bad token {echoed} key {FAKE_API_KEY}"})

    fake = FakeMasivo(devices)
    async with client_for(fake) as client:
        result = await client.register_device("a", BODY)
        assert FAKE_API_KEY not in repr(client)
    token = fake.issued[0]
    for text in (result.error or "", repr(result), str(result)):
        assert FAKE_API_KEY not in text and token not in text
        assert token.split(".")[1] not in text
    assert "[REDACTED]" in (result.error or "")


async def test_error_excerpt_is_bounded() -> None:
    def devices(request):
        return httpx.Response(400, json={"details": "x" * 10_000})

    async with client_for(FakeMasivo(devices), excerpt_chars=80) as client:
        result = await client.register_device("a", BODY)
    assert result.error is not None and len(result.error) <= 80 + len("HTTP 400: ")


# -- base URL safety (issue: transport safety) ----------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://masivo.example.com/api", "plain HTTP"),
        ("https://user:pw@app.masivo.ai/api", "user info"),
        ("ftp://app.masivo.ai/api", "https:// URL"),
        ("https://app.masivo.ai/api?x=1", "query or fragment"),
        ("https://app.masivo.ai:99999/api", "not a valid URL"),
    ],
)
def test_unsafe_base_urls_are_refused(url: str, message: str) -> None:
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match=message) as info:
        ClientOptions(base_url=url)
    assert "pw" not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://app.masivo.ai/api/storefront/v1",
        "http://127.0.0.1:8080/api",
        "http://localhost/api",
        "http://[::1]:9/api",
    ],
)
def test_https_and_loopback_http_are_accepted(url: str) -> None:
    assert ClientOptions(base_url=url).base_url == url


def test_plain_http_elsewhere_needs_an_explicit_opt_in() -> None:
    assert ClientOptions(base_url="http://10.0.0.5/api", allow_insecure_http=True)


def test_turning_tls_verification_off_warns() -> None:
    with pytest.warns(UserWarning, match="verification is OFF"):
        ClientOptions(base_url="https://app.masivo.ai/api", verify=False)


@pytest.mark.parametrize("dispatch", ["transport", "client"])
async def test_redirects_are_not_followed_so_the_token_never_leaves(dispatch: str) -> None:
    fake = FakeMasivo(
        lambda request: httpx.Response(307, headers={"Location": "https://evil.example/steal"})
    )
    async with client_for(fake, dispatch=dispatch) as client:
        result = await client.register_device("c1", BODY)
    assert result.kind != OK
    assert all(call.url.host == "masivo.test" for call in fake.calls)
    assert sum(1 for call in fake.calls if call.method == "PATCH") == 1
