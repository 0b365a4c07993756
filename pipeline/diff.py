"""Diff: which eligible rows must be sent, against the state store's snapshot.

A row is `new` when Masivo never accepted its token, `changed` when the customer or the
device_info differs from what Masivo last accepted (or the token failed since), and `unchanged`
otherwise; unchanged rows are decided here as skipped/unchanged and are not sent.

Why columns and not a hash: the snapshot keeps the accepted payload itself, so after a join on
the token the comparison is exact, null-safe (`eq_missing`: a null model equals a null model),
says *what* changed, and cannot silently flip when polars changes its hash functions (it does
not promise stable hashes across versions). Joining on the token alone and comparing four
columns costs about what a key+hash anti-join does (see bench/state_bench.py).
"""

from __future__ import annotations

import polars as pl

from pipeline.state import PAYLOAD_COLUMNS

_S = "_state_"  # prefix of snapshot columns inside the joins here
_ELIGIBLE = "_eligible"


def _state_side(snapshot: pl.DataFrame) -> pl.DataFrame:
    return snapshot.select(
        "device_token",
        *(pl.col(c).alias(_S + c) for c in PAYLOAD_COLUMNS),
        pl.col("accepted_at").alias(_S + "accepted_at"),
        pl.col("last_error_at").alias(_S + "last_error_at"),
        pl.col("last_error_reason").alias(_S + "last_error_reason"),
    )


def _join_state(keys: pl.DataFrame, snapshot: pl.DataFrame) -> pl.DataFrame:
    """Left join on the token, keeping the left order and row count.

    The snapshot holds one row per token, so the join is many-to-one and cannot duplicate
    rows, even where non-eligible rows share a token; the height check makes that a checked
    fact rather than an assumption (a corrupt snapshot must not multiply rows).
    """
    joined = keys.join(_state_side(snapshot), on="device_token", how="left", maintain_order="left")
    if joined.height != keys.height:
        raise ValueError(
            "the state snapshot has more than one row for some device token; "
            "it is corrupt (reset the state or restore it from an export)"
        )
    return joined


_KNOWN = pl.col(_S + "accepted_at").is_not_null()
_SAME_CUSTOMER = pl.col("customer_id").eq_missing(pl.col(_S + "customer_id"))
_SAME_INFO = pl.all_horizontal(
    pl.col(c).eq_missing(pl.col(_S + c)) for c in PAYLOAD_COLUMNS if c != "customer_id"
)
# A failure recorded at or after the last accept: Masivo may hold something else now (a timeout
# can still have been applied), so the row is sent again even if the payload looks the same.
_FAILED_SINCE = pl.col(_S + "last_error_at").is_not_null() & (
    pl.col(_S + "accepted_at").is_null()
    | (pl.col(_S + "last_error_at") >= pl.col(_S + "accepted_at"))
)


def _keys(frame: pl.DataFrame, eligible: pl.Expr) -> pl.DataFrame:
    return frame.select(
        pl.col("device_token").cast(pl.String),
        *(pl.col(c).cast(pl.String) for c in PAYLOAD_COLUMNS),
        eligible.alias(_ELIGIBLE),
    )


def diff(frame: pl.DataFrame, snapshot: pl.DataFrame, *, full_resync: bool = False) -> pl.DataFrame:
    """Add `change` (new|changed|unchanged) to eligible rows; decide unchanged rows as skipped.

    `frame` is the work frame after normalize + dedupe: eligible rows have a null outcome and
    at most one eligible row holds a given token. Decided rows pass through untouched (change
    null). Row order and count are preserved. With full_resync nothing is unchanged.
    """
    keys = _keys(frame, pl.col("outcome").is_null())
    joined = _join_state(keys, snapshot)
    resend = ~(_SAME_CUSTOMER & _SAME_INFO) | _FAILED_SINCE
    if full_resync:
        resend = pl.lit(True)
    change = joined.select(
        pl.when(~pl.col(_ELIGIBLE))
        .then(pl.lit(None, pl.String))
        .when(~_KNOWN)
        .then(pl.lit("new"))
        .when(resend)
        .then(pl.lit("changed"))
        .otherwise(pl.lit("unchanged"))
        .alias("change")
    ).to_series()
    unchanged = pl.col("change") == "unchanged"
    reason = pl.col("reason") if "reason" in frame.columns else pl.lit(None, pl.String)
    return frame.with_columns(change).with_columns(
        pl.when(unchanged).then(pl.lit("skipped")).otherwise(pl.col("outcome")).alias("outcome"),
        pl.when(unchanged).then(pl.lit("unchanged")).otherwise(reason).alias("reason"),
    )


