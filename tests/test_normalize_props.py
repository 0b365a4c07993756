"""Property tests of the normalizers: never raise, idempotent, exactly one outcome per row."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.dedupe import dedupe
from pipeline.normalize import NormalizeOptions, normalize
from pipeline.normalize.customers import FINE, INVALID, MISSING, customer_problem
from pipeline.outcomes import REASONS

NOW = datetime(2026, 12, 4, tzinfo=UTC)
FCM = "c" + "A" * 21 + ":APA91b" + "x" * 134

# arbitrary text plus the values the normalizers actually special-case
anything = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.sampled_from(["android", "iOS", "2", "web", "amazon", " ", "", "Android (Q)", "12L",
                     "8.1.0", "iPhone OS 17_4", "34", "14", "a" * 64, FCM, "x@y.com",
                     "ExponentPushToken[a]", "https://x", "2026-01-01", "1793527200", "false"]),
)  # fmt: skip
row_keys = ("customer_id", "device_token", "platform", "model", "os_version", "activity_at",
            "opted_in", "android_version_kind")  # fmt: skip
row = st.fixed_dictionaries(
    dict.fromkeys(row_keys[:-1], anything)
    | {"android_version_kind": st.sampled_from(["release", "api", None])}
)
opts = st.builds(
    NormalizeOptions,
    max_age_days=st.sampled_from([None, 0, 1, 270]),
    include_opted_out=st.booleans(),
    now=st.just(NOW),
)
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def to_frame(rows: list[dict]) -> pl.DataFrame:
    df = pl.DataFrame(
        {c: [r[c] for r in rows] for c in row_keys}, schema=dict.fromkeys(row_keys, pl.String)
    )
    n = len(rows)
    return df.with_columns(
        row_id=pl.int_range(n, dtype=pl.Int64),
        source_file=pl.lit("f.csv"),
        source_row=pl.int_range(1, n + 1, dtype=pl.Int64),
    )


@SETTINGS
@given(st.lists(row, min_size=1, max_size=25), opts)
def test_never_raises_and_one_outcome_per_row(rows: list[dict], options: NormalizeOptions) -> None:
    df = to_frame(rows)
    out = normalize(df, options)
    assert out.height == df.height
    assert out["row_id"].to_list() == df["row_id"].to_list()
    # each row: either eligible (no outcome, no reason) or exactly one registered reason
    for outcome, reason in zip(out["outcome"], out["reason"], strict=True):
        if outcome is None:
            assert reason is None
        else:
            assert REASONS[reason][0].value == outcome
    eligible = out.filter(pl.col("outcome").is_null())
    assert set(eligible["platform"].to_list()) <= {"android", "ios", "web"}
    assert set(eligible["token_kind"].to_list()) <= {"fcm", "gcm"}
    assert eligible["customer_id"].null_count() == 0


ids = st.one_of(
    anything,
    st.text(st.sampled_from(" \t\r\n\x00\x0c\x1f\x7f\x85\xa0\u2009\u3000éa1/"), max_size=12),
    st.builds(lambda pad, n: pad + "x" * n + pad, st.sampled_from(["", " ", "\u3000"]),
              st.sampled_from([1023, 1024, 1025])),
)  # fmt: skip


@SETTINGS
@given(st.lists(ids, min_size=1, max_size=25))
def test_customer_ids_match_trimming_every_id(values: list[str | None]) -> None:
    # normalize trims and checks only the ids that can change (see customers.py); the same
    # answer as trimming and checking every id
    df = to_frame([dict.fromkeys(row_keys, None) | {"customer_id": v} for v in values])
    df = df.with_columns(device_token=pl.lit(FCM), platform=pl.lit("android"))
    out = normalize(df, NormalizeOptions(now=NOW))
    trimmed = df.select(pl.col("customer_id").str.strip_chars()).with_columns(
        code=customer_problem(pl.col("customer_id"))
    )
    assert out["customer_id"].to_list() == trimmed["customer_id"].to_list()
    reason = {FINE: None, MISSING: "missing_customer_id", INVALID: "invalid_customer_id"}
    assert out["reason"].to_list() == [reason[c] for c in trimmed["code"]]


@SETTINGS
@given(st.lists(row, min_size=1, max_size=25), opts)
def test_normalizing_twice_equals_once(rows: list[dict], options: NormalizeOptions) -> None:
    once = normalize(to_frame(rows), options)
    twice = normalize(once, options)
    assert twice.equals(once)


@SETTINGS
@given(st.lists(row, min_size=1, max_size=25))
def test_dedupe_keeps_one_winner_per_token(rows: list[dict]) -> None:
    out = dedupe(normalize(to_frame(rows), NormalizeOptions(now=NOW)))
    eligible = out.filter(pl.col("outcome").is_null())
    assert eligible["device_token"].is_duplicated().sum() == 0
    assert out.height == len(rows)
