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
    token_kind    see pipeline.normalize.tokens.TOKEN_KINDS (an Enum column, TOKEN_KIND_DTYPE)
    outcome, reason, detail   null outcome = still eligible; otherwise skipped/invalid + a reason
                  (outcome and reason are Enum columns: pipeline.outcomes.OUTCOME_DTYPE,
                  REASON_DTYPE)
    platform_raw, os_version_raw   the values as read, for the report

Missing model or osVersion is not an error: both are optional in Masivo's device_info, so the
sender omits the key (it never sends null or ""). Rows are never dropped or reordered, and a row
that already has an outcome keeps it, so normalizing twice equals normalizing once.

When a row has several problems, the first in REASON_ORDER wins: reasons that say "this row is not
meant to be sent" (unsupported platform, opted out, stale) come before data errors, so the invalid
counts are the rows somebody actually has to fix.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl

from pipeline.normalize.customers import (
    FINE,
    INVALID,
    MAX_CUSTOMER_ID_LEN,
    MISSING,
    customer_first,
    finish_customers,
)
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
    kind_names,
    token_first,
)
from pipeline.outcomes import OUTCOME_DTYPE, REASON_DTYPE, REASONS
from pipeline.sources.profiles import ANDROID_VERSION_KIND_DTYPE

__all__ = ["REASON_ORDER", "NormalizeOptions", "normalize"]

# precedence when a row has several problems (first wins)
REASON_ORDER = (
    "unsupported_platform", "opted_out", "stale",
    "missing_customer_id", "invalid_customer_id",
    "missing_device_token", "token_too_long", "email_or_phone_token", "expo_token",
    "webpush_endpoint", "apns_token_not_fcm", "malformed_token",
    "missing_platform", "unknown_platform", "invalid_os_version",
)  # fmt: skip

# what the reason bits of a row with no problem give (see _decide)
_NO_REASON = 16
assert len(REASON_ORDER) < _NO_REASON, "reasons are bits of a UInt16"

_TRUE = ["true", "t", "1", "yes", "y", "on", "opted_in", "subscribed"]
_FALSE = ["false", "f", "0", "no", "n", "off", "opted_out", "unsubscribed"]


# fixed detail texts per reason (the others carry the raw value)
_DETAILS = {
    "opted_out": "source marks the device unsubscribed",
    "missing_customer_id": "customer_id is empty",
    "invalid_customer_id": f"control characters or longer than {MAX_CUSTOMER_ID_LEN}",
    "missing_platform": "platform is empty",
    **{code: text for code, text in KIND_REASON.values()},
    "email_or_phone_token": KIND_REASON["email"][1],  # phone rows get theirs in _decide
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
        "opted_in": pl.String, "android_version_kind": ANDROID_VERSION_KIND_DTYPE,
        "platform": pl.String,
        "customer_id": pl.String, "device_token": pl.String,
        "outcome": OUTCOME_DTYPE, "reason": REASON_DTYPE, "detail": pl.String,
    }  # fmt: skip
    missing = [pl.lit(None, dtype=t).alias(c) for c, t in need.items() if c not in frame.columns]
    out = frame.with_columns(missing) if missing else frame
    raw = []
    if "platform_raw" not in out.columns:
        raw.append(pl.col("platform").alias("platform_raw"))
    if "os_version_raw" not in out.columns:
        raw.append(pl.col("os_version").alias("os_version_raw"))
    return out.with_columns(raw) if raw else out


def _bit(code: str) -> int:
    return 1 << REASON_ORDER.index(code)


def _flag(mask: pl.Expr, code: str) -> pl.Expr:
    """UInt16: the reason's bit where `mask` holds, else 0 (null = does not hold)."""
    return mask.fill_null(False).cast(pl.UInt16) * _bit(code)


def _decided(frame: pl.DataFrame) -> bool:
    """Whether some row already has an outcome (e.g. a second pass); arrow arrays keep their
    null count, so this reads no values."""
    return frame["outcome"].null_count() < frame.height


