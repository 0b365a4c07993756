"""Which base URLs the client may talk to.

The API key can write to every customer of an account, so the URL it is sent to is checked before
anything is sent: HTTPS only (plain HTTP only to this machine, e.g. the sandbox, or when the
caller explicitly allows it), no user info (credentials in a URL end up in logs), no query or
fragment (they would be silently dropped or misapplied when paths are appended).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from pipeline.errors import ConfigError

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(url: str, *, allow_insecure_http: bool = False) -> str:
    """Return the URL if it is safe to send credentials to; raise ConfigError otherwise."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise ConfigError(
            f"the base URL is not a valid URL: {exc}", hint="check --base-url"
        ) from None
    shown = f"{parts.scheme}://{parts.hostname or ''}{parts.path}"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(
            f"the base URL {shown!r} must be an https:// URL with a host",
            hint="e.g. https://app.masivo.ai/api/storefront/v1",
        )
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            "the base URL contains user info (user:password@); credentials never go in a URL",
            hint="remove it; set MASIVO_API_KEY in the environment instead",
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"the base URL {shown!r} must not have a query or fragment")
    if parts.scheme == "http" and not (is_loopback(parts.hostname) or allow_insecure_http):
        raise ConfigError(
            f"refusing to send credentials over plain HTTP to {parts.hostname}",
            hint="use https://, or pass --allow-insecure-http if this really is a trusted network",
        )
    return url
