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

_S = "_state_"  # prefix of snapshot columns inside the queries here
_ELIGIBLE = "_eligible"
_SI = "_si"  # row of the token in the snapshot
_SLICE_ROWS = 1_000_000
# Below this many rows (both sides) the plain string join is faster (1M + 1M: 128 ms vs 240 ms);
# above it the hash join wins on both time and memory (see _state_rows).
_HASH_JOIN_MIN_ROWS = 4_000_000
REMOVED_COLUMNS = (
    "device_token", *PAYLOAD_COLUMNS, "accepted_at", "accepted_run_id", "last_error_reason",
    "last_error_at",
)  # fmt: skip


_STATE_COLUMNS = (*PAYLOAD_COLUMNS, "accepted_at", "last_error_at", "last_error_reason")


def _with_state(rows: pl.DataFrame, snapshot: pl.DataFrame, si: pl.Series) -> pl.DataFrame:
    """`rows` plus the snapshot values of each row's token (`_state_<column>`; null: unknown),
    `si` being the rows' snapshot indices from _state_rows."""
    state = snapshot.select(pl.col(c).gather(si).alias(_S + c) for c in _STATE_COLUMNS)
    return rows.hstack(state.get_columns())


def _state(col: str) -> pl.Expr:
    return pl.col(_S + col)


# Expressions over a frame from _with_state.
_KNOWN = _state("accepted_at").is_not_null()  # a token that only ever failed is still new
_SAME_CUSTOMER = pl.col("customer_id").cast(pl.String).eq_missing(_state("customer_id"))
_SAME_INFO = pl.all_horizontal(
    pl.col(c).cast(pl.String).eq_missing(_state(c)) for c in PAYLOAD_COLUMNS if c != "customer_id"
)
# A failure recorded at or after the last accept: Masivo may hold something else now (a timeout
# can still have been applied), so the row is sent again even if the payload looks the same.
_FAILED_SINCE = _state("last_error_at").is_not_null() & (
    _state("accepted_at").is_null() | (_state("last_error_at") >= _state("accepted_at"))
)


def _state_rows(frame: pl.DataFrame, snapshot: pl.DataFrame) -> pl.Series:
    """For each row of `frame`, the index of its token's snapshot row (UInt32; null: unknown).

    The join is on 64-bit hashes of the tokens, then every match is checked against the token
    itself, slice by slice: the snapshot holds each token once, so when the snapshot's hashes
    are distinct a row's only candidate is the one with its hash, and a match whose token
    differs (a collision) means the token is not in the state. Joining 10M 160-byte tokens as
    strings took 5.7 s and +1.9 GB; this 2.3 s + 0.6 s and +0.7 GB (bench file, 2 cores).
    Small runs use the string join, which is faster there. The payload columns are gathered
    later, one slice at a time, never as a joined copy.
    """
    if snapshot.is_empty():  # a first run: nothing to look up
        return pl.repeat(None, frame.height, dtype=pl.UInt32, eager=True).alias(_SI)
    tokens = frame.get_column("device_token").cast(pl.String)
    known = snapshot.get_column("device_token")
    if frame.height + snapshot.height < _HASH_JOIN_MIN_ROWS:
        return _state_rows_by_string(tokens, known)
    state = snapshot.select(
        pl.col("device_token").hash().alias("_h"),
        pl.int_range(pl.len(), dtype=pl.UInt32).alias(_SI),
    )
    if _any_shared(state.get_column("_h")):  # two state tokens share a hash
        return _state_rows_by_string(tokens, known)
    rows = tokens.hash().alias("_h").to_frame()
    candidates = rows.join(state, on="_h", how="left", maintain_order="left").get_column(_SI)
    if candidates.len() != frame.height:
        raise AssertionError("a join on distinct keys added rows")
    checked = [
        _confirmed(tokens.slice(start, _SLICE_ROWS), known, candidates.slice(start, _SLICE_ROWS))
        for start in range(0, frame.height, _SLICE_ROWS)
    ]
    return pl.concat(checked) if checked else candidates


def _any_shared(hashes: pl.Series) -> bool:
    ordered = hashes.sort()  # a radix sort: cheaper than is_duplicated's hash table
    return bool((ordered == ordered.shift(1)).any())


def _confirmed(tokens: pl.Series, known: pl.Series, candidates: pl.Series) -> pl.Series:
    """`candidates` where the snapshot token at that index is the row's token, else null."""
    same = (tokens == known.gather(candidates)).fill_null(False)
    return candidates.zip_with(same, pl.Series([None], dtype=pl.UInt32)).alias(_SI)