def normalize(frame: pl.DataFrame, options: NormalizeOptions | None = None) -> pl.DataFrame:
    """Return the frame with clean values and an outcome for every row that must not be sent."""
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
    ts_first, ts_final = activity_stages("activity_at", schema["activity_at"], frame["activity_at"])

    # Stage 1, per row: the cleaned values, value indices and flags, as a frame of their own.
    # Its expressions are independent, so polars evaluates them in parallel. It is collected so
    # that the few customer ids, tokens and timestamps off the fast path can be finished on
    # their own (see finish_customers, finish_tokens, finish_activity). The value indices
    # `_pi` / `_oi` are its columns: every later lookup is a gather by them.
    rows = (
        frame.lazy()
        .select(
            "device_token",
            "activity_at",
            "android_version_kind",
            pl.col("customer_id").cast(pl.String),
            cleaned(frame["model"], distinct["model"]).alias("model"),
            opted_in.alias("opted_in"),
            plat_idx.alias("_pi"),
            os_idx.alias("_oi"),
            (pl.col("android_version_kind") == "api").alias("_api"),
            *customer_first("customer_id"),
            ts_first,
            *token_first("device_token"),
        )
        .collect()
    )
    rows = finish_customers(rows, "customer_id")
    rows = finish_tokens(rows, "device_token")
    activity = finish_activity(rows, "activity_at", ts_final)
    # Stage 2 reads only small columns, each in one chunk: a query over columns chunked unlike
    # each other first copies every column it reads into one chunk (~10 ms per million rows for
    # the whole work frame, and as many fresh pages)
    work = rows[["_pi", "_oi", "_tk", "_cc", "_api", "opted_in", "android_version_kind"]]
    work = work.with_columns(activity).rechunk()
    decisions = _decide(work, options, now, plat_table, os_dense, os_trimmed).collect()

    if _decided(frame):
        # rows decided before normalize (e.g. a second pass) keep their outcome, reason and detail
        decided = ("outcome", "reason", "detail")
        # a hand-built frame may hold them as strings: a value outside the tables fails here
        was = decisions.hstack(
            [frame[c].cast(decisions.schema[c]).alias(f"_was_{c}") for c in decided]
        )
        before = pl.col("_was_outcome").is_not_null()
        decisions = was.select(
            *(
                pl.when(before).then(pl.col(f"_was_{c}")).otherwise(pl.col(c)).alias(c)
                for c in decided
            ),
            pl.exclude(*decided, *(f"_was_{c}" for c in decided)),
        )
    # every new column as a Series: no query over the whole (unevenly chunked) frame
    out = frame.with_columns(
        rows["customer_id"],
        rows["device_token"],
        rows["model"],
        rows["opted_in"],
        activity,
        *decisions.get_columns(),
    )
    return out[[*order, *(c for c in ("token_kind",) if c not in order)]]


