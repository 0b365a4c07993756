"""Turning one HTTP attempt (a response or a transport error) into a CallResult."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

from pipeline.secrets import excerpt, redact

# What the sender should do with an attempt's result.
OK = "ok"  # succeeded: record it
REJECT = "reject"  # permanent for this row: record it
RETRY = "retry"  # transient: back off and retry while attempts remain
RATE_LIMITED = "rate_limited"  # 429: everyone pauses; not an attempt
STOP = "stop"  # systemic: stop the run (reason says why)

# The documented 400 when the account lacks marketing automation. The exact wording is not
# published, so match loosely on the phrase.
_MARKETING = re.compile(rb"marketing[\s_-]*automation", re.IGNORECASE)

_REJECT_REASONS = {
    400: "bad_request",
    404: "customer_not_found",
    409: "conflict",
    422: "unprocessable",
}


@dataclass(frozen=True, slots=True)
class CallResult:
    """The classified result of one HTTP attempt. `error` is bounded and scrubbed of secrets."""

    kind: str
    reason: str  # a code of pipeline.outcomes.REASONS
    http_status: int | None = None
    error: str | None = None
    latency_ms: float = 0.0
    retry_after: float | None = None  # seconds, from a 429's Retry-After
    ratelimit_remaining: int | None = None
    ratelimit_reset: float | None = None  # seconds until the window resets

    @property
    def signature(self) -> tuple[str, str, int | None]:
        """What "failing the same way" compares."""
        return (self.kind, self.reason, self.http_status)


def _number(value: bytes | str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None  # an HTTP-date Retry-After: the caller falls back to its default wait
    return number if number >= 0 and number == number else None


_WANTED = (b"retry-after", b"x-ratelimit-remaining", b"x-ratelimit-reset")


def _scan_headers(
    raw: Iterable[tuple[bytes, bytes]],
) -> tuple[float | None, float | None, float | None]:
    """(retry_after, remaining, reset) in one pass over the raw headers.

    httpx.Headers lookups decode and scan every header per lookup; three lookups per response
    were a measurable share of the per-row CPU.
    """
    found: dict[bytes, bytes] = {}
    for key, value in raw:
        lower = key.lower()
        if lower in _WANTED:
            found[lower] = value
    if not found:
        return None, None, None
    return (
        _number(found.get(b"retry-after")),
        _number(found.get(b"x-ratelimit-remaining")),
        _number(found.get(b"x-ratelimit-reset")),
    )


def classify_response(
    response: httpx.Response, latency_ms: float, excerpt_chars: int = 200
) -> CallResult:
    return classify_parts(
        response.status_code, response.headers.raw, response.content, latency_ms, excerpt_chars
    )


def classify_parts(
    status: int,
    raw_headers: Iterable[tuple[bytes, bytes]],
    body: bytes,
    latency_ms: float,
    excerpt_chars: int = 200,
) -> CallResult:
    """classify_response on the parts of a response (the transport's raw fast path)."""
    retry_after, rem, reset = _scan_headers(raw_headers)
    remaining = int(rem) if rem is not None else None
    if 200 <= status < 300:
        return CallResult(OK, "registered", status, None, latency_ms, None, remaining, reset)
    error = f"HTTP {status}: {excerpt(body, excerpt_chars)}".rstrip(": ")
    if status == 429:
        return CallResult(
            RATE_LIMITED, "rate_limited", status, error, latency_ms, retry_after, remaining, reset
        )
    if status == 400 and _MARKETING.search(body[:4096]):
        return CallResult(
            STOP, "marketing_automation_disabled", status, error, latency_ms, None, remaining, reset
        )
    if status == 401:
        return CallResult(STOP, "unauthorized", status, error, latency_ms, None, remaining, reset)
    if status == 408:
        return CallResult(RETRY, "timeout", status, error, latency_ms, None, remaining, reset)
    if status >= 500:
        return CallResult(RETRY, "server_error", status, error, latency_ms, None, remaining, reset)
    reason = _REJECT_REASONS.get(status, "client_error")
    return CallResult(REJECT, reason, status, error, latency_ms, None, remaining, reset)


def classify_exception(exc: httpx.HTTPError, latency_ms: float) -> CallResult:
    # Exception texts can carry the URL; redact anyway in case a transport puts headers there.
    text = redact(f"{type(exc).__name__}: {exc}"[:200])
    if isinstance(exc, httpx.TimeoutException):
        return CallResult(RETRY, "timeout", None, text, latency_ms)
    return CallResult(RETRY, "connection_error", None, text, latency_ms)
