"""Token classification: what kind of push address a row holds, as a polars expression.

FCM tokens are opaque (Google says so), so they are not matched strictly: anything made of the
FCM alphabet (letters, digits, `_`, `-`, `:`) and long enough is taken as FCM, after the
obviously wrong kinds (APNs hex, Expo, Web Push URLs, emails, phone numbers) are caught.
Only `fcm` and `gcm` are sent.
"""

from __future__ import annotations

import polars as pl

from pipeline.normalize.lookups import written_back

MAX_TOKEN_LEN = 4096
MIN_TOKEN_LEN = 16  # shorter strings are test values or truncated cells, not registration tokens
SENDABLE_KINDS = ("fcm", "gcm")
TOKEN_KINDS = (
    "fcm",
    "gcm",
    "apns",
    "expo",
    "webpush",
    "email",
    "phone",
    "empty",
    "oversized",
    "malformed",
)

# the type of the token_kind column: one byte per row, and no value outside TOKEN_KINDS
TOKEN_KIND_DTYPE = pl.Enum(TOKEN_KINDS)

# kind -> (reason code, detail) for the kinds that make a row invalid
KIND_REASON: dict[str, tuple[str, str]] = {
    "empty": ("missing_device_token", "device_token is empty"),
    "oversized": ("token_too_long", f"token longer than {MAX_TOKEN_LEN} characters"),
    "email": ("email_or_phone_token", "token column holds an email address"),
    "phone": ("email_or_phone_token", "token column holds a phone number"),
    "expo": ("expo_token", "Expo push token; needs an FCM token"),
    "webpush": ("webpush_endpoint", "Web Push endpoint URL; needs an FCM web token"),
    "apns": ("apns_token_not_fcm", "APNs device token; convert to FCM (IID batchImport) first"),
    "malformed": ("malformed_token", "not an FCM token (characters or length)"),
}

_FCM_ALPHABET = r"^[A-Za-z0-9_:\-]+$"
# Control characters kept off the fast path, three per check: contains_any with at most three
# single-byte patterns is a memchr3 scan (~13 ms per million tokens); more patterns, or a regex
# class of every control character, cost ~20x that, as much as the alphabet regex it avoids.
_FAST_PATH_REJECTS = ([" ", "\t", '"'], ["\r", "\n", "\x0b"], ["\x00", "\x1b", "\x7f"])
KIND_CODE: dict[str, int] = {k: i for i, k in enumerate(TOKEN_KINDS)}


def _code(kind: str) -> pl.Expr:
    return pl.lit(KIND_CODE[kind], dtype=pl.UInt8)


def _only(mask: pl.Expr, text: pl.Expr) -> pl.Expr:
    """`text` where `mask` holds, "" elsewhere.

    Not null elsewhere: polars' string kernels still scan the values behind a null mask (a regex
    over a when/then-masked column measured ~10x the same regex over the same column with ""
    in the masked rows), and none of our patterns matches "".
    """
    return pl.when(mask).then(text).otherwise(pl.lit(""))


def clean_token(col: pl.Expr) -> pl.Expr:
    """Trim surrounding whitespace (incl. tabs/newlines from hand-edited exports); "" -> null."""
    t = col.str.strip_chars()
    return pl.when(t != "").then(t)


def _plain(raw: pl.Expr) -> pl.Expr:
    """No non-ASCII and none of _FAST_PATH_REJECTS anywhere in the token."""
    plain = raw.str.len_chars() == raw.str.len_bytes()
    for rejects in _FAST_PATH_REJECTS:
        plain = plain & ~raw.str.contains_any(rejects)
    return plain


def fast_path(raw: pl.Expr) -> pl.Expr:
    """The token has the FCM/GCM layout (a 22- or 11-character id then ":APA91b", or a bare
    "APA91b..."), at least 100 bytes and is plain (see _plain): it is taken as it is."""
    layout = (raw.str.slice(22, 7) == ":APA91b").fill_null(False)
    layout = layout | (raw.str.slice(11, 7) == ":APA91b").fill_null(False)
    layout = layout | raw.str.starts_with("APA91b").fill_null(False)
    return (layout & (raw.str.len_bytes() >= 100) & _plain(raw)).fill_null(False)