def _decide(
    work: pl.DataFrame,
    options: NormalizeOptions,
    now: datetime,
    plat_table: pl.DataFrame,
    os_dense: pl.DataFrame,
    os_trimmed: pl.Series,
) -> pl.LazyFrame:
    """Stage 2: outcome, reason, detail and the final platform, os_version, android_version_kind
    and token_kind of every row, from the small columns of stage 1 and the lookup tables."""
    pi, kind = pl.col("_pi"), pl.col("_tk")
    pc = take(plat_table["code"], pi)
    lf = work.lazy().with_columns(_pc=pc, _ok=os_key(pl.col("_oi"), pc, pl.col("_api")))
    pc, key = pl.col("_pc"), pl.col("_ok")

    # Each problem is a bit, 1 << its REASON_ORDER index, and the reason is the lowest bit set
    # (the first in REASON_ORDER wins): an OR of a few UInt16 columns, each gathered from a table
    # where it can be (token kind, platform value, os key), then its trailing zeros. A
    # min_horizontal over nullable reason indices cost ~5x that (~27 ms CPU per million rows).
    kind_bits = pl.Series(
        [_bit(KIND_REASON[k][0]) if k in KIND_REASON else 0 for k in TOKEN_KINDS], dtype=pl.UInt16
    )
    # per platform value: unsupported, missing (blank), unknown; the last slot is a null platform
    code = pl.col("code")
    plat_bits = plat_table.select(
        pl.when(code == UNSUPPORTED)
        .then(_bit("unsupported_platform"))
        .when(code.is_null() & (pl.col("trimmed") == ""))
        .then(_bit("missing_platform"))
        .when(code.is_null())
        .then(_bit("unknown_platform"))
        .otherwise(0)
        .cast(pl.UInt16)
    ).to_series()
    plat_bits = plat_bits.append(pl.Series([_bit("missing_platform")], dtype=pl.UInt16))
    by_code = {FINE: 0, MISSING: _bit("missing_customer_id"), INVALID: _bit("invalid_customer_id")}
    cust_bits = pl.Series([by_code[c] for c in sorted(by_code)], dtype=pl.UInt16)
    os_bits = os_dense.select(
        pl.when("invalid").then(_bit("invalid_os_version")).otherwise(0).cast(pl.UInt16)
    ).to_series()
    bits = [
        take(kind_bits, kind),
        take(plat_bits, pi.fill_null(len(plat_bits) - 1)),
        take(os_bits, key).fill_null(0),  # a null os value has no key
        take(cust_bits, pl.col("_cc")),
    ]
    if not options.include_opted_out:
        bits.append(_flag(~pl.col("opted_in"), "opted_out"))  # null = unknown = opted in
    if options.max_age_days:
        cutoff = now - timedelta(days=options.max_age_days)
        stale = pl.col("activity_at") < pl.lit(cutoff).cast(pl.Datetime("us", "UTC"))
        if options.max_age_platforms is not None:
            codes = [c for c, p in CODE_TO_PLATFORM.items() if p in options.max_age_platforms]
            stale = stale & pc.is_in(codes)
        bits.append(_flag(stale, "stale"))
    # UInt32 REASON_ORDER index, or _NO_REASON (a UInt16 0 has 16 trailing zeros)
    lf = lf.with_columns(_r=pl.reduce(operator.or_, bits).bitwise_trailing_zeros())
    r = pl.col("_r")

    reason_of = dict(enumerate(REASON_ORDER))
    outcome_of = {i: REASONS[code][0].value for i, code in reason_of.items()}
    text_of = {i: _DETAILS[code] for i, code in reason_of.items() if code in _DETAILS}
    text_of[REASON_ORDER.index("stale")] = f"last activity older than {options.max_age_days} days"
    # by `_r`: a value per reason, then nulls up to and at _NO_REASON
    by_reason = range(_NO_REASON + 1)
    # detail in one gather from [fixed texts by `_r`, the phone text, trimmed platform values,
    # trimmed os values]: unsupported/unknown platform carry the raw platform, an invalid os
    # version the raw os value (an invalid_os_version row always has a non-null os key)
    phone_at = _NO_REASON + 1
    n_fixed = phone_at + 1
    details = (
        pl.Series([text_of.get(i) for i in by_reason] + [KIND_REASON["phone"][1]], dtype=pl.String)
        .append(plat_table["trimmed"])
        .append(os_trimmed)
    )
    raw_value = [REASON_ORDER.index(c) for c in ("unsupported_platform", "unknown_platform")]
    detail_at = (
        pl.when(r.is_in(raw_value))
        .then(pi + n_fixed)
        .when(r == REASON_ORDER.index("invalid_os_version"))
        .then(pl.col("_oi") + (n_fixed + plat_table.height))
        .when((r == REASON_ORDER.index("email_or_phone_token")) & (kind == KIND_CODE["phone"]))
        .then(pl.lit(phone_at, dtype=pl.UInt32))
        .otherwise(r)
    )
    detail = take(details, detail_at)
    new_outcome = take(pl.Series([outcome_of.get(i) for i in by_reason], dtype=OUTCOME_DTYPE), r)
    new_reason = take(pl.Series([reason_of.get(i) for i in by_reason], dtype=REASON_DTYPE), r)
    return lf.select(
        outcome=new_outcome,
        reason=new_reason,
        detail=detail,
        # per distinct value: android / ios / web, or the trimmed raw value
        platform=take(plat_table["final"], pi),
        os_version=take(os_dense["out"], key),
        # os_version now holds an API level: a second pass must not read it as a release
        android_version_kind=pl.when(take(os_dense["api"], key).fill_null(False))
        .then(pl.lit("api", dtype=ANDROID_VERSION_KIND_DTYPE))
        .otherwise(pl.col("android_version_kind").cast(ANDROID_VERSION_KIND_DTYPE)),
        token_kind=kind_names(kind),
    )
