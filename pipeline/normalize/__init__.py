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

from pipeline.normalize.lookups import (
    CODE_TO_PLATFORM,
    UNSUPPORTED,
    cleaned,
    distinct_values,
    os_key,
    os_table,
    platform_table,
    take,
    value_index,
)
from pipeline.normalize.timestamps import activity_stages, finish_activity
from pipeline.normalize.tokens import (
    KIND_CODE,
    KIND_REASON,
    TOKEN_KINDS,
    finish_tokens,
    token_first,
)
from pipeline.outcomes import REASONS

__all__ = ["REASON_ORDER", "NormalizeOptions", "normalize", "normalize_lazy"]

MAX_CUSTOMER_ID_LEN = 1024  # ids are free text; this only stops absurd values

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


# fixed detail texts per reason (the others carry the raw value)
_DETAILS = {
    "opted_out": "source marks the device unsubscribed",
    "missing_customer_id": "customer_id is empty",
    "invalid_customer_id": f"control characters or longer than {MAX_CUSTOMER_ID_LEN}",
    "missing_platform": "platform is empty",
    **{code: text for code, text in KIND_REASON.values()},
    "email_or_phone_token": KIND_REASON["email"][1],  # phone rows get theirs in normalize_lazy
}


@dataclass(frozen=True)
class NormalizeOptions:
    max_age_days: int | None = (
        270  # rows whose last activity is older are skipped as stale; 0/None = off
    )
    # platforms the age limit applies to; None = all. FCM expires *Android* tokens after 270 days.
    max_age_platforms: tuple[str, ...] | None = ("android",)
    include_opted_out: bool = False  # True = send rows the source marks as unsubscribed
    now: datetime | None = None  # the reference time for staleness (tests pin it)


def _opted_in(values: pl.Series, distinct: pl.Series) -> pl.Expr:
    """Expr over the String column `values.name`: True / False / null (unknown), per distinct value
    (a flag column has a handful; trimming and lower-casing every row cost ~30 ms per million)."""
    idx, distinct = value_index(values, distinct)
    if distinct.is_empty():
        return pl.lit(None, dtype=pl.Boolean)
    v = pl.col("v").str.strip_chars().str.to_lowercase()
    table = distinct.to_frame("v").select(
        pl.when(v.is_in(_TRUE)).then(True).when(v.is_in(_FALSE)).then(False).otherwise(None)
    )
    return take(table.to_series(), idx)


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


def normalize(frame: pl.DataFrame, options: NormalizeOptions | None = None) -> pl.DataFrame:
    """Return the frame with clean values and an outcome for every row that must not be sent."""
    return normalize_lazy(frame, options).collect()


