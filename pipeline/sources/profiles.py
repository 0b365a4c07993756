"""Vendor profiles, kept as data.

A profile says, for one vendor's export, which vendor column feeds each canonical column, how the
vendor codes its platforms, which columns say "opted out", which column holds the last activity, and
whether its Android version column holds release numbers ("9", "14") or API levels ("28", "34").

Column names are matched after `header_key()` (lower case, letters and digits only), so
`osVersion`, `os_version` and `OS Version` are the same column. Each canonical column lists
candidates in priority order; the first one present in the file wins.

Adding a vendor means adding an entry to PROFILES; no code changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, get_args

import polars as pl

AndroidVersionKind = Literal["release", "api"]
# the android_version_kind column's type: one byte per row, not a 16-byte string view
ANDROID_VERSION_KIND_DTYPE = pl.Enum(get_args(AndroidVersionKind))

# The canonical columns a profile can feed (besides row_id/source_file/source_row).
CANONICAL = ("customer_id", "device_token", "platform", "model", "os_version", "activity_at")
REQUIRED = ("customer_id", "device_token")


def header_key(name: str) -> str:
    """The form column names are compared in: `Device Token`, `device_token`, `deviceToken` match."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


@dataclass(frozen=True)
class OptOutRule:
    """The device is opted out when `column` (first candidate present) holds one of `values`.

    Values are compared case-insensitively after trimming. When none of a profile's rule columns
    exist in a file, opted_in is null (unknown, treated as opted in).
    """

    columns: tuple[str, ...]
    values: frozenset[str]


@dataclass(frozen=True)
class Profile:
    name: str
    # canonical column -> vendor column candidates, in priority order
    columns: dict[str, tuple[str, ...]]
    # header keys that must all be present for --profile auto to pick this profile
    signature: tuple[str, ...] = ()
    # canonical column -> {vendor value (lower-cased) -> canonical value}; unmapped values pass through
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    # canonical column -> constant value used when no column feeds it
    constants: dict[str, str] = field(default_factory=dict)
    opt_out: tuple[OptOutRule, ...] = ()
    android_version: AndroidVersionKind = "release"
    # "flat": one row per record. "braze_users": nested push_tokens/devices arrays (NDJSON).
    layout: str = "flat"
    note: str = ""


FALSEY = frozenset({"false", "f", "0", "no", "n", "off"})

_GENERIC_COLUMNS: dict[str, tuple[str, ...]] = {
    "customer_id": (
        "customer_id",
        "customerid",
        "customer",
        "external_user_id",
        "external_id",
        "user_id",
        "userid",
    ),
    "device_token": (
        "device_token",
        "token",
        "push_token",
        "fcm_token",
        "registration_token",
        "registration_id",
    ),
    "platform": ("platform", "device_platform", "device_type", "os", "os_name"),
    "model": ("model", "device_model"),
    "os_version": ("os_version", "device_os", "os_ver", "version"),
    "activity_at": (
        "updated_at",
        "activity_at",
        "last_active",
        "last_seen",
        "last_activity",
        "last_seen_at",
    ),
}

# OneSignal device_type codes
ONESIGNAL_DEVICE_TYPES: dict[str, str] = {
    "0": "ios", "1": "android", "2": "amazon", "3": "windows phone", "4": "chrome app",
    "5": "chrome web push", "6": "windows", "7": "safari", "8": "firefox", "9": "macos",
    "10": "alexa", "11": "email", "13": "huawei", "14": "sms", "17": "safari",
}  # fmt: skip

# Pushwoosh device_type codes
PUSHWOOSH_DEVICE_TYPES: dict[str, str] = {
    "1": "ios", "3": "android", "5": "windows phone", "7": "macos", "8": "windows",
    "9": "amazon", "10": "safari", "11": "chrome", "12": "firefox", "17": "huawei",
    "18": "sms", "19": "xiaomi", "21": "whatsapp",
}  # fmt: skip

