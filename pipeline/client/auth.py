"""Credentials and the access-token life cycle (exchange, renewal before exp, renewal on 401)."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import anyio

from pipeline.errors import ConfigError
from pipeline.secrets import register_secret

# The documented lifetime; used when a token carries no readable `exp`.
DEFAULT_LIFETIME_S = 3600.0
# Renew this long before exp (the docs' own example), or at RENEW_FRACTION of the lifetime when
# the lifetime is short (tests use tokens that live seconds).
RENEW_MARGIN_S = 300.0
RENEW_FRACTION = 0.2


@dataclass(frozen=True)
class Credentials:
    """The API key (exchanged for tokens) and/or a pre-issued access token.

    repr/str never show the values: they only say which one is set.
    """

    api_key: str | None = field(default=None, repr=False)
    access_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        register_secret(self.api_key)
        register_secret(self.access_token)

    def __repr__(self) -> str:
        return (
            f"Credentials(api_key={'<set>' if self.api_key else None}, "
            f"access_token={'<set>' if self.access_token else None})"
        )

    __str__ = __repr__

    @property
    def renewable(self) -> bool:
        return bool(self.api_key)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Credentials:
        api_key = (environ.get("MASIVO_API_KEY") or "").strip() or None
        token = (environ.get("MASIVO_ACCESS_TOKEN") or "").strip() or None
        if not api_key and not token:
            raise ConfigError(
                "No Masivo credentials: neither MASIVO_API_KEY nor MASIVO_ACCESS_TOKEN is set",
                hint="export MASIVO_API_KEY=<the API key from Settings → Advanced Settings>",
            )
        return cls(api_key=api_key, access_token=token)


def jwt_exp(token: str) -> float | None:
    """The `exp` claim (epoch seconds) of a JWT, without checking its signature; None if absent."""
    parts = token.split(".")
    if len(parts) < 2:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
        exp = claims.get("exp") if isinstance(claims, dict) else None
        return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None
    except (ValueError, UnicodeError):
        return None


class AuthFailed(Exception):
    """The token exchange failed. The message is safe to print (no secrets)."""


class TokenManager:
    """Holds the current access token and renews it (one renewal at a time for all workers)."""

    def __init__(
        self,
        credentials: Credentials,
        exchange: Callable[[], Awaitable[str]],
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._credentials = credentials
        self._exchange = exchange
        self._monotonic = monotonic
        self._wall = wall
        self._lock = anyio.Lock()
        self._token: str | None = credentials.access_token
        self._renew_at = float("inf")
        self.renewals = 0
        if self._token:
            self._schedule(self._token)

    @property
    def renewable(self) -> bool:
        return self._credentials.renewable

    def _schedule(self, token: str) -> None:
        if not self.renewable:
            return  # a pre-issued token is used until a 401 stops the run
        exp = jwt_exp(token)
        lifetime = exp - self._wall() if exp is not None else DEFAULT_LIFETIME_S
        margin = min(RENEW_MARGIN_S, max(lifetime, 0.0) * RENEW_FRACTION)
        self._renew_at = self._monotonic() + lifetime - margin

    def current(self) -> str | None:
        """The token to use now, or None when it must be (re)obtained first. Cheap: no await."""
        if self._token is not None and self._monotonic() < self._renew_at:
            return self._token
        return None

    async def get(self) -> str:
        token = self.current()
        if token is not None:
            return token
        return await self._renew(stale=self._token)

    async def renew_after_401(self, stale: str) -> str:
        """Renew because `stale` got a 401, unless another worker already replaced it."""
        if not self.renewable:
            raise AuthFailed("the pre-issued access token was refused (401)")
        return await self._renew(stale=stale, force=True)

    async def _renew(self, *, stale: str | None, force: bool = False) -> str:
        async with self._lock:
            # Another worker may have renewed while we waited for the lock.
            if self._token is not None and self._token != stale:
                return self._token
            if not force and self.current() is not None:
                return self._token  # type: ignore[return-value]
            if not self.renewable:
                if self._token is None:
                    raise AuthFailed("no access token and no API key to obtain one")
                return self._token
            token = await self._exchange()
            register_secret(token)
            self._token = token
            self._schedule(token)
            self.renewals += 1
            return token
