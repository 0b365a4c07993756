"""Shared fakes for the client/send tests: JWTs, a scripted MockTransport, plan frames."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable

import httpx
import polars as pl

FAKE_API_KEY = "FAKEKEY-0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"  # recognisable in any leak


def make_jwt(exp: float | None, marker: str = "tok") -> str:
    def b64(obj: dict) -> str:
        raw = json.dumps(obj, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    claims: dict = {"sub": marker}
    if exp is not None:
        claims["exp"] = exp
    return f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(claims)}.c2lnbmF0dXJl{marker}"


def plan_frame(n: int, *, prefix: str = "c") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "row_id": list(range(n)),
            "customer_id": [f"{prefix}{i}" for i in range(n)],
            "device_token": [f"fcm{i}:APA91b" + "x" * 20 for i in range(n)],
            "platform": ["android"] * n,
            "model": ["SM-S918B" if i % 2 else None for i in range(n)],
            "os_version": ["34"] * n,
        }
    )


class FakeMasivo:
    """A scripted Masivo: `devices(request) -> httpx.Response` decides each PATCH."""

    def __init__(
        self,
        devices: Callable[[httpx.Request], httpx.Response] | None = None,
        *,
        token_ttl: float = 3600.0,
        api_key: str = FAKE_API_KEY,
    ) -> None:
        self.devices = devices or (lambda request: httpx.Response(200, json={"message": "ok"}))
        self.token_ttl = token_ttl
        self.api_key = api_key
        self.issued: list[str] = []
        self.auth_calls = 0
        self.calls: list[httpx.Request] = []
        self.valid: set[str] = set()
        self.auth_status = 200

    def issue(self) -> str:
        token = make_jwt(time.time() + self.token_ttl, marker=f"n{len(self.issued)}")
        self.issued.append(token)
        self.valid.add(token)
        return token

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/auth/authorize"):
            self.auth_calls += 1
            if self.auth_status != 200:
                return httpx.Response(self.auth_status, json={"message": "nope"})
            if request.headers.get("x-api-key") != self.api_key:
                return httpx.Response(401, json={"message": "bad key"})
            return httpx.Response(200, json={"data": self.issue()})
        self.calls.append(request)
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.valid:
            return httpx.Response(401, json={"message": "Unauthorized"})
        return self.devices(request)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)
