"""The fake Masivo as a bare ASGI callable.

No framework on purpose: routing is a few byte comparisons on ``raw_path`` so the sandbox stays
far faster than the client it is used to test, and so a percent-encoded ``/`` inside a customer id
is never mistaken for a path separator.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import math
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

import fastjsonschema

from pipeline.sandbox.config import API_PREFIX, MARKETING_OFF_MESSAGE, SandboxConfig
from pipeline.sandbox.faults import Fault, FaultPlan, RateWindow
from pipeline.sandbox.state import LogEntry, SandboxState

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "device-patch.schema.json"

_PREFIX = API_PREFIX.encode()
_CUSTOMERS = _PREFIX + b"/customers/"
_AUTHORIZE = _PREFIX + b"/auth/authorize"
_DEVICES_SUFFIX = b"/devices"
_CONTROL = b"/_sandbox/"

_JSON = (b"content-type", b"application/json")


def _body(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


# Constant bodies encoded once: most responses are one of these.
_OK = _body({"message": "FCM token registered successfully"})
_NOT_FOUND_CUSTOMER = _body({"message": "Customer not found"})
_NOT_FOUND = _body({"message": "Not found"})
_NOT_ALLOWED = _body({"message": "Method not allowed"})
_E500 = _body({"message": "Internal server error"})
_E503 = _body({"message": "Service unavailable"})
_E429 = _body({"message": "Too many requests"})
_TOO_LARGE = _body({"message": "Request body too large"})
_FAULT_ANSWERS = {
    Fault.ERROR_500: (500, _E500),
    Fault.ERROR_503: (503, _E503),
    Fault.RATE_429: (429, _E429),
}
_NO_TOKEN = _body({"message": "Unauthorized", "details": "missing bearer token"})
_BAD_TOKEN = _body({"message": "Unauthorized", "details": "invalid or expired access token"})
_BAD_KEY = _body({"message": "Invalid API key"})
_MARKETING_OFF = _body(
    {
        "message": MARKETING_OFF_MESSAGE,
        "details": "Enable marketing automation in Settings to register devices",
    }
)


def load_validator(path: Path = SCHEMA_PATH) -> Callable[[Any], Any]:
    """Compile the PATCH body schema once; fastjsonschema turns it into plain Python code."""
    with path.open(encoding="utf-8") as fh:
        return fastjsonschema.compile(json.load(fh))


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


def _segment(raw: bytes) -> str | None:
    """Decode one path segment exactly once; None for what can never be an id.

    A literal `.`/`..` segment would be resolved away by any real proxy, so it is not an id here
    either: a client that forgets to encode dots gets a 404 like it would in production.
    """
    if not raw or b"/" in raw or raw in (b".", b".."):
        return None
    return (unquote_to_bytes(raw) if b"%" in raw else raw).decode("utf-8")


class SandboxApp:
    """ASGI app. ``state`` holds everything observable; ``config`` can be swapped while serving."""

    def __init__(
        self, config: SandboxConfig | None = None, state: SandboxState | None = None
    ) -> None:
        config = config or SandboxConfig()
        self.config = config
        self.state = state or SandboxState(
            keep_request_log=config.keep_request_log, request_log=config.request_log
        )
        self.faults = FaultPlan(config)
        self.window = RateWindow(config, time.monotonic())
        self._validate = load_validator()
        self._secret = secrets.token_bytes(32)
        self._jwt_header = _b64url(_body({"alg": "HS256", "typ": "JWT"}))

    # ---- control from Python ------------------------------------------------------------

    def reconfigure(self, config: SandboxConfig) -> None:
        """Swap behaviour; the fault RNG sequence continues unless the seed changed."""
        if config.seed != self.config.seed:
            self.faults = FaultPlan(config)
        else:
            self.faults.configure(config)
        self.window.configure(config)
        self.state.keep_request_log = config.keep_request_log
        self.config = config

    def reset(self) -> None:
        """Forget recordings and counters, restart the fault sequence and the rate window."""
        self.state.reset()
        self.faults.reset()
        self.window.reset(time.monotonic())

    def issue_token(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        exp = math.ceil(now + self.config.token_ttl_s)
        payload = {
            "iss": "masivo-sandbox",
            "sub": "sandbox-account",
            "iat": int(now),
            "exp": exp,
            "jti": secrets.token_hex(8),
        }
        signing_input = self._jwt_header + b"." + _b64url(_body(payload))
        signature = hmac.new(self._secret, signing_input, hashlib.sha256).digest()
        token = (signing_input + b"." + _b64url(signature)).decode("ascii")
        self.state.add_token(token, float(exp))
        return token

    # ---- ASGI ---------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        raw: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
        method: str = scope["method"]
        if raw.startswith(_CUSTOMERS):
            tail = raw[len(_CUSTOMERS) :]
            if tail.endswith(_DEVICES_SUFFIX):
                seg, route = tail[: -len(_DEVICES_SUFFIX)], "patch_devices"
            else:
                seg, route = tail, "get_customer"
            try:
                customer_id = _segment(seg)
            except UnicodeDecodeError:
                body = _body({"message": "Invalid customer id", "details": "not UTF-8"})
                await self._api_reply(send, method, route, None, 400, body)
                return
            if customer_id is None:
                await self._api_reply(send, method, "not_found", None, 404, _NOT_FOUND)
            elif route == "patch_devices":
                if method == "PATCH":
                    await self._patch_devices(scope, receive, send, customer_id)
                else:
                    await self._api_reply(send, method, route, customer_id, 405, _NOT_ALLOWED)
            elif method == "GET":
                await self._get_customer(scope, send, customer_id)
            else:
                await self._api_reply(send, method, route, customer_id, 405, _NOT_ALLOWED)
        elif raw == _AUTHORIZE:
            if method == "GET":
                await self._authorize(scope, send)
            else:
                await self._api_reply(send, method, "authorize", None, 405, _NOT_ALLOWED)
        elif raw.startswith(_CONTROL):
            await self._control(method, raw[len(_CONTROL) :].decode("ascii", "replace"), send)
        else:
            await self._api_reply(send, method, "not_found", None, 404, _NOT_FOUND)

    async def _reply(
        self,
        send: Send,
        status: int,
        body: bytes,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        headers = [
            _JSON,
            (b"content-length", str(len(body)).encode()),
            *self.window.headers(time.monotonic()),
        ]
        if extra:
            headers.extend(extra)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _api_reply(
        self,
        send: Send,
        method: str,
        route: str,
        customer_id: str | None,
        status: int,
        body: bytes,
        *,
        device_token: str | None = None,
        fault: str | None = None,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self.state.record(
            LogEntry(time.time(), method, route, customer_id, status, device_token, fault)
        )
        await self._reply(send, status, body, extra)

    def _bearer_ok(self, scope: Scope) -> bytes | None:
        """None when the request carries a live token this server issued, else the 401 body."""
        value = _header(scope, b"authorization")
        if value is None or len(value) < 8 or value[:7].lower() != b"bearer ":
            return _NO_TOKEN
        token = value[7:].strip().decode("latin-1")
        if not self.state.token_valid(token, time.time()):
            return _BAD_TOKEN
        return None

    async def _authorize(self, scope: Scope, send: Send) -> None:
        config = self.config
        if config.fail_auth:
            body = _body({"message": "Authorization failed", "details": "sandbox fail_auth is on"})
            await self._api_reply(
                send, "GET", "authorize", None, config.fail_auth_status, body, fault="auth"
            )
            return
        key = _header(scope, b"x-api-key")
        if key is None or not hmac.compare_digest(key, config.api_key.encode()):
            await self._api_reply(send, "GET", "authorize", None, 401, _BAD_KEY)
            return
        await self._api_reply(
            send, "GET", "authorize", None, 200, _body({"data": self.issue_token()})
        )

    async def _get_customer(self, scope: Scope, send: Send, customer_id: str) -> None:
        route = "get_customer"
        denied = self._bearer_ok(scope)
        if denied is not None:
            await self._api_reply(send, "GET", route, customer_id, 401, denied)
        elif self.config.is_unknown(customer_id):
            await self._api_reply(send, "GET", route, customer_id, 404, _NOT_FOUND_CUSTOMER)
        else:
            devices = [
                {"device_token": tok, "device_info": info}
                for tok, info in self.state.devices_of(customer_id).items()
            ]
            body = _body({"data": {"customer": {"id": customer_id, "devices": devices}}})
            await self._api_reply(send, "GET", route, customer_id, 200, body)

    async def _patch_devices(
        self, scope: Scope, receive: Receive, send: Send, customer_id: str
    ) -> None:
        # Draw before the first await: the N-th PATCH to arrive gets the N-th draw.
        decision = self.faults.next()
        over_limit = self.window.hit(time.monotonic())
        if decision.delay_s > 0:
            await asyncio.sleep(decision.delay_s)
        config = self.config
        if decision.fault is Fault.DROP:
            self.state.record(
                LogEntry(time.time(), "PATCH", "patch_devices", customer_id, 0, None, "drop")
            )
            # Read the body first: closing with unread bytes in the socket makes the kernel send
            # RST (client sees ReadError) instead of FIN (RemoteProtocolError); FIN is the common
            # case of a proxy giving up, and one deterministic symptom keeps tests simple.
            await _read_body(receive, config.max_body_bytes)
            await _drop_connection(receive, send)
            return
        token: str | None = None
        extra: list[tuple[bytes, bytes]] | None = None
        fault = None if decision.fault is Fault.NONE else decision.fault.value
        if fault is not None:
            status, body = _FAULT_ANSWERS[decision.fault]
            if decision.fault is Fault.RATE_429:
                extra = [(b"retry-after", str(config.retry_after_s).encode())]
        elif over_limit:
            status, body, fault = 429, _E429, "rate_limit"
            extra = [(b"retry-after", str(self.window.seconds_to_reset(time.monotonic())).encode())]
        else:
            denied = self._bearer_ok(scope)
            if denied is not None:
                status, body = 401, denied
            elif config.marketing_automation_off:
                status, body = 400, _MARKETING_OFF
            else:
                raw = await _read_body(receive, config.max_body_bytes)
                status, body, token = self._accept(customer_id, raw)
        self.state.record(
            LogEntry(time.time(), "PATCH", "patch_devices", customer_id, status, token, fault)
        )
        await self._reply(send, status, body, extra)

    def _accept(self, customer_id: str, raw: bytes | None) -> tuple[int, bytes, str | None]:
        """Validate an authorised body and record it: (status, body, device token if readable)."""
        if raw is None:
            return 413, _TOO_LARGE, None
        try:
            payload = json.loads(raw)
        except ValueError as exc:
            details = f"body is not valid JSON: {exc}"
            return 400, _body({"message": "Invalid request body", "details": details}), None
        token = payload.get("device_token") if isinstance(payload, dict) else None
        token = token if isinstance(token, str) else None
        try:
            self._validate(payload)
        except fastjsonschema.JsonSchemaValueException as exc:
            return 400, _body({"message": "Invalid request body", "details": exc.message}), token
        if self.config.is_unknown(customer_id):
            return 404, _NOT_FOUND_CUSTOMER, token
        assert token is not None  # the schema requires it
        self.state.register(customer_id, token, payload["device_info"], time.time())
        return 200, _OK, token

    async def _control(self, method: str, name: str, send: Send) -> None:
        """Test hooks outside the API prefix: read recordings, reset, revoke tokens."""
        state = self.state
        if method == "GET" and name == "registrations":
            body = _body([asdict(r) for r in state.registrations()])
        elif method == "GET" and name == "log":
            body = _body([asdict(e) for e in state.request_log])
        elif method == "GET" and name == "stats":
            body = _body(state.stats())
        elif method == "GET" and name == "config":
            body = _body(self.config.to_json())
        elif method == "POST" and name == "reset":
            self.reset()
            body = _body({"message": "reset"})
        elif method == "POST" and name == "revoke-tokens":
            body = _body({"message": "revoked", "count": state.revoke_tokens()})
        else:
            await self._reply(send, 404, _NOT_FOUND)
            return
        await self._reply(send, 200, body)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None when it is larger than `limit`."""
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body if len(body) <= limit else None
    chunks = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _drop_connection(receive: Receive, send: Send) -> None:
    """Close the socket without a byte of response, so the client sees a transport error.

    ASGI has no "abort" message and uvicorn answers 500 for an app that returns silently, so we
    reach the transport behind uvicorn's bound `send` and close it, then wait for uvicorn to
    notice the disconnect (otherwise it would try to write its own 500 onto the closing socket).
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is not None and hasattr(transport, "close"):
        transport.close()
        try:
            async with asyncio.timeout(2.0):
                while (await receive())["type"] != "http.disconnect":
                    pass
        except TimeoutError:
            pass
        return
    # Not on uvicorn's protocol: promise a body and never send it; the server then closes the
    # connection mid-response, which the client also sees as a protocol error.
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1")]}
    )
