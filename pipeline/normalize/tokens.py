"""Token classification: what kind of push address a row holds, as a polars expression.

FCM tokens are opaque (Google says so), so they are not matched strictly: anything made of the
FCM alphabet (letters, digits, `_`, `-`, `:`) and long enough is taken as FCM, after the
obviously wrong kinds (APNs hex, Expo, Web Push URLs, emails, phone numbers) are caught.
Only `fcm` and `gcm` are sent.
"""

from __future__ import annotations

import polars as pl

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
    """Three stages of expressions that trim `col` in place and add the `_n` (bytes) and `_ok`
    (FCM alphabet) helper columns used by kind_code; normalize merges them with its own stages.

    Tokens with the FCM/GCM layout and no whitespace, quotes, NUL/ESC/DEL or non-ASCII anywhere are
    taken as they are (trimming them would copy a million strings for nothing); only the others
    are trimmed and get the full alphabet regex.
    """
    raw = pl.col(col).cast(pl.String)
    stage1 = [fast_path(raw).alias("_fast")]
    fast = pl.col("_fast")
    stage2 = [
        pl.when(fast).then(raw).otherwise(clean_token(_only(~fast, raw))).alias(col),
    ]
    t = pl.col(col)
    stage3 = [
        t.str.len_bytes().alias("_n"),
        pl.when(fast)
        .then(pl.lit(True))
        .otherwise(_only(~fast, t).str.contains(_FCM_ALPHABET))
        .alias("_ok"),
    ]
    return [stage1, stage2, stage3]


def kind_code(col: str = "device_token") -> pl.Expr:
    """UInt8 kind code from the cleaned token and the `_n` / `_ok` columns of token_stages."""
    t = pl.col(col)
    n, ok = pl.col("_n"), pl.col("_ok").fill_null(False)
    odd = _only(~ok, t)  # URLs, emails, Expo, spaced APNs, junk
    short = _only(n <= 24, t)  # phone numbers can be all digits, so they pass the alphabet
    hexlen = _only((n >= 64) & (n <= 100), t)
    return (
        pl.when(t.is_null() | (n == 0))
        .then(_code("empty"))
        .when(n > MAX_TOKEN_LEN)
        .then(_code("oversized"))
        .when(
            (
                odd.str.starts_with("ExpoPushToken[") | odd.str.starts_with("ExponentPushToken[")
            ).fill_null(False)
        )
        .then(_code("expo"))
        .when(odd.str.contains(r"^(?i:https?)://").fill_null(False))
        .then(_code("webpush"))
        .when(odd.str.contains(r"^(?i:mailto:)?[^@\s]+@[^@\s]+\.[^@\s]+$").fill_null(False))
        .then(_code("email"))
        .when(short.str.contains(r"^(?:tel:)?\+?[0-9][0-9 ().\-]{5,18}[0-9]$").fill_null(False))
        .then(_code("phone"))
        # 64 hex digits once whitespace and <> are dropped, without building the dropped copy
        .when(hexlen.str.contains(r"^[\s<>]*(?:[0-9A-Fa-f][\s<>]*){64}$").fill_null(False))
        .then(_code("apns"))
        .when(~ok | (n < MIN_TOKEN_LEN))
        .then(_code("malformed"))
        .when(t.str.starts_with("APA91b"))
        .then(_code("gcm"))
        .otherwise(_code("fcm"))
    )


def kind_names(code: pl.Expr) -> pl.Expr:
    return code.replace_strict(dict(enumerate(TOKEN_KINDS)), default=None, return_dtype=pl.String)


def with_token_kind(
    lf: pl.LazyFrame, col: str = "device_token", out: str = "token_kind", code_col: str = "_tk"
) -> pl.LazyFrame:
    """`lf` plus `out`, the kind of the already trimmed token in `col` (see TOKEN_KINDS), and
    `code_col`, the same as a UInt8 index into TOKEN_KINDS (see KIND_CODE).

    Trims `col` in place. Speed: a full alphabet regex over a million 160-byte tokens costs more
    than reading the file, so tokens with the FCM/GCM layout (a 22- or 11-character id then
    ":APA91b", or a bare "APA91b...") only get cheap checks (non-ASCII, whitespace, quotes);
    every other token gets the full alphabet check, and the patterns for the wrong kinds only run
    on the few rows that can match them (the rest are masked to null, which string kernels skip).
    """
    for stage in token_stages(col):
        lf = lf.with_columns(stage)
    # small integer codes while deciding (cheap to compare); the string column is made once
    return (
        lf.with_columns(kind_code(col).alias(code_col))
        .with_columns(kind_names(pl.col(code_col)).alias(out))
        .drop("_n", "_ok", "_fast")
    )


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
    the same as token_stages + kind_code.

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
        # in a real export hardly any odd row has the layout: fast_path only runs when one does
        maybe = sub["_maybe"].any()
        if maybe:
            sub = sub.with_columns(fast_path(pl.col(col)).alias("_fast"))
        # token_stages' second and third stages, without the masking: few rows here are fast.
        # Lazily, so the streaming engine splits the rows over the cores; the trim is a stage of
        # its own because clean_token in one expression trims twice (~9 ms per 90k tokens each).
        raw, fast = pl.col(col), pl.col("_fast")
        trimmed = pl.when(fast).then(raw).otherwise(raw.str.strip_chars()) if maybe else None
        sub = (
            sub.lazy()
            .with_columns((raw.str.strip_chars() if trimmed is None else trimmed).alias(col))
            .with_columns(pl.when(raw != "").then(raw).alias(col))
        )
        alphabet = raw.str.contains(_FCM_ALPHABET)
        stage3 = [
            raw.str.len_bytes().alias("_n"),
            (pl.when(fast).then(pl.lit(True)).otherwise(alphabet) if maybe else alphabet).alias(
                "_ok"
            ),
        ]
        sub = sub.with_columns(stage3).select(col, kind_code(col).alias("_tk")).collect()
        # trimming changed the token (surrounding whitespace, or blank -> null)
        changed = sub[col].ne_missing(tokens.gather(idx))
        at = idx.filter(changed)
        frame = frame.with_columns(
            # only the changed tokens are written back (a string scatter copies the column)
            tokens.clone().scatter(at, sub[col].filter(changed)) if len(at) else tokens,
            frame["_tk"].clone().scatter(idx, sub["_tk"]),
        )
    # `_odd` / `_maybe` stay: dropping columns here re-aligns the chunks of the whole frame (the
    # first stage comes back in one chunk per morsel), ~12 ms; normalize's last select drops them
    return frame
