"""pipeline.normalize: one test per rule (platforms, versions, tokens, opt-out, staleness)."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from pipeline.normalize import REASON_ORDER, NormalizeOptions, normalize
from pipeline.normalize.tokens import TOKEN_KIND_DTYPE
from pipeline.outcomes import OUTCOME_DTYPE, REASON_DTYPE, REASONS
from pipeline.sources.profiles import ANDROID_VERSION_KIND_DTYPE

NOW = datetime(2026, 12, 4, tzinfo=UTC)
FCM = "c" + "A" * 21 + ":APA91b" + "x" * 134
OPTS = NormalizeOptions(now=NOW)


def frame(**cols: list) -> pl.DataFrame:
    n = len(next(iter(cols.values())))
    base = {
        "row_id": list(range(n)),
        "customer_id": ["c1"] * n,
        "device_token": [f"{FCM}{i}" for i in range(n)],
        "platform": ["android"] * n,
        "os_version": ["14"] * n,
    }
    base.update(cols)
    return pl.DataFrame(base, schema_overrides={k: pl.String for k in base if k != "row_id"})


def one(opts: NormalizeOptions = OPTS, **cols: str | None) -> dict:
    return normalize(frame(**{k: [v] for k, v in cols.items()}), opts).row(0, named=True)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("Android", "android"), (" ANDROID ", "android"), ("gcm", "android"), ("iOS", "ios"),
     ("iPhone", "ios"), ("APNS_SANDBOX", "ios"), ("web", "web"), ("Chrome Web Push", "web"),
     ("firefox", "web")],
)  # fmt: skip
def test_platform_spellings(raw: str, expected: str) -> None:
    os_ = {"android": "14", "ios": "17.2", "web": "120"}[expected]
    row = one(platform=raw, os_version=os_)
    assert row["platform"] == expected and row["outcome"] is None
    assert row["platform_raw"] == raw


@pytest.mark.parametrize(
    "raw", ["amazon", "Huawei", "windows phone", "macOS", "email", "SMS", "chrome app"]
)
def test_unsupported_platforms_are_skipped(raw: str) -> None:
    row = one(platform=raw)
    assert (row["outcome"], row["reason"], row["detail"]) == (
        "skipped",
        "unsupported_platform",
        raw,
    )


def test_unknown_and_missing_platform() -> None:
    assert one(platform="blackberry")["reason"] == "unknown_platform"
    assert one(platform="blackberry")["platform"] == "blackberry"
    assert one(platform="")["reason"] == "missing_platform"
    assert one(platform=None)["reason"] == "missing_platform"


@pytest.mark.parametrize(
    ("raw", "kind", "api"),
    [("14", "release", "34"), ("14", "api", "14"), ("34", "release", "34"), ("8.1.0", "api", "27"),
     ("8.0", "release", "26"), ("12L", "release", "32"), ("12.1", "release", "32"),
     ("Android (Q)", "release", "29"), ("Tiramisu", "release", "33"), ("Android 10", "api", "29"),
     ("upside down cake", "release", "34"), ("API 30", "release", "30"), ("36.1", "release", "36"),
     ("5.1.1", "release", "22"), ("9", "release", "28"), ("16", "release", "36")],
)  # fmt: skip
def test_android_release_to_api(raw: str, kind: str, api: str) -> None:
    row = one(os_version=raw, android_version_kind=kind)
    assert row["os_version"] == api and row["outcome"] is None
    assert row["os_version_raw"] == raw


@pytest.mark.parametrize("raw", ["Oreo", "banana", "17", "99", "1.2.3.4.5"])
def test_android_unknown_versions_are_reported_not_guessed(raw: str) -> None:
    row = one(os_version=raw, android_version_kind="release")
    assert (row["outcome"], row["reason"], row["detail"]) == ("invalid", "invalid_os_version", raw)
    assert row["os_version"] == raw


@pytest.mark.parametrize(
    ("raw", "out"),
    [
        ("iOS 17.2", "17.2"),
        ("iPhone OS 17_4", "17.4"),
        ("17.4.1", "17.4.1"),
        ("iPadOS 18.1", "18.1"),
    ],
)
def test_ios_versions(raw: str, out: str) -> None:
    assert one(platform="ios", os_version=raw)["os_version"] == out


@pytest.mark.parametrize(
    ("raw", "out"), [("120", "120"), ("Chrome 121.0.6167.85", "121.0.6167.85")]
)
def test_web_keeps_browser_version(raw: str, out: str) -> None:
    assert one(platform="web", os_version=raw)["os_version"] == out


@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_os_version_and_model_are_fine(value: str | None) -> None:
    row = one(os_version=value, model=value)
    assert row["outcome"] is None and row["os_version"] is None and row["model"] is None


@pytest.mark.parametrize(
    ("token", "kind", "reason"),
    [
        (FCM, "fcm", None),
        ("APA91b" + "z" * 140, "gcm", None),
        ("e" * 11 + ":APA91b" + "q" * 140, "fcm", None),
        ("a" * 64, "apns", "apns_token_not_fcm"),
        ("<" + " ".join(["ABCDEF01"] * 8) + ">", "apns", "apns_token_not_fcm"),
        ("ExponentPushToken[xxxxxxxxxxxxxxxxxxxxxx]", "expo", "expo_token"),
        ("ExpoPushToken[xxxxxxxxxxxxxxxxxxxxxx]", "expo", "expo_token"),
        ("https://fcm.googleapis.com/fcm/send/abc", "webpush", "webpush_endpoint"),
        ("maria@example.com", "email", "email_or_phone_token"),
        ("+52 55 1234 5678", "phone", "email_or_phone_token"),
        ("5512345678", "phone", "email_or_phone_token"),
        ("", "empty", "missing_device_token"),
        (None, "empty", "missing_device_token"),
        ("x" * 5000, "oversized", "token_too_long"),
        ("not a token!", "malformed", "malformed_token"),
        ("short", "malformed", "malformed_token"),
        (FCM[:40] + " " + FCM[40:], "malformed", "malformed_token"),
        (FCM[:40] + "é" + FCM[40:], "malformed", "malformed_token"),
    ],
)
def test_token_kinds(token: str | None, kind: str, reason: str | None) -> None:
    row = one(device_token=token)
    assert row["token_kind"] == kind and row["reason"] == reason


def test_token_whitespace_trimmed() -> None:
    row = one(device_token=f"  {FCM}\t")
    assert row["device_token"] == FCM and row["outcome"] is None


def test_ios_row_with_apns_token_is_invalid() -> None:
    row = one(platform="ios", os_version="17.2", device_token="ab" * 32)
    assert (row["outcome"], row["reason"]) == ("invalid", "apns_token_not_fcm")


@pytest.mark.parametrize("cid", ["00123", "cliente/42", "José Ñúñez 東京", "a?b#c%d", "../x"])
def test_customer_ids_kept_verbatim(cid: str) -> None:
    row = one(customer_id=f" {cid} ")
    assert row["customer_id"] == cid and row["outcome"] is None


@pytest.mark.parametrize(
    ("cid", "reason"),
    [("", "missing_customer_id"), ("  ", "missing_customer_id"), (None, "missing_customer_id"),
     ("a\x00b", "invalid_customer_id"), ("x" * 1025, "invalid_customer_id")],
)  # fmt: skip
def test_customer_id_problems(cid: str | None, reason: str) -> None:
    assert one(customer_id=cid)["reason"] == reason


@pytest.mark.parametrize("value", ["false", "f", "0", "no", "FALSE"])
def test_opted_out_skipped_unless_included(value: str) -> None:
    row = one(opted_in=value)
    assert (row["outcome"], row["reason"], row["opted_in"]) == ("skipped", "opted_out", False)
    row = one(NormalizeOptions(now=NOW, include_opted_out=True), opted_in=value)
    assert row["outcome"] is None and row["opted_in"] is False


def test_opted_in_unknown_is_sent() -> None:
    assert one(opted_in=None)["outcome"] is None
    assert one(opted_in="maybe")["opted_in"] is None


@pytest.mark.parametrize(
    ("ts", "parsed"),
    [("2026-11-01T10:00:00Z", datetime(2026, 11, 1, 10, tzinfo=UTC)),
     ("2026-11-01 10:00:00", datetime(2026, 11, 1, 10, tzinfo=UTC)),
     ("2026-11-01T12:00:00.5+02:00", datetime(2026, 11, 1, 10, 0, 0, 500000, tzinfo=UTC)),
     ("2026-11-01 10:00:00 UTC", datetime(2026, 11, 1, 10, tzinfo=UTC)),
     ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
     ("1793527200", datetime(2026, 11, 1, 10, tzinfo=UTC)),
     ("1793527200000", datetime(2026, 11, 1, 10, tzinfo=UTC)),
     ("yesterday", None), (None, None)],
)  # fmt: skip
def test_activity_formats(ts: str | None, parsed: datetime | None) -> None:
    assert one(activity_at=ts)["activity_at"] == parsed


def test_stale_rows() -> None:
    old, fresh = "2025-01-01T00:00:00Z", "2026-11-01T00:00:00Z"
    assert one(activity_at=old)["reason"] == "stale"
    assert one(activity_at=fresh)["outcome"] is None
    assert one(activity_at=None)["outcome"] is None  # unknown activity is never stale
    # the default limit is about FCM's Android expiry; other platforms only when asked
    assert one(platform="ios", os_version="17.2", activity_at=old)["outcome"] is None
    every = NormalizeOptions(now=NOW, max_age_platforms=None)
    assert one(every, platform="ios", os_version="17.2", activity_at=old)["reason"] == "stale"
    for off in (0, None):
        assert one(NormalizeOptions(now=NOW, max_age_days=off), activity_at=old)["outcome"] is None
    assert (
        one(NormalizeOptions(now=NOW, max_age_days=30), activity_at="2026-10-01")["reason"]
        == "stale"
    )


def test_precedence_skips_before_invalids() -> None:
    row = one(opted_in="false", device_token="a" * 64, customer_id="")
    assert row["reason"] == "opted_out"
    assert one(platform="email", device_token="x@y.com")["reason"] == "unsupported_platform"


def test_reason_codes_are_registered() -> None:
    assert set(REASON_ORDER) <= set(REASONS)
    for code in REASON_ORDER:
        assert REASONS[code][0].value in ("skipped", "invalid")


def test_existing_outcomes_are_kept() -> None:
    df = frame(device_token=["a" * 64]).with_columns(
        outcome=pl.lit("skipped"), reason=pl.lit("not_in_shard"), detail=pl.lit("x")
    )
    row = normalize(df, OPTS).row(0, named=True)
    assert (row["outcome"], row["reason"], row["detail"]) == ("skipped", "not_in_shard", "x")


def test_an_undocumented_reason_cannot_be_stored() -> None:
    df = frame(device_token=[FCM]).with_columns(outcome=pl.lit("skipped"), reason=pl.lit("nope"))
    with pytest.raises(pl.exceptions.InvalidOperationError, match="nope"):
        normalize(df, OPTS)


def test_decision_columns_are_enums() -> None:
    out = normalize(frame(device_token=[FCM, "a" * 64, ""]), OPTS)
    assert out.schema["outcome"] == OUTCOME_DTYPE
    assert out.schema["reason"] == REASON_DTYPE
    assert out.schema["token_kind"] == TOKEN_KIND_DTYPE
    assert out.schema["android_version_kind"] == ANDROID_VERSION_KIND_DTYPE
    assert out["reason"].to_list() == [None, "apns_token_not_fcm", "missing_device_token"]
    assert out["token_kind"].to_list() == ["fcm", "apns", "empty"]


def test_android_version_kind_given_as_text() -> None:
    # a hand-built frame may hold the kind as a string; it comes back as the Enum, and API
    # levels are not read as releases
    df = frame(os_version=["28", "9"]).with_columns(android_version_kind=pl.Series(["api", None]))
    out = normalize(df, OPTS)
    assert out["os_version"].to_list() == ["28", "28"]
    assert out["android_version_kind"].to_list() == ["api", "api"]


def test_never_drops_or_reorders_rows() -> None:
    df = frame(platform=["android", "amazon", "", "ios"], device_token=[FCM, "", "x@y.z", "a" * 64])
    out = normalize(df, OPTS)
    assert out["row_id"].to_list() == [0, 1, 2, 3]
    assert out.schema["activity_at"] == pl.Datetime("us", "UTC")
    assert out.schema["opted_in"] == pl.Boolean


def test_empty_frame() -> None:
    out = normalize(frame(customer_id=[]), OPTS)
    assert out.height == 0 and out.schema["activity_at"] == pl.Datetime("us", "UTC")


def test_fast_path_tokens_are_still_length_checked() -> None:
    # FCM/GCM layout skips the full classification, but not the length limit
    assert one(device_token="APA91b" + "z" * 5000)["reason"] == "token_too_long"
    assert one(device_token=FCM + "x" * 5000)["token_kind"] == "oversized"


def test_raw_platform_and_os_version_are_trimmed_in_details() -> None:
    row = one(platform="  Huawei ")
    assert (row["reason"], row["detail"], row["platform"]) == (
        "unsupported_platform",
        "Huawei",
        "Huawei",
    )
    row = one(platform=" blackberry\t")
    assert (row["reason"], row["detail"], row["platform"]) == (
        "unknown_platform",
        "blackberry",
        "blackberry",
    )
    row = one(os_version="  weird! ")
    assert (row["reason"], row["detail"], row["os_version"]) == (
        "invalid_os_version",
        "weird!",
        "weird!",
    )
    assert one(platform="  \t")["reason"] == "missing_platform"
    assert one(os_version=" \t ")["os_version"] is None


def test_mixed_frame_matches_row_by_row() -> None:
    # the rows off the token / timestamp fast paths are classified on their own and put back
    tokens = [FCM, " " + FCM, "a" * 64, None, "x@y.z", "APA91b" + "q" * 120, "short", FCM[:-1]]
    stamps = [
        "2026-11-01T00:00:00Z", "garbage", "1767225600", None, "2026-10-01 12:00",
        "2026-11-02T00:00:00Z", "2026-11-03", "2026-11-04T00:00:00+02:00",
    ]  # fmt: skip
    df = frame(device_token=tokens, activity_at=stamps)
    whole = normalize(df, OPTS)
    for i in range(df.height):
        assert whole.row(i) == normalize(df.slice(i, 1), OPTS).row(0), i
