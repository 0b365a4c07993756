"""Customer ids: trimmed, otherwise kept verbatim; missing or invalid ones flagged.

Ids are free text (unicode, slashes, leading zeros), so the only checks are: present, no control
characters, at most MAX_CUSTOMER_ID_LEN characters. Like tokens (see tokens.py), the work is
split in two: a per-row test in normalize's first stage finds the few ids that may need trimming
or hold a control character, and only those are trimmed and checked in full.
"""

from __future__ import annotations

import polars as pl

from pipeline.normalize.lookups import written_back

MAX_CUSTOMER_ID_LEN = 1024  # ids are free text; this only stops absurd values

_CONTROLS = [chr(c) for c in range(0x20)] + ["\x7f"]
# what strip_chars() trims besides the controls \t..\r: the rest of Unicode's White_Space, as
# Rust's str::trim (a test checks every code point)
_SPACES = [" ", "\x85", "\xa0", "\u1680", *map(chr, range(0x2000, 0x200B))]
_SPACES += ["\u2028", "\u2029", "\u202f", "\u205f", "\u3000"]

# customer_first / finish_customers codes in `_cc`
FINE, MISSING, INVALID = 0, 1, 2


def customer_problem(cust: pl.Expr) -> pl.Expr:
    """UInt8 FINE / MISSING (null or empty) / INVALID (control characters, or too long) for a
    trimmed customer id."""
    # contains_any of the 33 single-byte controls: ~14 ms per million ids, the regex class
    # [\x00-\x1f\x7f] ~22 ms (same matches: these bytes never occur inside a UTF-8 multi-byte
    # sequence)
    bad = cust.str.contains_any(_CONTROLS) | (cust.str.len_chars() > MAX_CUSTOMER_ID_LEN)
    # an empty or null id holds no control character, so the two never add up
    missing = (cust.is_null() | (cust == "")).cast(pl.UInt8) * MISSING
    return missing + bad.fill_null(False).cast(pl.UInt8) * INVALID


def customer_first(col: str) -> list[pl.Expr]:
    """The per-row half, for normalize's first stage: `_cc`, MISSING or FINE (see
    customer_problem) for the id as it is, and `_codd`, whether the id holds a control character
    or a space anywhere, or more than MAX_CUSTOMER_ID_LEN bytes. Only those can change when
    trimmed or be invalid, so finish_customers redoes them; the others are final.

    Speed: one contains_any over the raw ids costs what the control check alone did; trimming
    every id wrote a new column for a million ids that are almost all unchanged (~8 ms wall).
    A length in bytes is free (polars keeps it beside each value) and bounds the length in
    characters, which costs a pass over the text.
    """
    raw = pl.col(col).cast(pl.String)
    missing = (raw.is_null() | (raw == "")).cast(pl.UInt8) * MISSING
    odd = raw.str.contains_any(_CONTROLS + _SPACES) | (raw.str.len_bytes() > MAX_CUSTOMER_ID_LEN)
    return [missing.alias("_cc"), odd.fill_null(False).alias("_codd")]


def finish_customers(frame: pl.DataFrame, col: str) -> pl.DataFrame:
    """`frame` (with the columns of customer_first) with `col` trimmed and `_cc` final: the same
    as customer_problem over every trimmed id."""
    idx = frame["_codd"].arg_true()
    if not len(idx):
        return frame
    ids = frame[col].cast(pl.String)
    if len(idx) * 100 > len(ids):
        # a gather across the first stage's many chunks is slow for many rows (see
        # finish_tokens); for a few, copying the column into one chunk costs more
        ids = ids.rechunk()
    before = ids.gather(idx)
    sub = before.str.strip_chars().to_frame()
    sub = sub.with_columns(customer_problem(pl.col(col)).alias("_cc"))
    return frame.with_columns(
        written_back(ids, idx, before, sub[col]), frame["_cc"].clone().scatter(idx, sub["_cc"])
    )
