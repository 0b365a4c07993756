"""The AiohttpTransport raw fast path (send_raw) against the httpx.Request/Response path.

Both paths run against a real aiohttp server on 127.0.0.1 that answers each customer id with a
different behaviour (success, gzip-ed 404, 429, a dropped connection, a stall, a redirect, an
echo of the Authorization header, ...). For every behaviour the two paths must give the same
CallResult (latency aside) and put the same request on the wire.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from pipeline.client import (
    OK,
    ClientOptions,
    Credentials,
    MasivoClient,
)
from pipeline.client.transport import AiohttpTransport, _decoded_headers, _httpx_error

pytestmark = pytest.mark.anyio
API_KEY = "raw-path-test-key-0123456789"
TOKEN = "tok.secret-bearer-value.sig"
BODY = b'{"device_token":"t","device_info":{"platform":"android"}}'


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiohttp's server needs asyncio


class _Server:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        self.base_url = ""

    async def authorize(self, request: web.Request) -> web.Response:
        if request.headers.get("x-api-key") != API_KEY:
            return web.json_response({"error": "bad key"}, status=401)
        return web.json_response({"data": TOKEN})

    async def devices(self, request: web.Request) -> web.StreamResponse:
        cid = request.match_info["cid"]
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.seen.append((request.method, request.raw_path, headers, body))
        if cid == "ok":
            return web.json_response(
                {"ok": True}, headers={"X-RateLimit-Remaining": "7", "X-RateLimit-Reset": "2"}
            )
        if cid == "gone-gzip":
            return web.Response(
                status=404,
                body=gzip.compress(b'{"error":"customer not found"}'),
                headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
            )
        if cid == "limit":
            return web.json_response(
                {"error": "slow down"},
                status=429,
                headers={"Retry-After": "3", "X-RateLimit-Remaining": "0"},
            )
        if cid == "mkt":
            return web.json_response({"error": "Marketing automation is disabled"}, status=400)
        if cid == "leak":
            echoed = request.headers.get("authorization", "")
            return web.json_response({"details": f"bad {echoed}"}, status=400)
        if cid == "boom":
            return web.Response(status=503, text="upstream down")
        if cid == "redirect":
            raise web.HTTPTemporaryRedirect("http://evil.invalid/steal")
        if cid == "drop":
            assert request.transport is not None
            request.transport.close()
            await asyncio.sleep(0.05)
            return web.Response()
        if cid == "slow":
            await asyncio.sleep(1.0)
            return web.json_response({"ok": True})
        return web.json_response({"ok": True})


@pytest.fixture
async def server() -> AsyncIterator[_Server]:
    srv = _Server()
    app = web.Application()
    app.router.add_get("/api/storefront/v1/auth/authorize", srv.authorize)
    app.router.add_route("PATCH", "/api/storefront/v1/customers/{cid}/devices", srv.devices)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    srv.base_url = f"http://127.0.0.1:{port}/api/storefront/v1"
    yield srv
    await runner.cleanup()


def _client(base_url: str, dispatch: str, **opts: object) -> MasivoClient:
    options = ClientOptions(base_url=base_url, dispatch=dispatch, read_timeout=0.3, **opts)  # type: ignore[arg-type]
    return MasivoClient(options, Credentials(api_key=API_KEY))


async def _both(base_url: str, cid: str) -> tuple[object, object]:
    results = []
    for dispatch in ("transport", "client"):
        async with _client(base_url, dispatch) as client:
            assert (client._raw is not None) == (dispatch == "transport")
            results.append(replace(await client.register_device(cid, BODY), latency_ms=0.0))
    return results[0], results[1]


CASES = ["ok", "gone-gzip", "limit", "mkt", "leak", "boom", "redirect", "drop", "slow"]


@pytest.mark.parametrize("cid", CASES)
async def test_raw_path_classifies_like_the_httpx_path(server: _Server, cid: str) -> None:
    raw, via_httpx = await _both(server.base_url, cid)
    assert raw == via_httpx
    assert TOKEN not in str(raw) and API_KEY not in str(raw)


async def test_expected_classifications(server: _Server) -> None:
    expect = {
        "ok": ("ok", "registered", 200),
        "gone-gzip": ("reject", "customer_not_found", 404),  # not a DecodingError
        "limit": ("rate_limited", "rate_limited", 429),
        "mkt": ("stop", "marketing_automation_disabled", 400),
        "boom": ("retry", "server_error", 503),
        "drop": ("retry", "connection_error", None),
        "slow": ("retry", "timeout", None),
    }
    async with _client(server.base_url, "transport") as client:
        for cid, want in expect.items():
            result = await client.register_device(cid, BODY)
            assert (result.kind, result.reason, result.http_status) == want, cid
        ok = await client.register_device("ok", BODY)
        assert (ok.ratelimit_remaining, ok.ratelimit_reset) == (7, 2.0)
        limited = await client.register_device("limit", BODY)
        assert limited.retry_after == 3.0
        gone = await client.register_device("gone-gzip", BODY)
        assert gone.error is not None and "customer not found" in gone.error


async def test_redirect_not_followed_on_the_raw_path(server: _Server) -> None:
    async with _client(server.base_url, "transport") as client:
        result = await client.register_device("redirect", BODY)
    assert result.kind != OK and result.http_status == 307
    assert len(server.seen) == 1  # nothing went to the Location


async def test_same_request_on_the_wire(server: _Server) -> None:
    for dispatch in ("transport", "client"):
        async with _client(server.base_url, dispatch) as client:
            await client.register_device("a/b c", BODY)
    (m1, p1, h1, b1), (m2, p2, h2, b2) = server.seen
    assert (
        (m1, p1, b1)
        == (m2, p2, b2)
        == ("PATCH", "/api/storefront/v1/customers/a%2Fb%20c/devices", BODY)
    )
    assert h1 == h2
    assert h1["authorization"] == f"Bearer {TOKEN}"
    assert h1["content-length"] == str(len(BODY))


async def test_connection_refused_maps_like_the_httpx_path() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}/api/storefront/v1"
    transport = AiohttpTransport()
    timeout = transport.client_timeout({"connect": 1.0, "read": 1.0, "pool": None})
    headers = transport.prepare_headers([("authorization", f"Bearer {TOKEN}")])
    url = f"{base}/customers/x/devices"
    try:
        with pytest.raises(httpx.ConnectError) as raw:
            await transport.send_raw("PATCH", url, headers, BODY, timeout)
        request = httpx.Request("PATCH", url, content=BODY, extensions={"timeout": {}})
        with pytest.raises(httpx.ConnectError) as via_httpx:
            await transport.handle_async_request(request)
    finally:
        await transport.aclose()
    assert str(raw.value) == str(via_httpx.value)
    assert TOKEN not in str(raw.value)
    assert raw.value.request.url == httpx.URL(url)


def test_error_mapping_table() -> None:
    import aiohttp

    request = httpx.Request("PATCH", "http://h/x")
    key = aiohttp.client_reqrep.ConnectionKey("h", 80, False, True, None, None, None)
    cases = [
        (aiohttp.ConnectionTimeoutError("c"), httpx.ConnectTimeout),
        (aiohttp.SocketTimeoutError("s"), httpx.ReadTimeout),
        (aiohttp.ServerTimeoutError("s"), httpx.ReadTimeout),
        (TimeoutError(), httpx.ReadTimeout),
        (aiohttp.ClientConnectorError(key, OSError(111, "refused")), httpx.ConnectError),
        (aiohttp.ServerDisconnectedError(), httpx.RemoteProtocolError),
        (aiohttp.ClientPayloadError("p"), httpx.RemoteProtocolError),
        (aiohttp.ClientOSError(104, "reset"), httpx.ReadError),
        (ConnectionResetError(104, "reset"), httpx.ReadError),
    ]
    for exc, expected in cases:
        assert type(_httpx_error(exc, request)) is expected, exc


def test_decoded_headers_drop_encoding_only_when_aiohttp_decoded() -> None:
    raw = [(b"Content-Encoding", b"gzip"), (b"Content-Length", b"20"), (b"X-A", b"1")]
    assert _decoded_headers(raw) == [(b"X-A", b"1")]
    kept = [(b"Content-Encoding", b"identity"), (b"Content-Length", b"20")]
    assert _decoded_headers(kept) is kept


@given(st.text(min_size=1, max_size=40))
def test_url_template_matches_httpx(customer_id: str) -> None:
    client = _client("https://masivo.test/api/storefront/v1", "transport")
    assert client._url_template is not None
    assert client.device_url_str(customer_id) == str(client.device_url(customer_id))


def test_other_transports_keep_the_httpx_path() -> None:
    mock = httpx.MockTransport(lambda request: httpx.Response(200))
    options = ClientOptions(base_url="https://masivo.test/api")
    assert MasivoClient(options, Credentials(api_key=API_KEY), transport=mock)._raw is None
    httpcore = ClientOptions(base_url="https://masivo.test/api", transport="httpcore")
    assert MasivoClient(httpcore, Credentials(api_key=API_KEY))._raw is None
    assert MasivoClient(options, Credentials(api_key=API_KEY))._raw is not None
