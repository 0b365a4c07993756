"""Keeping the API key and access tokens out of everything we print or store.

Two layers: every secret the process handles is registered here and replaced wherever it appears
in text we emit (errors, excerpts, log records), and shapes that look like credentials (JWTs,
`Bearer ...`, `x-api-key: ...`) are masked even when we never saw the value (e.g. a server
echoing a different token back).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable

MASK = "[REDACTED]"

_lock = threading.Lock()
_known: set[str] = set()
# Shorter strings would mask innocent text (and a real key/JWT is never this short).
_MIN_SECRET_LEN = 8

_PATTERNS = (
    # JWT: three base64url parts, the first two starting with '{"' encoded ("eyJ").
    re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*"),
    re.compile(r"(?i)(bearer\s+)[^\s\"',;]+"),
    re.compile(
        r"(?i)((?:x-api-key|api[_-]?key|access[_-]?token|authorization)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;}]+"
    ),
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def register_secret(value: str | None) -> None:
    """Remember a secret so redact() masks it anywhere, whatever its shape."""
    if value and len(value) >= _MIN_SECRET_LEN:
        with _lock:
            _known.add(value)


def forget_secrets() -> None:
    """For tests: drop every registered secret."""
    with _lock:
        _known.clear()


def redact(text: str, extra: Iterable[str | None] = ()) -> str:
    """`text` with every known secret and credential-shaped substring replaced by MASK."""
    if not text:
        return text
    with _lock:
        secrets = set(_known)
    secrets.update(s for s in extra if s and len(s) >= _MIN_SECRET_LEN)
    # Longest first so a secret containing another is masked whole.
    for secret in sorted(secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    text = _PATTERNS[0].sub(MASK, text)
    for pattern in _PATTERNS[1:]:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


def excerpt(body: bytes | str | None, limit: int = 200) -> str:
    """A short, single-line, secret-free excerpt of an error body for the report.

    JSON bodies are reduced to their `details` / `message` / `error` fields when present (the
    schema is unpublished), so the excerpt carries the explanation rather than braces.
    """
    if not body:
        return ""
    raw = body[: limit * 8]  # enough to find the fields, bounded for huge bodies
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        parts = [
            str(data[key])
            for key in ("details", "message", "error")
            if data.get(key) not in (None, "")
        ]
        if parts:
            text = " | ".join(dict.fromkeys(parts))
    text = _CONTROL.sub(" ", text).strip()
    text = " ".join(text.split())
    # Redact before truncating so a secret cut in half cannot survive as a prefix.
    text = redact(text)
    if len(text) > limit:
        text = text[: max(limit - 1, 0)] + "…"
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in every record's final message.

    Install on handlers: `handler.addFilter(RedactingFilter())`.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True