def token_stages(col: str = "device_token") -> list[list[pl.Expr]]:
    """Three stages of expressions that trim `col` in place and add the `_fast` (see fast_path)
    and `_n` (bytes) helper columns used by kind_stages; normalize merges them with its own
    stages.

    Tokens with the FCM/GCM layout and no whitespace, quotes, NUL/ESC/DEL or non-ASCII anywhere are
    taken as they are (trimming them would copy a million strings for nothing); only the others
    are trimmed.
    """
    raw = pl.col(col).cast(pl.String)
    stage1 = [fast_path(raw).alias("_fast")]
    fast = pl.col("_fast")
    stage2 = [
        pl.when(fast).then(raw).otherwise(clean_token(_only(~fast, raw))).alias(col),
    ]
    stage3 = [pl.col(col).str.len_bytes().alias("_n")]
    return [stage1, stage2, stage3]


def kind_stages(col: str = "device_token", out: str = "_tk") -> list[list[pl.Expr]]:
    """Two stages that add `out`, the UInt8 kind code of the cleaned token in `col`, from the
    `_fast` and `_n` columns of token_stages (a helper `_sp` column is left behind).

    The first stage tells the kinds a token's shape gives away (empty, oversized, Expo, Web Push,
    email, phone, APNs); the FCM alphabet regex (~0.2 us per token) then only runs on the tokens
    left, which are either malformed or FCM/GCM without the layout. Each pattern of the first
    stage only runs on the rows that can match it (the others are masked to "", see _only).
    Fast-path tokens are FCM or GCM whatever else they hold, so the Expo, Web Push and email
    patterns skip them; among the other tokens only one off the FCM alphabet can hold the `[`,
    `/` or `@` those patterns need, so they give what checking the alphabet first gave.
    """
    t = pl.col(col)
    n, fast = pl.col("_n"), pl.col("_fast").fill_null(False)
    slow = ~fast
    expo = _only(slow, t)
    url = _only(slow & t.str.contains("://", literal=True), t)
    email = _only(slow & t.str.contains("@", literal=True), t)
    short = _only(n <= 24, t)  # phone numbers can be all digits, so they pass the alphabet
    hexlen = _only((n >= 64) & (n <= 100), t)
    special = (
        pl.when(t.is_null() | (n == 0))
        .then(_code("empty"))
        .when(n > MAX_TOKEN_LEN)
        .then(_code("oversized"))
        .when(
            (
                expo.str.starts_with("ExpoPushToken[") | expo.str.starts_with("ExponentPushToken[")
            ).fill_null(False)
        )
        .then(_code("expo"))
        .when(url.str.contains(r"^(?i:https?)://").fill_null(False))
        .then(_code("webpush"))
        .when(email.str.contains(r"^(?i:mailto:)?[^@\s]+@[^@\s]+\.[^@\s]+$").fill_null(False))
        .then(_code("email"))
        .when(short.str.contains(r"^(?:tel:)?\+?[0-9][0-9 ().\-]{5,18}[0-9]$").fill_null(False))
        .then(_code("phone"))
        # 64 hex digits once whitespace and <> are dropped, without building the dropped copy
        .when(hexlen.str.contains(r"^[\s<>]*(?:[0-9A-Fa-f][\s<>]*){64}$").fill_null(False))
        .then(_code("apns"))
    )
    sp = pl.col("_sp")
    alphabet = _only(slow & sp.is_null(), t).str.contains(_FCM_ALPHABET)
    code = (
        pl.when(sp.is_not_null())
        .then(sp)
        .when(slow & (~alphabet.fill_null(False) | (n < MIN_TOKEN_LEN)))
        .then(_code("malformed"))
        .when(t.str.starts_with("APA91b"))
        .then(_code("gcm"))
        .otherwise(_code("fcm"))
    )
    return [[special.alias("_sp")], [code.alias(out)]]


def kind_names(code: pl.Expr) -> pl.Expr:
    """The TOKEN_KIND_DTYPE column of UInt8 kind codes (see KIND_CODE)."""
    return pl.lit(pl.Series(TOKEN_KINDS, dtype=TOKEN_KIND_DTYPE)).gather(code)


def with_token_kind(
    lf: pl.LazyFrame, col: str = "device_token", out: str = "token_kind", code_col: str = "_tk"
) -> pl.LazyFrame:
    """`lf` plus `out`, the kind of the already trimmed token in `col` (see TOKEN_KINDS), and
    `code_col`, the same as a UInt8 index into TOKEN_KINDS (see KIND_CODE).

    Trims `col` in place. Speed: a full alphabet regex over a million 160-byte tokens costs more
    than reading the file, so tokens with the FCM/GCM layout (a 22- or 11-character id then
    ":APA91b", or a bare "APA91b...") only get cheap checks (non-ASCII, whitespace, quotes); the
    others are classified by kind_stages. normalize takes a faster route to the same answers
    (token_first, finish_tokens); this one is the reference the tests hold it to.
    """
    for stage in [*token_stages(col), *kind_stages(col, code_col)]:
        lf = lf.with_columns(stage)
    # small integer codes while deciding (cheap to compare); the string column is made once
    return lf.with_columns(kind_names(pl.col(code_col)).alias(out)).drop("_n", "_sp", "_fast")


