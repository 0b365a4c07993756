"""An httpx transport over aiohttp, and the choice of transport.

Why our own instead of httpx's default (httpcore) pool or the `httpx-aiohttp` package:

- httpcore's async pool costs ~1.9 ms of client CPU per request at 16+ in flight (its
  request-to-connection assignment is O(connections x queued) per request) and, with default
  Limits, opens a connection per request. See /work/shared/reference/performance-notes.md.
- `httpx-aiohttp` wraps every response body in an async stream (one more task switch and
  several awaits per row) and maps aiohttp's ClientConnectionError (e.g. a server that drops a
  keep-alive connection) to ConnectTimeout, which would report a dropped connection as a
  timeout. Reading the small JSON body in the transport and mapping errors precisely is both
  faster and more honest.

The sender keeps httpx's types (httpx.Request in, httpx.Response out, httpx exceptions), so the
classification code and the tests (httpx.MockTransport) do not know which transport runs.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import httpx

try:  # aiohttp is a declared dependency; the guard only keeps `import pipeline` cheap to debug
    import aiohttp
    import yarl
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

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._get_session()
        timeout = self._client_timeout(request.extensions.get("timeout", {}))
        # encoded=True: the URL is already percent-encoded by httpx; yarl must not requote it
        # (a customer id's %2F must stay one path segment).
        url = yarl.URL(str(request.url), encoded=True)
        content = request.content or None
        try:
            async with session.request(
                request.method,
                url,
                headers=request.headers.multi_items(),
                data=content,
                allow_redirects=False,
                timeout=timeout,
            ) as resp:
                body = await resp.read()
                status = resp.status
                headers = resp.raw_headers
                reason = resp.reason
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(_describe(exc), request=request) from exc
        except (aiohttp.SocketTimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise httpx.ReadTimeout(_describe(exc), request=request) from exc
        except TimeoutError as exc:
            raise httpx.ReadTimeout(_describe(exc), request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(_describe(exc), request=request) from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
            raise httpx.RemoteProtocolError(_describe(exc), request=request) from exc
        except aiohttp.ClientResponseError as exc:
            raise httpx.RemoteProtocolError(_describe(exc), request=request) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise httpx.ReadError(_describe(exc), request=request) from exc
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if reason:
            extensions["reason_phrase"] = reason.encode("ascii", "replace")
        return httpx.Response(
            status, headers=headers, content=body, request=request, extensions=extensions
        )

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
            # Lets the connector's transports finish closing before the loop goes away.
            await asyncio.sleep(0)


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
