"""Pin the shortcuts normalize takes for speed: each gives what the general path gives, on a row
that takes the shortcut and on one that narrowly misses it."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

import pipeline.normalize.lookups as lookups
from pipeline.normalize import NormalizeOptions, normalize
from pipeline.normalize.customers import (
    FINE,
    INVALID,
    MAX_CUSTOMER_ID_LEN,
    MISSING,
    customer_first,
    customer_problem,
)
from pipeline.normalize.tokens import with_token_kind

NOW = datetime(2026, 12, 4, tzinfo=UTC)
OPTS = NormalizeOptions(now=NOW)
ID22 = "c" + "A" * 21
BODY = "x" * 134


def frame(tokens: list[str | None], **cols: list) -> pl.DataFrame:
    n = len(tokens)
    base = {
        "row_id": list(range(n)),
        "customer_id": ["c1"] * n,
        "device_token": tokens,
        "platform": ["android"] * n,
        "os_version": ["14"] * n,
    }
    base.update(cols)
    return pl.DataFrame(base, schema_overrides={k: pl.String for k in base if k != "row_id"})


def reference_kinds(tokens: list[str | None]) -> list[str]:
    """token_stages + kind_stages over the whole column: the path without the sub-frame."""
    lf = pl.DataFrame({"device_token": tokens}, schema={"device_token": pl.String}).lazy()
    return with_token_kind(lf).collect()["token_kind"].to_list()


@pytest.mark.parametrize(
    ("token", "kind"),
    [
        # the first ":APA91b" at byte 22 or 11: the one-find test in the first stage
        (ID22 + ":APA91b" + "+" + BODY, "fcm"),  # "+" is off the alphabet: only the layout passes
        ("e" * 11 + ":APA91b" + "+" + BODY, "fcm"),
        # layout at 22 with an earlier ":APA91b": misses the find, fast_path in finish_tokens
        ("abc:APA91b" + "d" * 12 + ":APA91b" + "+" + BODY, "fcm"),
        # narrowly off the layout (byte 21, 23): the general path, "+" makes it malformed
        (ID22[:-1] + ":APA91b" + "+" + BODY, "malformed"),
        (ID22 + "q:APA91b" + "+" + BODY, "malformed"),
        ("APA91b" + "+" + BODY, "gcm"),
        ("APA91c" + "+" + BODY, "malformed"),
        # layout but under 100 bytes, or a tab inside: general path
        (ID22 + ":APA91b" + "x" * 60, "fcm"),
        (ID22 + ":APA91b" + "+" + "x" * 60, "malformed"),
        (ID22 + ":APA91b" + "\t" + BODY, "malformed"),
        (" " + ID22 + ":APA91b" + BODY + " ", "fcm"),
        (ID22 + ":APA91b" + BODY * 40, "oversized"),
    ],
)
def test_token_layout_shortcut_matches_general_path(token: str, kind: str) -> None:
    # the other rows make the frame mixed: fast rows, odd rows with and without the layout
    tokens = [token, ID22 + ":APA91b" + BODY, "a" * 64, None, " x@y.com "]
    out = normalize(frame(tokens), OPTS)
    assert out["token_kind"].to_list() == reference_kinds(tokens)
    assert out["token_kind"][0] == kind


def test_only_trimmed_tokens_are_rewritten_and_input_is_left_alone() -> None:
    fcm = ID22 + ":APA91b" + BODY
    tokens = [fcm, " " + fcm + "\t", "   ", "a" * 64, "x@y.com"]
    df = frame(tokens)
    before = df.clone()
    out = normalize(df, OPTS)
    assert out["device_token"].to_list() == [fcm, fcm, None, "a" * 64, "x@y.com"]
    assert df.equals(before)


@pytest.mark.parametrize(
    "odd",
    [
        ["   ", "", "\t"],  # only blanks: turned null on the validity bitmap
        ["a" * 64, "x@y.com"],  # nothing changes
        ["   ", " " + "b" * 64],  # a blank and a trimmed token: the scatter
    ],
)
def test_odd_tokens_written_back(odd: list[str]) -> None:
    fcm = ID22 + ":APA91b" + BODY
    tokens = [fcm, *odd, fcm]
    df = frame(tokens)
    before = df.clone()
    out = normalize(df, OPTS)
    cleaned = [t.strip() or None for t in tokens]
    assert out["device_token"].to_list() == cleaned
    assert out["token_kind"].to_list() == reference_kinds(tokens)
    assert df.equals(before)


@pytest.mark.parametrize(
    "models",
    [
        ["Pixel 8", "", None, "SM-A546E"],  # no surrounding whitespace: the column is kept
        ["Pixel 8", " ", None, " SM-A546E\t"],  # trimmed per distinct value
    ],
)
def test_models_are_trimmed_and_blank_is_null(models: list[str | None]) -> None:
    fcm = ID22 + ":APA91b" + BODY
    out = normalize(frame([fcm] * len(models), model=models), OPTS)
    assert out["model"].to_list() == [m.strip() or None if m is not None else None for m in models]


def reference_customers(ids: list[str | None]) -> tuple[list, list]:
    """Every id trimmed, then checked: the path without the sub-frame."""
    df = pl.DataFrame({"c": ids}, schema={"c": pl.String}).select(pl.col("c").str.strip_chars())
    return df["c"].to_list(), df.select(customer_problem(pl.col("c")))["c"].to_list()


LONG = "L" * MAX_CUSTOMER_ID_LEN


@pytest.mark.parametrize(
    "odd",
    [
        [],  # nothing to finish
        ["c 2", "c\u00e9"],  # a space inside, non-ASCII: looked at, nothing changes
        [" c2", "c3\t", "\u3000c4\u00a0", "c5\u2009"],  # ASCII and Unicode spaces trimmed
        ["   ", "\t", "\u3000"],  # blank: trimmed to "", missing
        ["c\x00d", "c\x1bd", "c\x7fd", " c\nd "],  # control characters inside: invalid
        [LONG + "   ", " " + LONG + "x"],  # at the limit once trimmed / over it
        ["\u00e9" * 600, "\u00e9" * 1025],  # over the limit in bytes; in characters only the second
    ],
)
@pytest.mark.parametrize("bulk", [4, 2000])  # mostly odd ids (copied into one chunk), a few
def test_odd_customer_ids_match_trimming_every_id(odd: list[str], bulk: int) -> None:
    ids = ["c1", None, "", *odd, LONG + "x", *["c9"] * bulk]
    fcm = ID22 + ":APA91b" + BODY
    df = frame([fcm] * len(ids), customer_id=ids)
    before = df.clone()
    out = normalize(df, OPTS)
    trimmed, codes = reference_customers(ids)
    reasons = {FINE: None, MISSING: "missing_customer_id", INVALID: "invalid_customer_id"}
    assert out["customer_id"].to_list() == trimmed
    assert out["reason"].to_list() == [reasons[c] for c in codes]
    assert df.equals(before)


def test_every_character_strip_chars_trims_marks_an_id_odd() -> None:
    chars = pl.Series([chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF])
    ids = pl.DataFrame({"c": chars + "id"})
    firsts = ids.select(customer_first("c")).with_columns(
        trims=ids["c"].str.strip_chars() != ids["c"]
    )
    assert firsts.filter(pl.col("trims") & ~pl.col("_codd")).is_empty()
    assert firsts["trims"].sum() == 25  # Unicode White_Space


def test_value_index_is_the_enum_index() -> None:
    values = pl.Series("v", ["b", None, "a", " b", "b", "", None, "é"])
    idx, distinct = lookups.value_index(values)
    by_enum = lookups.index_of("v", distinct)
    got = values.to_frame().select(idx.alias("h"), by_enum.alias("e"))
    assert got["h"].to_list() == got["e"].to_list()
    assert got["h"].null_count() == 2


def test_enum_fallback_gives_the_same_output(monkeypatch: pytest.MonkeyPatch) -> None:
    df = frame(
        [ID22 + ":APA91b" + BODY] * 5,
        platform=["android", " iOS", "amazon", None, "blackberry"],
        os_version=["14", "17.2", None, "x", " 13 "],
        model=[" Pixel ", None, "", "SM-A546E", "x"],
        opted_in=["yes", " NO ", None, "maybe", "1"],
    )
    fast = normalize(df, OPTS)
    monkeypatch.setattr(lookups, "_collision_free_slots", lambda hashes: None)
    assert normalize(df, OPTS).equals(fast)
    assert fast["opted_in"].to_list() == [True, False, None, None, True]


def test_collision_free_slots() -> None:
    hashes = pl.Series([1, 2, 3, 10**18], dtype=pl.UInt64)
    slots = lookups._collision_free_slots(hashes)
    assert slots is not None and (hashes % slots).n_unique() == 4
    assert lookups._collision_free_slots(pl.Series([5, 5], dtype=pl.UInt64)) is None