def removed_tokens(frame: pl.DataFrame, snapshot: pl.DataFrame) -> pl.DataFrame:
    """Tokens Masivo accepted (per the state) that no input row carries any more.

    Any row counts as carrying its token, whatever its outcome: a token whose row is now
    invalid or opted out is still in the source. Reported only; nothing is deleted from Masivo.
    """
    source = frame.select(pl.col("device_token").cast(pl.String)).drop_nulls()
    return (
        snapshot.filter(pl.col("accepted_at").is_not_null())
        .join(source, on="device_token", how="anti")
        .select(
            "device_token",
            *PAYLOAD_COLUMNS,
            "accepted_at",
            "accepted_run_id",
            "last_error_reason",
            "last_error_at",
        )
    )


RECONCILE_STATUSES: dict[str, str] = {
    "in_sync": "Masivo holds exactly this customer and device_info.",
    "pending_new": "Masivo never accepted this token; it will be sent.",
    "pending_changed": "device_info differs from what Masivo accepted; it will be sent.",
    "moved_customer": "The token now belongs to another customer; it will be sent.",
    "failed_last_time": "The last attempt failed (see last_error_reason); it will be sent again.",
    "removed_from_source": "Masivo accepted this token but no input row has it any more.",
}


def reconcile(frame: pl.DataFrame, snapshot: pl.DataFrame) -> pl.DataFrame:
    """Source vs state, one row per sendable source row plus one per removed token.

    Sendable rows are those still eligible (outcome null) or already diffed as unchanged.
    Columns: row_id, device_token, status, customer_id, state_customer_id, last_error_reason,
    last_error_at, accepted_at. `status` is a key of RECONCILE_STATUSES.
    """
    sendable = pl.col("outcome").is_null() | (pl.col("reason") == "unchanged")
    rows = frame.filter(sendable)
    joined = _join_state(
        _keys(rows, pl.lit(True)).with_columns(rows["row_id"].cast(pl.Int64)), snapshot
    )
    status = (
        pl.when(_FAILED_SINCE)
        .then(pl.lit("failed_last_time"))
        .when(~_KNOWN)
        .then(pl.lit("pending_new"))
        .when(~_SAME_CUSTOMER)
        .then(pl.lit("moved_customer"))
        .when(~_SAME_INFO)
        .then(pl.lit("pending_changed"))
        .otherwise(pl.lit("in_sync"))
    )
    present = joined.select(
        "row_id",
        "device_token",
        status.alias("status"),
        "customer_id",
        pl.col(_S + "customer_id").alias("state_customer_id"),
        pl.col(_S + "last_error_reason").alias("last_error_reason"),
        pl.col(_S + "last_error_at").alias("last_error_at"),
        pl.col(_S + "accepted_at").alias("accepted_at"),
    )
    removed = removed_tokens(frame, snapshot).select(
        pl.lit(None, pl.Int64).alias("row_id"),
        "device_token",
        pl.lit("removed_from_source").alias("status"),
        pl.lit(None, pl.String).alias("customer_id"),
        pl.col("customer_id").alias("state_customer_id"),
        "last_error_reason",
        "last_error_at",
        "accepted_at",
    )
    return pl.concat([present, removed], how="vertical")
