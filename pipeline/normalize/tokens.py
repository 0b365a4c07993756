"""Token classification: what kind of push address a row holds, as a polars expression.

FCM tokens are opaque (Google says so), so they are not matched strictly: anything made of the
FCM alphabet (letters, digits, `_`, `-`, `:`) and long enough is taken as FCM, after the
obviously wrong kinds (APNs hex, Expo, Web Push URLs, emails, phone numbers) are caught.
Only `fcm` and `gcm` are sent.
"""

from __future__ import annotations

import polars as pl

MAX_TOKEN_LEN = 4096
MIN_TOKEN_LEN = 16  # shorter strings are test values or truncated cells, not registration tokens
SENDABLE_KINDS = ("fcm", "gcm")
TOKEN_KINDS = (
    "fcm",
    "gcm",
    "apns",
    "expo",
    "webpush",
    "email",
    "phone",
    "empty",
    "oversized",
    "malformed",
)

# kind -> (reason code, detail) for the kinds that make a row invalid
KIND_REASON: dict[str, tuple[str, str]] = {
    "empty": ("missing_device_token", "device_token is empty"),
    "oversized": ("token_too_long", f"token longer than {MAX_TOKEN_LEN} characters"),
    "email": ("email_or_phone_token", "token column holds an email address"),
    "phone": ("email_or_phone_token", "token column holds a phone number"),
    "expo": ("expo_token", "Expo push token; needs an FCM token"),
    "webpush": ("webpush_endpoint", "Web Push endpoint URL; needs an FCM web token"),
    "apns": ("apns_token_not_fcm", "APNs device token; convert to FCM (IID batchImport) first"),
    "malformed": ("malformed_token", "not an FCM token (characters or length)"),
}

_FCM_ALPHABET = r"^[A-Za-z0-9_:\-]+$"


def clean_token(col: pl.Expr) -> pl.Expr:
    """Trim surrounding whitespace (incl. tabs/newlines from hand-edited exports); "" -> null."""
    t = col.str.strip_chars()
    return pl.when(t != "").then(t)


def token_kind(t: pl.Expr) -> pl.Expr:
    """The kind of an already trimmed token (see TOKEN_KINDS)."""
    n = t.str.len_bytes()
    apns_hex = t.str.replace_all(r"[\s<>]", "")
    return (
        pl.when(t.is_null() | (n == 0))
        .then(pl.lit("empty"))
        .when(n > MAX_TOKEN_LEN)
        .then(pl.lit("oversized"))
        .when(t.str.contains(r"^Expo(?:nent)?PushToken\["))
        .then(pl.lit("expo"))
        .when(t.str.contains(r"^(?i:https?)://"))
        .then(pl.lit("webpush"))
        .when(t.str.contains(r"^(?i:mailto:)?[^@\s]+@[^@\s]+\.[^@\s]+$"))
        .then(pl.lit("email"))
        .when(t.str.contains(r"^(?:tel:)?\+?[0-9][0-9 ().\-]{5,18}[0-9]$"))
        .then(pl.lit("phone"))
        .when((n >= 64) & (n <= 100) & apns_hex.str.contains(r"^[0-9A-Fa-f]{64}$"))
        .then(pl.lit("apns"))
        .when(~t.str.contains(_FCM_ALPHABET) | (n < MIN_TOKEN_LEN))
        .then(pl.lit("malformed"))
        .when(t.str.starts_with("APA91b"))
        .then(pl.lit("gcm"))
        .otherwise(pl.lit("fcm"))
    )
