"""Platform spellings and vendor names -> android / ios / web, or "unsupported", as data.

Keys are compared after `platform_key`: lower case, runs of space/underscore/hyphen -> one space.
Vendor *codes* (OneSignal 1, Pushwoosh 3) are translated by the source profile before this runs.
"""

from __future__ import annotations

import polars as pl

CANONICAL_PLATFORMS = ("android", "ios", "web")

ALIASES: dict[str, str] = {
    # android
    "android": "android", "android phone": "android", "android tablet": "android", "and": "android",
    "gcm": "android", "fcm": "android", "firebase": "android", "google": "android", "a": "android",
    "android os": "android", "androidos": "android",
    # ios
    "ios": "ios", "iphone": "ios", "ipad": "ios", "ipados": "ios", "iphone os": "ios", "ipod": "ios",
    "apns": "ios", "apns sandbox": "ios", "apns production": "ios", "apple": "ios", "i": "ios",
    # web (browser push; only tokens from the Firebase JS SDK are usable, tokens tell the rest)
    "web": "web", "webpush": "web", "web push": "web", "browser": "web", "pwa": "web",
    "chrome": "web", "chrome web push": "web", "chrome web": "web", "firefox": "web",
    "safari": "web", "safari web": "web", "edge": "web", "opera": "web", "w": "web",
}  # fmt: skip

# Channels Masivo cannot register: skipped (not invalid), because the export is right about them.
UNSUPPORTED: frozenset[str] = frozenset({
    "amazon", "adm", "kindle", "fire os", "fireos", "fire tv", "alexa",
    "huawei", "hms", "xiaomi", "mi push",
    "windows", "windows phone", "wns", "mpns", "windows desktop",
    "macos", "mac os", "mac os x", "osx", "mac", "tvos", "watchos",
    "email", "e mail", "mail", "sms", "mms", "whatsapp", "open", "chrome app",
})  # fmt: skip


def platform_key(col: pl.Expr) -> pl.Expr:
    return col.str.strip_chars().str.to_lowercase().str.replace_all(r"[\s_\-]+", " ")


def canonical_platform(key: pl.Expr) -> pl.Expr:
    """android / ios / web, or null when the key is not one of those spellings."""
    return key.replace_strict(ALIASES, default=None, return_dtype=pl.String)


def is_unsupported(key: pl.Expr) -> pl.Expr:
    return key.is_in(list(UNSUPPORTED)).fill_null(False)
