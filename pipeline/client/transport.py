"""An httpx transport over aiohttp, its raw fast path, and the choice of transport.

Why our own instead of httpx's default (httpcore) pool or the `httpx-aiohttp` package:

- httpcore's async pool costs ~1.9 ms of client CPU per request at 16+ in flight (its
  request-to-connection assignment is O(connections x queued) per request) and, with default
  Limits, opens a connection per request. See /work/shared/reference/performance-notes.md.
- `httpx-aiohttp` wraps every response body in an async stream (one more task switch and
  several awaits per row) and maps aiohttp's ClientConnectionError (e.g. a server that drops a
  keep-alive connection) to ConnectTimeout, which would report a dropped connection as a
  timeout. Reading the small JSON body in the transport and mapping errors precisely is both
  faster and more honest.

The public boundary stays httpx-typed: `handle_async_request` takes an httpx.Request and returns
an httpx.Response, errors are httpx exceptions, and MasivoClient works over any
httpx.AsyncBaseTransport (httpx.MockTransport in tests, httpcore with `--transport httpcore`).

The raw fast path (`send_raw`; issue #5 item 8). Per row, the httpx object layer around aiohttp
(httpx.Request + Headers construction, ~21 `Headers.encoding` calls, httpx.Response with its
ByteStream / iter_bytes, URL printing) was about a quarter of the client's CPU. MasivoClient uses
`send_raw(method, url_str, prepared_headers, body, timeout) -> (status, raw_headers, body)` when
its transport is an AiohttpTransport and dispatch is "transport"; anything else keeps the httpx
path. Both paths share `_exchange` (the same aiohttp call: no redirects, the same timeouts) and
`_httpx_error` (the same exception mapping; messages carry no headers, so no secrets), and the
client classifies both with the same `classify_parts`. tests/test_client_raw.py runs both paths
against one aiohttp server (2xx, gzip-ed 404, 429, 400, 503, redirect, dropped connection,
stall, refused connection) and checks equal CallResults and equal requests on the wire.

Measured (100k-row CSV, 86,851 rows sent, sandbox on core 0, client on core 1, `run_sync` end to
end; CPU = the client process's user + sys per row sent; medians of 3 runs interleaved on one
sandbox: the commit before this work, this code, and bench's bare aiohttp loop; 2026-12-04,
machine load ~1.5, i.e. little besides the runs themselves):

    client CPU ms/row                 before   after   bare aiohttp loop
    0 ms latency,  c=64               0.264    0.187   0.184
    50 ms latency, c=256              0.330    0.225   0.197
    send rate at 50 ms, c=256         2,870/s  3,772/s 4,106/s  (of 5,120 = c / latency)
                                      56%      74%     80%

Most of the cut is the httpx layer (~0.12 ms/row in single runs of each step); the rest is
per-row Python in the sender (progress throttled to 10/s, no coroutine per rate-limiter check,
outcome lookup cached). The
≥ 90% target is not reached: even the bare aiohttp loop gets 80% on this machine.

What is left, and why not more processes or clients: the client is pinned to one core, so more
processes or more aiohttp sessions on it only add overhead. After this change the client costs
about what a bare aiohttp loop costs; what remains is aiohttp's own per-request machinery
(ClientRequest/ClientResponse objects, a writer task, stream readers: ~0.11 ms/row). A prototype
of one HTTP/1.1 connection per worker on asyncio.Protocol + httptools (both already
dependencies) spent 0.042 ms/row of loop CPU at c=256 / 50 ms on the same sandbox (4,180/s
while another test run shared the sandbox's core); that, not httpx, is the next lever, at the price of owning keep-alive, chunked bodies, decompression and
TLS set-up instead of leaving them to aiohttp.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import httpx

try:  # aiohttp is a declared dependency; the guard only keeps `import pipeline` cheap to debug
    import aiohttp
    import yarl
    from multidict import CIMultiDict
except ImportError:  # pragma: no cover
    aiohttp = None  # type: ignore[assignment]
    yarl = None  # type: ignore[assignment]

TRANSPORTS = ("aiohttp", "httpcore")


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx.AsyncBaseTransport over one aiohttp ClientSession (created lazily in the loop)."""

    def __init__(
        self,
        *,
        max_connections: int = 64,
        keepalive_expiry: float = 30.0,
        verify: bool | ssl.SSLContext = True,
    ) -> None:
        if aiohttp is None:  # pragma: no cover
            raise RuntimeError("aiohttp is not installed")
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        if verify is True:
            self._ssl: Any = None  # aiohttp's default verifying context
        elif verify is False:
            self._ssl = False
        else:
            self._ssl = verify
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[Any, Any, Any], aiohttp.ClientTimeout] = {}

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=0,
                keepalive_timeout=self._keepalive_expiry,
                ssl=self._ssl,
                # Masivo is one host: cache its DNS answer for the whole run.
                ttl_dns_cache=300,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=True,
                # No cookie jar: the API is token-authenticated and a jar costs CPU per request.
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    def _client_timeout(self, timeout: dict[str, Any]) -> aiohttp.ClientTimeout:
        key = (timeout.get("connect"), timeout.get("read"), timeout.get("pool"))
        found = self._timeouts.get(key)
        if found is None:
            # sock_read bounds each read (like httpx's read timeout); total stays unbounded so a
            # slow-but-progressing response is not cut by an unrelated limit.
            found = aiohttp.ClientTimeout(
                total=None, sock_connect=key[0], sock_read=key[1], connect=key[2]
            )
            self._timeouts[key] = found
        return found

    def client_timeout(self, timeout: dict[str, Any]) -> aiohttp.ClientTimeout:
        """The aiohttp timeout for an httpx-style timeout dict (connect/read/pool); cached."""
        return self._client_timeout(timeout)

    @staticmethod
    def prepare_headers(pairs: list[tuple[str, str]]) -> Any:
        """Request headers in aiohttp's own form, for `send_raw`; build once, reuse per request."""
        return CIMultiDict(pairs)

    async def _exchange(
        self, method: str, url: Any, headers: Any, data: bytes | None, timeout: Any
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes, str | None]:
        """One request on the pool: (status, raw headers, decoded body, reason).

        Equivalent to `async with session.request(...) as resp: await resp.read()`, minus one
        context-manager layer: read() returns the connection to the pool once the body is in.
        """
        session = self._session or self._get_session()
        resp = await session.request(
            method, url, headers=headers, data=data, allow_redirects=False, timeout=timeout
        )
        try:
            body = await resp.read()
        finally:
            resp.release()
        return resp.status, resp.raw_headers, body, resp.reason

    async def send_raw(
        self, method: str, url: str, headers: Any, body: bytes | None, timeout: Any
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """The hot path: no httpx.Request/Response per call (see the module doc).

        `url` is an already percent-encoded absolute URL (str(httpx.URL)); `headers` come from
        `prepare_headers`, `timeout` from `client_timeout`. Returns (status, raw headers, body)
        with the body already read and decoded. Errors are the httpx exceptions that
        handle_async_request raises for the same failure.
        """
        try:
            status, raw_headers, content, _ = await self._exchange(
                method, yarl.URL(url, encoded=True), headers, body or None, timeout
            )
        except (aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
            raise _httpx_error(exc, httpx.Request(method, url)) from exc
        return status, raw_headers, content

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = self._client_timeout(request.extensions.get("timeout", {}))
        # encoded=True: the URL is already percent-encoded by httpx; yarl must not requote it
        # (a customer id's %2F must stay one path segment).
        url = yarl.URL(str(request.url), encoded=True)
        try:
            status, headers, body, reason = await self._exchange(
                request.method,
                url,
                request.headers.multi_items(),
                request.content or None,
                timeout,
            )
        except (aiohttp.ClientError, OSError) as exc:
            raise _httpx_error(exc, request) from exc
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if reason:
            extensions["reason_phrase"] = reason.encode("ascii", "replace")
        return httpx.Response(
            status,
            headers=_decoded_headers(headers),
            content=body,
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
            # Lets the connector's transports finish closing before the loop goes away.
            await asyncio.sleep(0)


def _httpx_error(exc: BaseException, request: httpx.Request) -> httpx.HTTPError:
    """The httpx exception for an aiohttp/OS error (both paths map errors the same way)."""
    text = _describe(exc)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(text, request=request)
    if isinstance(exc, (aiohttp.SocketTimeoutError, aiohttp.ServerTimeoutError, TimeoutError)):
        return httpx.ReadTimeout(text, request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(text, request=request)
    if isinstance(
        exc,
        (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientResponseError),
    ):
        return httpx.RemoteProtocolError(text, request=request)
    return httpx.ReadError(text, request=request)


# What aiohttp decodes itself (auto_decompress); anything else stays encoded.
_DECODED = frozenset({"gzip", "deflate", "br", "zstd"})


def _decoded_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Response headers for an httpx.Response built around an already decoded body.

    aiohttp decompressed the body; leaving Content-Encoding in place would make httpx decode it
    a second time (a DecodingError, i.e. a gzip-ed 404 reported as a connection error).
    """
    for key, value in raw:
        if (
            key.lower() == b"content-encoding"
            and value.strip().lower().decode("latin-1") in _DECODED
        ):
            return [
                (k, v) for k, v in raw if k.lower() not in (b"content-encoding", b"content-length")
            ]
    return raw


def _describe(exc: BaseException) -> str:
    # Exception text from aiohttp can carry the URL (host and path, never headers): keep only
    # the type and a short message; the secrets scrubber runs on it again when stored.
    text = str(exc)[:160]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def make_transport(
    kind: str, *, max_connections: int, keepalive_expiry: float = 30.0, verify: bool = True
) -> httpx.AsyncBaseTransport:
    """Build the named transport. `httpcore` is httpx's own pool (slower; a fallback)."""
    if kind == "aiohttp" and aiohttp is not None:
        return AiohttpTransport(
            max_connections=max_connections, keepalive_expiry=keepalive_expiry, verify=verify
        )
    if kind in ("aiohttp", "httpcore"):
        # Limits(max_keepalive_connections=max_connections): with the default keep-alive limit
        # httpcore opened a new connection for almost every request under load.
        return httpx.AsyncHTTPTransport(
            verify=verify,
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_connections,
                keepalive_expiry=keepalive_expiry,
            ),
        )
    raise ValueError(f"unknown transport {kind!r}; expected one of {', '.join(TRANSPORTS)}")