def normalize_lazy(frame: pl.DataFrame, options: NormalizeOptions | None = None) -> pl.LazyFrame:
    """The query behind `normalize`, not yet collected (for profiling, or fusing with later stages)."""
    options = options or NormalizeOptions()
    frame = _ensure_columns(frame)
    order = list(frame.columns)
    schema = frame.schema
    now = options.now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)

    # low-cardinality columns are classified once per distinct value (see lookups.py)
    flag = schema["opted_in"] == pl.Boolean
    low = ["platform", "os_version", "model", *([] if flag else ["opted_in"])]
    frame = frame.with_columns(pl.col(c).cast(pl.String) for c in low)
    distinct = distinct_values(frame, low)
    opted_in = pl.col("opted_in") if flag else _opted_in(frame["opted_in"], distinct["opted_in"])
    plat_idx, plat_table = platform_table(frame["platform"], distinct["platform"])
    os_idx, os_dense, os_trimmed = os_table(frame["os_version"], distinct["os_version"])
    cust_raw = frame["customer_id"].cast(pl.String)
    # stripping never lengthens a value: when no raw id is that long, no row needs len_chars
    may_be_long = (cust_raw.str.len_bytes().max() or 0) > MAX_CUSTOMER_ID_LEN

    ts_first, ts_final = activity_stages("activity_at", schema["activity_at"], frame["activity_at"])
    # Stages of independent expressions: polars evaluates the expressions of one stage in
    # parallel, so fewer, wider stages keep both cores busy. The first stage is collected (the
    # streaming engine splits even a single expression over the cores) so that the few tokens
    # off the fast path can be classified on their own (see finish_tokens). The value indices
    # `_pi` / `_oi` are columns of that stage: every later lookup is a gather by them.
    frame = (
        frame.lazy()
        .with_columns(
            pl.col("customer_id").cast(pl.String).str.strip_chars().alias("customer_id"),
            cleaned(frame["model"], distinct["model"]).alias("model"),
            opted_in.alias("opted_in"),
            plat_idx.alias("_pi"),
            os_idx.alias("_oi"),
            ts_first,
            *token_first("device_token"),
        )
        .collect()
    )
    frame = finish_tokens(frame, "device_token")
    frame = frame.with_columns(finish_activity(frame, "activity_at", ts_final))

    pi, kind, cust = pl.col("_pi"), pl.col("_tk"), pl.col("customer_id")
    pc = take(plat_table["code"], pi)
    api_kind = pl.col("android_version_kind").cast(pl.String) == "api"
    lf = frame.lazy().with_columns(_pc=pc, _ok=os_key(pl.col("_oi"), pc, api_kind))
    pc, key = pl.col("_pc"), pl.col("_ok")

    # The reason is the smallest REASON_ORDER index among the row's problems (the first wins):
    # min_horizontal over a few small-int columns, each from a table where it can be (token kind,
    # platform value, os key), costs a fraction of a when/then chain over every reason.
    def n(code: str) -> pl.Expr:
        return pl.lit(REASON_ORDER.index(code), dtype=pl.UInt8)

    def table(values: list[int | None]) -> pl.Series:
        return pl.Series(values, dtype=pl.UInt8)

    kind_reason = table(
        [REASON_ORDER.index(KIND_REASON[k][0]) if k in KIND_REASON else None for k in TOKEN_KINDS]
    )
    # per platform value: unsupported, missing (blank), unknown; the last slot is a null platform
    plat_reason = plat_table.select(
        pl.when(pl.col("code") == UNSUPPORTED)
        .then(n("unsupported_platform"))
        .when(pl.col("code").is_null() & (pl.col("trimmed") == ""))
        .then(n("missing_platform"))
        .when(pl.col("code").is_null())
        .then(n("unknown_platform"))
    ).to_series()
    plat_reason = plat_reason.append(table([REASON_ORDER.index("missing_platform")]))
    os_reason = os_dense.select(pl.when("invalid").then(n("invalid_os_version"))).to_series()
    cust_bad = cust.str.contains_any([chr(c) for c in range(0x20)] + ["\x7f"])
    if may_be_long:
        cust_bad = cust_bad | (cust.str.len_chars() > MAX_CUSTOMER_ID_LEN)
    parts = [
        take(kind_reason, kind),
        take(plat_reason, pi.fill_null(len(plat_reason) - 1)),
        take(os_reason, key),
        # contains_any of the 33 single-byte controls: ~14 ms per million ids, the regex
        # class [\x00-\x1f\x7f] ~22 ms (same matches: these bytes never occur inside a UTF-8
        # multi-byte sequence)
        pl.when(cust.is_null() | (cust == ""))
        .then(n("missing_customer_id"))
        .when(cust_bad)
        .then(n("invalid_customer_id")),
    ]
    if not options.include_opted_out:
        # null = unknown = opted in
        parts.append(pl.when(pl.col("opted_in") == False).then(n("opted_out")))  # noqa: E712
    if options.max_age_days:
        cutoff = now - timedelta(days=options.max_age_days)
        stale = pl.col("activity_at") < pl.lit(cutoff).cast(pl.Datetime("us", "UTC"))
        if options.max_age_platforms is not None:
            codes = [c for c, p in CODE_TO_PLATFORM.items() if p in options.max_age_platforms]
            stale = stale & pc.is_in(codes)
        parts.append(pl.when(stale).then(n("stale")))
    lf = lf.with_columns(_r=pl.min_horizontal(parts))
    r = pl.col("_r")

    reason_of = dict(enumerate(REASON_ORDER))
    outcome_of = {i: REASONS[code][0].value for i, code in reason_of.items()}
    text_of = {i: _DETAILS[code] for i, code in reason_of.items() if code in _DETAILS}
    text_of[REASON_ORDER.index("stale")] = f"last activity older than {options.max_age_days} days"
    # detail in one gather from [fixed texts by reason, the phone text, trimmed platform values,
    # trimmed os values]: unsupported/unknown platform carry the raw platform, an invalid os
    # version the raw os value (an invalid_os_version row always has a non-null os key)
    n_fixed = len(REASON_ORDER) + 1
    details = (
        pl.Series(
            [text_of.get(i) for i in range(len(REASON_ORDER))] + [KIND_REASON["phone"][1]],
            dtype=pl.String,
        )
        .append(plat_table["trimmed"])
        .append(os_trimmed)
    )
    raw_value = [REASON_ORDER.index(c) for c in ("unsupported_platform", "unknown_platform")]
    r32 = r.cast(pl.UInt32)
    detail_at = (
        pl.when(r.is_in(raw_value))
        .then(pi + n_fixed)
        .when(r == REASON_ORDER.index("invalid_os_version"))
        .then(pl.col("_oi") + (n_fixed + plat_table.height))
        .when((r == REASON_ORDER.index("email_or_phone_token")) & (kind == KIND_CODE["phone"]))
        .then(pl.lit(len(REASON_ORDER), dtype=pl.UInt32))
        .otherwise(r32)
    )
    detail = take(details, detail_at)
    new_outcome = take([outcome_of[i] for i in range(len(REASON_ORDER))], r)
    new_reason = take(list(REASON_ORDER), r)
    if frame["outcome"].null_count() < frame.height:
        # rows decided before normalize (e.g. a second pass) keep their outcome, reason and detail
        decided = pl.col("outcome").is_not_null()
        new_outcome = pl.when(decided).then(pl.col("outcome")).otherwise(new_outcome)
        new_reason = pl.when(decided).then(pl.col("reason")).otherwise(new_reason)
        detail = pl.when(decided).then(pl.col("detail")).otherwise(detail)
    lf = lf.with_columns(
        outcome=new_outcome,
        reason=new_reason,
        detail=detail,
        # per distinct value: android / ios / web, or the trimmed raw value
        platform=take(plat_table["final"], pi),
        os_version=take(os_dense["out"], key),
        # os_version now holds an API level: a second pass must not read it as a release
        android_version_kind=pl.when(take(os_dense["api"], key).fill_null(False))
        .then(pl.lit("api"))
        .otherwise(pl.col("android_version_kind")),
        token_kind=take(list(TOKEN_KINDS), kind),
    )
    extra = [c for c in ("token_kind",) if c not in order]
    return lf.select(*order, *extra)