def token_first(col: str = "device_token") -> list[pl.Expr]:
    """The per-row half of the classification, for normalize's first (parallel) stage: `_tk`
    (the kind if the row is on the fast path: gcm or fcm), `_odd` (the row may be off the
    fast path, or is too long: finish_tokens classifies it in full) and `_maybe` (the row may
    have the fast path's layout).

    Speed: `_odd` is a stricter test than fast_path, and cheaper: one `find` of ":APA91b"
    (~19 ms per million tokens) instead of two 7-character slices compared to it (~19 ms each).
    The first ":APA91b" at byte 11 or 22 of a plain (ASCII) token is the layout fast_path wants;
    a token with the layout and an earlier ":APA91b" too fails this test, and finish_tokens
    applies fast_path itself to the rows that fail it, so the result is the same.
    """
    raw = pl.col(col).cast(pl.String)
    n = raw.str.len_bytes()
    gcm = raw.str.starts_with("APA91b")
    at = raw.str.find(":APA91b", literal=True)
    surely_fast = (at.is_in([11, 22]) | gcm) & (n >= 100) & (n <= MAX_TOKEN_LEN) & _plain(raw)
    return [
        pl.when(gcm).then(_code("gcm")).otherwise(_code("fcm")).alias("_tk"),
        (~surely_fast.fill_null(False)).alias("_odd"),
        # only these can have the layout: no ":APA91b" up to byte 22 means none at 11 or 22
        ((at <= 22) | gcm).fill_null(False).alias("_maybe"),
    ]


def finish_tokens(frame: pl.DataFrame, col: str = "device_token") -> pl.DataFrame:
    """`frame` (with the columns of token_first) with `col` trimmed and `_tk` the final kind code,
    the same as token_stages + kind_stages.

    Rows on the FCM/GCM fast path (see token_stages) no longer than MAX_TOKEN_LEN can only be
    `gcm` or `fcm`, which token_first already told apart by their prefix; they are kept as they
    are. Only the other rows (a few percent of a real export) are gathered into a small frame,
    trimmed, run through the full classification and scattered back: masking them in place
    (`_only`) would still cost a pass over the whole column for every pattern.
    """
    idx = frame["_odd"].arg_true()
    if len(idx):
        # one chunk first: the first stage comes back in one chunk per morsel, and a gather
        # across chunks measured ~9 ms for 90k of a million tokens, against ~1 ms to rechunk
        tokens = frame[col].cast(pl.String).rechunk()
        sub = pl.DataFrame([tokens.gather(idx), frame["_maybe"].gather(idx)])
        before = sub[col]
        # in a real export hardly any odd row has the layout: fast_path only runs when one does
        maybe = sub["_maybe"].any()
        raw = pl.col(col)
        fast = fast_path(raw) if maybe else pl.lit(False)
        # token_stages' second and third stages, without the masking: few rows here are fast.
        # Lazily, so the streaming engine splits the rows over the cores; the trim is a stage of
        # its own because clean_token in one expression trims twice (~9 ms per 90k tokens each).
        trimmed = pl.when("_fast").then(raw).otherwise(raw.str.strip_chars()) if maybe else None
        lf = (
            sub.lazy()
            .with_columns(fast.alias("_fast"))
            .with_columns((raw.str.strip_chars() if trimmed is None else trimmed).alias(col))
            .with_columns(pl.when(raw != "").then(raw).alias(col))
            .with_columns(raw.str.len_bytes().alias("_n"))
        )
        for stage in kind_stages(col):
            lf = lf.with_columns(stage)
        sub = lf.select(col, "_tk").collect()
        frame = frame.with_columns(
            written_back(tokens, idx, before, sub[col]),
            frame["_tk"].clone().scatter(idx, sub["_tk"]),
        )
    # `_odd` / `_maybe` stay: dropping columns here re-aligns the chunks of the whole frame (the
    # first stage comes back in one chunk per morsel), ~12 ms; normalize's last select drops them
    return frame
