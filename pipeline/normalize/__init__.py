"""Clean values, classify tokens and decide which rows cannot or should not be sent.

`normalize(frame, options)` takes the work frame from `pipeline.sources` and returns it with:

    customer_id   trimmed, otherwise verbatim (unicode, slashes, leading zeros kept)
    device_token  trimmed
    platform      android / ios / web, or the raw value when the row is decided on its platform
    model         trimmed; empty -> null
    os_version    what Masivo gets as osVersion (Android API level, iOS dotted version, browser
                  version); empty -> null; the raw value when it could not be understood
    activity_at   Datetime(us, UTC); unparseable -> null (treated as "no activity known")
    opted_in      Boolean; null = unknown, treated as opted in
    token_kind    see pipeline.normalize.tokens.TOKEN_KINDS
    outcome, reason, detail   null outcome = still eligible; otherwise skipped/invalid + a reason
    platform_raw, os_version_raw   the values as read, for the report

Missing model or osVersion is not an error: both are optional in Masivo's device_info, so the
sender omits the key (it never sends null or ""). Rows are never dropped or reordered, and a row
that already has an outcome keeps it, so normalizing twice equals normalizing once.

When a row has several problems, the first in REASON_ORDER wins: reasons that say "this row is not
meant to be sent" (unsupported platform, opted out, stale) come before data errors, so the invalid
counts are the rows somebody actually has to fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl

from pipeline.normalize.platforms import canonical_platform, is_unsupported, platform_key
from pipeline.normalize.timestamps import parse_activity
from pipeline.normalize.tokens import KIND_REASON, clean_token, token_kind
from pipeline.normalize.versions import os_version_for
from pipeline.outcomes import REASONS

__all__ = ["REASON_ORDER", "NormalizeOptions", "normalize"]

MAX_CUSTOMER_ID_LEN = 256

# precedence when a row has several problems (first wins)
REASON_ORDER = (
    "unsupported_platform", "opted_out", "stale",
    "missing_customer_id", "invalid_customer_id",
    "missing_device_token", "token_too_long", "email_or_phone_token", "expo_token",
    "webpush_endpoint", "apns_token_not_fcm", "malformed_token",
    "missing_platform", "unknown_platform", "invalid_os_version",
)  # fmt: skip

_TRUE = ["true", "t", "1", "yes", "y", "on", "opted_in", "subscribed"]
_FALSE = ["false", "f", "0", "no", "n", "off", "opted_out", "unsubscribed"]


@dataclass(frozen=True)
class NormalizeOptions:
    max_age_days: int | None = (
        270  # rows whose last activity is older are skipped as stale; 0/None = off
    )
    # platforms the age limit applies to; None = all. FCM expires *Android* tokens after 270 days.
    max_age_platforms: tuple[str, ...] | None = ("android",)
    include_opted_out: bool = False  # True = send rows the source marks as unsubscribed
    now: datetime | None = None  # the reference time for staleness (tests pin it)


def _blank_to_null(e: pl.Expr) -> pl.Expr:
    t = e.str.strip_chars()
    return pl.when(t != "").then(t)


def _opted_in(col: str, dtype: pl.DataType) -> pl.Expr:
    if dtype == pl.Boolean:
        return pl.col(col)
    v = pl.col(col).cast(pl.String).str.strip_chars().str.to_lowercase()
    return pl.when(v.is_in(_TRUE)).then(True).when(v.is_in(_FALSE)).then(False).otherwise(None)


def _ensure_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """Add the optional columns a hand-built frame may lack, so normalize accepts any subset."""
    need = {
        "model": pl.String, "os_version": pl.String, "activity_at": pl.String,
        "opted_in": pl.String, "android_version_kind": pl.String, "platform": pl.String,
        "customer_id": pl.String, "device_token": pl.String,
        "outcome": pl.String, "reason": pl.String, "detail": pl.String,
    }  # fmt: skip
    missing = [pl.lit(None, dtype=t).alias(c) for c, t in need.items() if c not in frame.columns]
    out = frame.with_columns(missing) if missing else frame
    raw = []
    if "platform_raw" not in out.columns:
        raw.append(pl.col("platform").alias("platform_raw"))
    if "os_version_raw" not in out.columns:
        raw.append(pl.col("os_version").alias("os_version_raw"))
    return out.with_columns(raw) if raw else out


def _reason_expr(conds: dict[str, pl.Expr]) -> pl.Expr:
    chain = None
    for code in REASON_ORDER:
        if code not in conds:
            continue
        c = conds[code].fill_null(False)
        chain = (pl.when(c) if chain is None else chain.when(c)).then(pl.lit(code))
    return (
        chain.otherwise(pl.lit(None, dtype=pl.String))
        if chain is not None
        else pl.lit(None, dtype=pl.String)
    )


def normalize(frame: pl.DataFrame, options: NormalizeOptions = NormalizeOptions()) -> pl.DataFrame:
    """Return the frame with clean values and an outcome for every row that must not be sent."""
    frame = _ensure_columns(frame)
    order = list(frame.columns)
    schema = frame.schema
    now = options.now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)

    lf = frame.lazy().with_columns(
        pl.col("customer_id").cast(pl.String).str.strip_chars().alias("customer_id"),
        clean_token(pl.col("device_token").cast(pl.String)).alias("device_token"),
        _blank_to_null(pl.col("model").cast(pl.String)).alias("model"),
        _blank_to_null(pl.col("os_version").cast(pl.String)).alias("_os"),
        pl.col("platform").cast(pl.String).str.strip_chars().alias("_plat"),
        parse_activity(pl.col("activity_at"), schema["activity_at"]).alias("activity_at"),
        _opted_in("opted_in", schema["opted_in"]).alias("opted_in"),
    )
    # Platforms and versions have few distinct values: map the distinct ones, then join back, so
    # the regex work is done a few hundred times instead of once per row.
    plat = (
        lf.select("_plat")
        .unique()
        .with_columns(_key=platform_key(pl.col("_plat")))
        .with_columns(
            _canon=canonical_platform(pl.col("_key")), _unsup=is_unsupported(pl.col("_key"))
        )
        .drop("_key")
    )
    lf = lf.join(plat, on="_plat", how="left", nulls_equal=True, maintain_order="left")
    vkeys = ["_canon", "_os", "android_version_kind"]
    vers = (
        lf.select(vkeys)
        .unique()
        .with_columns(
            _osn=os_version_for(pl.col("_canon"), pl.col("_os"), pl.col("android_version_kind"))
        )
    )
    lf = lf.join(vers, on=vkeys, how="left", nulls_equal=True, maintain_order="left")
    lf = lf.with_columns(token_kind=token_kind(pl.col("device_token")))

    kind = pl.col("token_kind")
    cust = pl.col("customer_id")
    conds: dict[str, pl.Expr] = {
        "unsupported_platform": pl.col("_unsup"),
        "missing_customer_id": cust.is_null() | (cust == ""),
        "invalid_customer_id": cust.str.contains(r"[\x00-\x1f\x7f]")
        | (cust.str.len_chars() > MAX_CUSTOMER_ID_LEN),
        "missing_platform": pl.col("_plat").is_null() | (pl.col("_plat") == ""),
        "unknown_platform": pl.col("_canon").is_null(),
        "invalid_os_version": pl.col("_os").is_not_null() & pl.col("_osn").is_null(),
    }
    for k, (code, _) in KIND_REASON.items():
        hit = kind == k
        conds[code] = conds[code] | hit if code in conds else hit
    if not options.include_opted_out:
        conds["opted_out"] = pl.col("opted_in") == False  # noqa: E712  (null = unknown = opted in)
    if options.max_age_days:
        cutoff = now - timedelta(days=options.max_age_days)
        stale = pl.col("activity_at") < pl.lit(cutoff).cast(pl.Datetime("us", "UTC"))
        if options.max_age_platforms is not None:
            stale = stale & pl.col("_canon").is_in(list(options.max_age_platforms))
        conds["stale"] = stale

    details: dict[str, pl.Expr] = {
        "unsupported_platform": pl.col("_plat"),
        "opted_out": pl.lit("source marks the device unsubscribed"),
        "stale": pl.lit(f"last activity older than {options.max_age_days} days"),
        "missing_customer_id": pl.lit("customer_id is empty"),
        "invalid_customer_id": pl.lit(f"control characters or longer than {MAX_CUSTOMER_ID_LEN}"),
        "missing_platform": pl.lit("platform is empty"),
        "unknown_platform": pl.col("_plat"),
        "invalid_os_version": pl.col("_os"),
    }
    for code, text in KIND_REASON.values():
        if code != "email_or_phone_token":
            details[code] = pl.lit(text)
    details["email_or_phone_token"] = (
        pl.when(kind == "email")
        .then(pl.lit(KIND_REASON["email"][1]))
        .otherwise(pl.lit(KIND_REASON["phone"][1]))
    )

    new_reason = _reason_expr(conds)
    outcome_of = {code: REASONS[code][0].value for code in REASON_ORDER}
    lf = lf.with_columns(_new=new_reason)
    decided = pl.col("outcome").is_not_null()
    detail_chain = pl.lit(None, dtype=pl.String)
    for code in reversed(REASON_ORDER):
        detail_chain = pl.when(pl.col("_new") == code).then(details[code]).otherwise(detail_chain)
    android_ok = (pl.col("_canon") == "android") & pl.col("_osn").is_not_null()
    lf = lf.with_columns(
        outcome=pl.when(decided)
        .then(pl.col("outcome"))
        .otherwise(pl.col("_new").replace_strict(outcome_of, default=None, return_dtype=pl.String)),
        reason=pl.when(decided).then(pl.col("reason")).otherwise(pl.col("_new")),
        detail=pl.when(decided).then(pl.col("detail")).otherwise(detail_chain),
        platform=pl.coalesce(pl.col("_canon"), pl.col("_plat")),
        os_version=pl.coalesce(pl.col("_osn"), pl.col("_os")),
        # os_version now holds an API level: a second pass must not read it as a release
        android_version_kind=pl.when(android_ok)
        .then(pl.lit("api"))
        .otherwise(pl.col("android_version_kind")),
    )
    extra = [c for c in ("token_kind",) if c not in order]
    return lf.select(*order, *extra).collect()
