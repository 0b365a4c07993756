"""Redaction helpers: known secrets and credential-shaped text never survive."""

from __future__ import annotations

import logging

from _masivo_fakes import FAKE_API_KEY, make_jwt
from hypothesis import given
from hypothesis import strategies as st

from pipeline.client import Credentials
from pipeline.secrets import MASK, RedactingFilter, excerpt, redact


def test_registered_secret_is_masked_anywhere() -> None:
    Credentials(api_key=FAKE_API_KEY)  # registers it
    assert redact(f"oops {FAKE_API_KEY}!") == f"oops {MASK}!"


def test_credential_shapes_are_masked_even_if_unknown() -> None:
    jwt = make_jwt(123, "unknown")
    text = f"got {jwt} and Authorization: Bearer abc.def and x-api-key: 12345678"
    cleaned = redact(text)
    assert jwt not in cleaned and "abc.def" not in cleaned and "12345678" not in cleaned


def test_excerpt_prefers_details_and_is_bounded_single_line() -> None:
    assert excerpt(b'{"details": "bad\\ntoken", "code": 7}') == "bad token"
    assert excerpt(b"") == ""
    long = excerpt("y" * 1000, limit=50)
    assert len(long) == 50 and long.endswith("…")
    assert excerpt(b"\xff\xfe garbage\x00\x01") == "\ufffd\ufffd garbage"


@given(st.text(max_size=60), st.text(max_size=60))
def test_excerpt_never_leaks_the_key(prefix: str, suffix: str) -> None:
    Credentials(api_key=FAKE_API_KEY)
    out = excerpt(f'{{"message": "{prefix}{FAKE_API_KEY}{suffix}"}}', limit=40)
    assert FAKE_API_KEY not in out
    assert len(out) <= 40


def test_logging_filter(caplog) -> None:
    Credentials(api_key=FAKE_API_KEY)
    logger = logging.getLogger("test.secrets")
    handler = logging.Handler()
    records: list[str] = []
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    try:
        logger.warning("key=%s", FAKE_API_KEY)
    finally:
        logger.removeHandler(handler)
    assert records and FAKE_API_KEY not in records[0]