PROFILES: dict[str, Profile] = {
    "onesignal": Profile(
        name="onesignal",
        signature=("identifier", "devicetype", "invalididentifier"),
        columns={
            "customer_id": ("external_user_id",),
            "device_token": ("identifier",),
            "platform": ("device_type",),
            "model": ("device_model",),
            "os_version": ("device_os",),
            "activity_at": ("last_active", "created_at"),
        },
        values={"platform": ONESIGNAL_DEVICE_TYPES},
        # notification_types -2 = unsubscribed by the user, -31 = disabled through the API
        opt_out=(
            OptOutRule(("invalid_identifier",), frozenset({"t", "true", "1"})),
            OptOutRule(("notification_types",), frozenset({"-2", "-31"})),
        ),
        android_version="release",
        note="OneSignal CSV export; external_user_id must be requested in the export.",
    ),
    "airship": Profile(
        name="airship",
        signature=("channelid", "pushaddress"),
        columns={
            "customer_id": ("named_user_id", "named_user"),
            "device_token": ("push_address",),
            "platform": ("device_type",),
            "model": ("ua_device_model", "device_model"),
            "os_version": ("ua_device_os", "device_os"),
            "activity_at": ("last_registration", "created"),
        },
        opt_out=(
            OptOutRule(("opt_in",), FALSEY),
            OptOutRule(("installed",), FALSEY),
        ),
        android_version="release",
    ),
    "braze": Profile(
        name="braze",
        signature=("externalid",),
        columns={
            "customer_id": ("external_id",),
            # flattened-to-CSV exports name nested fields with a prefix; header_key drops the dots
            "device_token": ("token", "push_tokens.token", "push_tokens_token", "push_token"),
            "platform": ("platform", "push_tokens.platform", "push_tokens_platform"),
            "model": ("model", "devices.model", "devices_model", "device_model"),
            "os_version": ("os", "devices.os", "devices_os", "os_version"),
            "activity_at": ("last_used_app", "last_used_app_date", "updated_at", "last_active"),
        },
        opt_out=(
            OptOutRule(
                (
                    "notifications_enabled",
                    "push_tokens.notifications_enabled",
                    "push_tokens_notifications_enabled",
                ),
                FALSEY,
            ),
            OptOutRule(("push_subscribe",), frozenset({"unsubscribed"})),
        ),
        android_version="release",
        layout="braze_users",
    ),
    "pushwoosh": Profile(
        name="pushwoosh",
        signature=("hwid", "pushtoken"),
        columns={
            "customer_id": ("userId", "user_id"),
            "device_token": ("push_token",),
            "platform": ("device_type", "platform"),
            "model": ("device_model",),
            "os_version": ("os_version",),
            "activity_at": ("last_update", "last_active", "updated"),
        },
        values={"platform": PUSHWOOSH_DEVICE_TYPES},
        opt_out=(OptOutRule(("unsubscribed",), frozenset({"true", "t", "1", "yes"})),),
        android_version="release",
    ),
    "generic": Profile(
        name="generic",
        signature=("customerid", "devicetoken"),
        columns=_GENERIC_COLUMNS,
        opt_out=(
            OptOutRule(
                ("opted_in", "opt_in", "subscribed", "push_enabled", "notifications_enabled"),
                FALSEY,
            ),
            OptOutRule(("opted_out", "unsubscribed"), frozenset({"true", "t", "1", "yes", "y"})),
        ),
        android_version="release",
    ),
}

# Auto-detection tries vendors first: their signatures are more specific than generic's.
DETECTION_ORDER = ("onesignal", "airship", "pushwoosh", "braze", "generic")
PROFILE_NAMES = (*DETECTION_ORDER, "auto")


def detect_profile(header_keys: set[str]) -> Profile | None:
    """The first profile whose signature columns are all present, or None."""
    for name in DETECTION_ORDER:
        prof = PROFILES[name]
        if all(k in header_keys for k in prof.signature):
            return prof
    return None
