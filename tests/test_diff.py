"""diff / removed_tokens / reconcile against a state snapshot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.diff import RECONCILE_STATUSES, diff, reconcile, removed_tokens
from pipeline.state import SNAPSHOT_SCHEMA

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def work_frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    """A minimal work frame after normalize + dedupe (columns of docs/architecture.md)."""
    full = [
        {
            "row_id": i,
            "customer_id": "c1",
            "platform": "android",
            "model": "Pixel",
            "os_version": "34",
            "outcome": None,
            "reason": None,
            "detail": None,
        }
        | r
        for i, r in enumerate(rows)
    ]
    schema = {
        "row_id": pl.Int64,
        "device_token": pl.String,
        "customer_id": pl.String,
        "platform": pl.String,
        "model": pl.String,
        "os_version": pl.String,
        "outcome": pl.String,
        "reason": pl.String,
        "detail": pl.String,
    }
    return pl.DataFrame(full, schema=schema)


def snapshot(rows: list[dict[str, object]]) -> pl.DataFrame:
    base = {
        "customer_id": "c1",
        "platform": "android",
        "model": "Pixel",
        "os_version": "34",
        "accepted_at": T0,
        "accepted_run_id": "r0",
    }
    return pl.DataFrame([base | r for r in rows], schema=SNAPSHOT_SCHEMA)


def changes(out: pl.DataFrame) -> dict[str, str | None]:
    return dict(zip(out["device_token"], out["change"], strict=True))


def test_new_changed_unchanged_and_moved() -> None:
    frame = work_frame(
        [
            {"device_token": "same"},
            {"device_token": "fresh"},
            {"device_token": "moved", "customer_id": "c2"},
            {"device_token": "upgraded", "os_version": "35"},
            {"device_token": "remodel", "model": "Pixel 8"},
        ]
    )
    snap = snapshot([{"device_token": t} for t in ("same", "moved", "upgraded", "remodel")])
    out = diff(frame, snap)
    assert changes(out) == {
        "same": "unchanged",
        "fresh": "new",
        "moved": "changed",
        "upgraded": "changed",
        "remodel": "changed",
    }
    assert out.filter(pl.col("change") == "unchanged").select("outcome", "reason").row(0) == (
        "skipped",
        "unchanged",
    )
    assert out.filter(pl.col("change") != "unchanged")["outcome"].null_count() == 4


def test_null_equals_null_but_not_a_value() -> None:
    frame = work_frame(
        [
            {"device_token": "both_null", "model": None, "os_version": None},
            {"device_token": "now_null", "model": None},
            {"device_token": "was_null", "model": "Pixel"},
        ]
    )
    snap = snapshot(
        [
            {"device_token": "both_null", "model": None, "os_version": None},
            {"device_token": "now_null", "model": "Pixel"},
            {"device_token": "was_null", "model": None},
        ]
    )
    assert changes(diff(frame, snap)) == {
        "both_null": "unchanged",
        "now_null": "changed",
        "was_null": "changed",
    }


def test_failed_or_aborted_since_last_accept_is_sent_again() -> None:
    frame = work_frame(
        [
            {"device_token": "failed_after"},
            {"device_token": "failed_before"},
            {"device_token": "never_accepted"},
        ]
    )
    snap = snapshot(
        [
            {
                "device_token": "failed_after",
                "last_error_reason": "timeout",
                "last_error_at": T0 + timedelta(days=1),
            },
            {
                "device_token": "failed_before",
                "last_error_reason": "interrupted",
                "last_error_at": T0 - timedelta(days=1),
            },
            {
                "device_token": "never_accepted",
                "customer_id": None,
                "platform": None,
                "model": None,
                "os_version": None,
                "accepted_at": None,
                "accepted_run_id": None,
                "last_error_reason": "customer_not_found",
                "last_error_at": T0,
            },
        ]
    )
    assert changes(diff(frame, snap)) == {
        "failed_after": "changed",
        "failed_before": "unchanged",
        "never_accepted": "new",
    }


def test_full_resync_sends_everything_eligible() -> None:
    frame = work_frame([{"device_token": "same"}, {"device_token": "fresh"}])
    out = diff(frame, snapshot([{"device_token": "same"}]), full_resync=True)
    assert changes(out) == {"same": "changed", "fresh": "new"}
    assert out["outcome"].null_count() == 2


def test_decided_rows_pass_through_and_count_and_order_are_kept() -> None:
    frame = work_frame(
        [
            {"device_token": "dup", "outcome": "skipped", "reason": "duplicate_token"},
            {"device_token": "dup"},  # the winner
            {"device_token": "dup", "outcome": "skipped", "reason": "duplicate_token"},
            {"device_token": None, "outcome": "invalid", "reason": "missing_device_token"},
            {"device_token": "bad", "outcome": "invalid", "reason": "malformed_token"},
        ]
    )
    out = diff(frame, snapshot([{"device_token": "dup"}, {"device_token": "bad"}]))
    assert out.height == frame.height
    assert out["row_id"].to_list() == frame["row_id"].to_list()
    assert out["change"].to_list() == [None, "unchanged", None, None, None]
    assert out["reason"].to_list() == [
        "duplicate_token",
        "unchanged",
        "duplicate_token",
        "missing_device_token",
        "malformed_token",
    ]
    assert out.drop("change", "outcome", "reason").equals(frame.drop("outcome", "reason"))


def test_duplicate_tokens_in_snapshot_are_refused() -> None:
    frame = work_frame([{"device_token": "a"}])
    try:
        diff(frame, snapshot([{"device_token": "a"}, {"device_token": "a"}]))
    except ValueError as exc:
        assert "corrupt" in str(exc)
    else:
        raise AssertionError("expected ValueError")


def test_empty_state_everything_new() -> None:
    frame = work_frame([{"device_token": "a"}, {"device_token": "b"}])
    out = diff(frame, pl.DataFrame(schema=SNAPSHOT_SCHEMA))
    assert out["change"].to_list() == ["new", "new"]


def test_removed_tokens_counts_any_source_row_and_only_accepted_state() -> None:
    frame = work_frame(
        [{"device_token": "kept"}, {"device_token": "now_invalid", "outcome": "invalid"}]
    )
    snap = snapshot(
        [
            {"device_token": "kept"},
            {"device_token": "now_invalid"},
            {"device_token": "gone", "customer_id": "c7"},
            {"device_token": "failed_only", "accepted_at": None, "customer_id": None},
        ]
    )
    removed = removed_tokens(frame, snap)
    assert removed["device_token"].to_list() == ["gone"]
    assert removed["customer_id"].to_list() == ["c7"]


@pytest.mark.parametrize("min_rows", [0, 4_000_000])  # the hash join of big runs, the string join
def test_removed_tokens_match_an_anti_join(monkeypatch, min_rows: int) -> None:
    import pipeline.diff as diff_module

    monkeypatch.setattr(diff_module, "_SLICE_ROWS", 7)
    monkeypatch.setattr(diff_module, "_HASH_JOIN_MIN_ROWS", min_rows)
    # repeated and missing source tokens; state tokens accepted or only ever failed
    tokens = [f"tok{i % 37}" if i % 5 else None for i in range(200)]
    frame = work_frame([{"device_token": t} for t in tokens])
    state = [{"device_token": f"tok{i}"} for i in range(0, 60, 2)]
    state += [{"device_token": f"tok{i}", "accepted_at": None} for i in range(61, 70, 2)]
    snap = snapshot(state)
    expected = (
        snap.filter(pl.col("accepted_at").is_not_null())
        .join(frame.select("device_token").drop_nulls(), on="device_token", how="anti")
        .select(diff_module.REMOVED_COLUMNS)
    )
    removed = removed_tokens(frame, snap)
    assert removed.equals(expected)
    assert removed["device_token"].to_list() == [f"tok{i}" for i in range(38, 60, 2)]


def test_reconcile_statuses() -> None:
    frame = work_frame(
        [
            {"device_token": "in_sync"},
            {"device_token": "new"},
            {"device_token": "changed", "os_version": "35"},
            {"device_token": "moved", "customer_id": "c2"},
            {"device_token": "failed"},
            {"device_token": "invalid", "outcome": "invalid"},
        ]
    )
    snap = snapshot(
        [
            {"device_token": "in_sync"},
            {"device_token": "changed"},
            {"device_token": "moved"},
            {
                "device_token": "failed",
                "last_error_reason": "server_error",
                "last_error_at": T0 + timedelta(hours=1),
            },
            {"device_token": "gone"},
        ]
    )
    out = reconcile(diff(frame, snap), snap)
    status = dict(zip(out["device_token"], out["status"], strict=True))
    assert status == {
        "in_sync": "in_sync",
        "new": "pending_new",
        "changed": "pending_changed",
        "moved": "moved_customer",
        "failed": "failed_last_time",
        "gone": "removed_from_source",
    }
    assert set(status.values()) <= set(RECONCILE_STATUSES)
    failed = out.filter(pl.col("device_token") == "failed").row(0, named=True)
    assert failed["last_error_reason"] == "server_error"
    moved = out.filter(pl.col("device_token") == "moved").row(0, named=True)
    assert (moved["customer_id"], moved["state_customer_id"]) == ("c2", "c1")
    assert out.filter(pl.col("status") == "removed_from_source")["row_id"].to_list() == [None]


values = st.sampled_from(["a", "b", None])


@settings(max_examples=60, deadline=None)
@given(
    source=st.lists(
        st.tuples(st.integers(0, 6), values, values, st.booleans()), min_size=0, max_size=25
    ),
    state=st.dictionaries(st.integers(0, 8), st.tuples(values, values), max_size=9),
)
def test_diff_properties(
    source: list[tuple[int, str | None, str | None, bool]],
    state: dict[int, tuple[str | None, str | None]],
) -> None:
    # At most one eligible row per token (dedupe's promise); decided rows may repeat tokens.
    seen: set[int] = set()
    rows = []
    for token, model, os_version, decided in source:
        decided = decided or token in seen
        seen |= set() if decided else {token}
        rows.append(
            {
                "device_token": f"t{token}",
                "model": model,
                "os_version": os_version,
                "outcome": "invalid" if decided else None,
            }
        )
    frame = work_frame(rows)
    snap = snapshot(
        [{"device_token": f"t{k}", "model": m, "os_version": o} for k, (m, o) in state.items()]
    )
    out = diff(frame, snap)
    assert out["row_id"].to_list() == frame["row_id"].to_list()
    for r in out.iter_rows(named=True):
        token = int(r["device_token"][1:])
        if r["change"] is None:
            assert r["outcome"] == "invalid"
        elif token not in state:
            assert r["change"] == "new"
        else:
            same = state[token] == (r["model"], r["os_version"])
            assert r["change"] == ("unchanged" if same else "changed")


def test_state_rows_by_hash_equal_the_string_join_and_catch_collisions(monkeypatch) -> None:
    import pipeline.diff as diff_module

    tokens = pl.Series("device_token", [f"tok{i % 37}" if i % 5 else None for i in range(200)])
    known = pl.Series("device_token", [f"tok{i}" for i in range(0, 60, 2)])
    frame = tokens.to_frame()
    snap = known.to_frame()
    monkeypatch.setattr(diff_module, "_SLICE_ROWS", 7)  # several slices
    monkeypatch.setattr(diff_module, "_HASH_JOIN_MIN_ROWS", 0)  # the path of big runs
    by_hash = diff_module._state_rows(frame, snap)
    by_string = diff_module._state_rows_by_string(tokens, known)
    assert by_hash.to_list() == by_string.to_list()
    # a candidate whose token differs (what a hash collision gives) is not a match
    out = diff_module._confirmed(
        pl.Series(["a", "b", None]), pl.Series(["a", "x"]), pl.Series([0, 1, 1], dtype=pl.UInt32)
    )
    assert out.to_list() == [0, None, None]


def test_snapshot_hashes_shared_by_two_tokens_fall_back_to_the_string_join(monkeypatch) -> None:
    import pipeline.diff as diff_module

    monkeypatch.setattr(diff_module, "_HASH_JOIN_MIN_ROWS", 0)
    monkeypatch.setattr(diff_module, "_any_shared", lambda hashes: True)
    by_string = diff_module._state_rows_by_string
    calls = []
    monkeypatch.setattr(
        diff_module,
        "_state_rows_by_string",
        lambda *args: calls.append(1) or by_string(*args),
    )
    frame = work_frame([{"device_token": "a"}, {"device_token": "b"}])
    out = diff(frame, snapshot([{"device_token": "b"}]))
    assert changes(out) == {"a": "new", "b": "unchanged"}
    assert calls and diff_module._SI not in out.columns