def _state_rows_by_string(tokens: pl.Series, known: pl.Series) -> pl.Series:
    """_state_rows joining on the tokens themselves (when two snapshot tokens share a hash)."""
    state = known.to_frame().with_columns(pl.int_range(pl.len(), dtype=pl.UInt32).alias(_SI))
    joined = tokens.to_frame().join(state, on="device_token", how="left", maintain_order="left")
    if joined.height != tokens.len():
        raise ValueError(
            "the state snapshot has more than one row for some device token; "
            "it is corrupt (reset the state or restore it from an export)"
        )
    return joined.get_column(_SI)


def diff(frame: pl.DataFrame, snapshot: pl.DataFrame, *, full_resync: bool = False) -> pl.DataFrame:
    """Add `change` (new|changed|unchanged) to eligible rows; decide unchanged rows as skipped.

    `frame` is the work frame after normalize + dedupe: eligible rows have a null outcome and
    at most one eligible row holds a given token. Decided rows pass through untouched (change
    null). Row order and count are preserved. With full_resync nothing is unchanged.
    """
    resend = pl.lit(True) if full_resync else ~(_SAME_CUSTOMER & _SAME_INFO)
    resend = resend | _FAILED_SINCE
    change_of = (
        pl.when(~pl.col(_ELIGIBLE))
        .then(pl.lit(None, pl.String))
        .when(~_KNOWN)
        .then(pl.lit("new"))
        .when(resend)
        .then(pl.lit("changed"))
        .otherwise(pl.lit("unchanged"))
        .alias("change")
    )
    rows = frame.select(
        pl.col("outcome").is_null().alias(_ELIGIBLE), "customer_id", *PAYLOAD_COLUMNS[1:]
    )
    si = _state_rows(frame, snapshot)
    # slice by slice: the gathered snapshot values of one slice at a time, not of every row
    change = pl.concat(
        [
            _with_state(
                rows.slice(start, _SLICE_ROWS), snapshot, si.slice(start, _SLICE_ROWS)
            ).select(change_of)["change"]
            for start in range(0, max(rows.height, 1), _SLICE_ROWS)
        ]
    )
    frame = frame.with_columns(change)
    if not (change == "unchanged").any():
        return frame  # nothing to decide (a first run): no copy of outcome and reason
    unchanged = pl.col("change") == "unchanged"
    reason = pl.col("reason") if "reason" in frame.columns else pl.lit(None, pl.String)
    return frame.with_columns(
        pl.when(unchanged).then(pl.lit("skipped")).otherwise(pl.col("outcome")).alias("outcome"),
        pl.when(unchanged).then(pl.lit("unchanged")).otherwise(reason).alias("reason"),
    )


def removed_tokens(frame: pl.DataFrame, snapshot: pl.DataFrame) -> pl.DataFrame:
    """Tokens Masivo accepted (per the state) that no input row carries any more.

    Any row counts as carrying its token, whatever its outcome: a token whose row is now
    invalid or opted out is still in the source. Reported only; nothing is deleted from Masivo.
    """
    if snapshot.is_empty():
        return snapshot.select(REMOVED_COLUMNS)
    # the token lookup diff makes, not an anti-join on the tokens themselves: at 10M rows
    # against a 10M-token state, 2.8 s and +0.5 GB instead of 3.5 s and +1.0 GB (the anti-join
    # set the peak memory of a whole plan)
    found = _state_rows(frame, snapshot).drop_nulls()
    carried = pl.repeat(False, snapshot.height, eager=True).scatter(found, True)
    return snapshot.filter(snapshot["accepted_at"].is_not_null() & ~carried).select(REMOVED_COLUMNS)


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
    rows = frame.filter(sendable).select("row_id", "device_token", *PAYLOAD_COLUMNS)
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
    present = _with_state(rows, snapshot, _state_rows(rows, snapshot)).select(
        pl.col("row_id").cast(pl.Int64),
        pl.col("device_token").cast(pl.String),
        status.alias("status"),
        pl.col("customer_id").cast(pl.String),
        _state("customer_id").alias("state_customer_id"),
        _state("last_error_reason").alias("last_error_reason"),
        _state("last_error_at").alias("last_error_at"),
        _state("accepted_at").alias("accepted_at"),
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
