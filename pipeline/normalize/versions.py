"""osVersion: what Masivo gets for each platform, as polars expressions.

android: the API level ("34"). Releases ("14", "8.1.0", "12L"), codenames ("Tiramisu",
         "Android (Q)") and explicit API levels ("API 34", "36.1") are mapped by the tables below.
         A bare number from 10 to 16 is ambiguous; the row's `android_version_kind` ("release" or
         "api", from the source profile) decides. 21 or more can only be an API level.
ios:     the dotted version: "iOS 17.2" -> "17.2", "iPhone OS 17_4" -> "17.4", "17.4.1" kept.
web:     the browser version: "120", "Chrome 120.0.1" -> "120.0.1".
Values that fit none of these are not guessed: the row becomes invalid_os_version and the raw
value goes to `detail`. An empty value is fine: osVersion is optional, so the key is omitted.
"""

from __future__ import annotations

import polars as pl

# release (major, or major.minor where the minor changed the API level) -> API level
RELEASE_TO_API: dict[str, int] = {
    "16": 36, "15": 35, "14": 34, "13": 33, "12l": 32, "12.1": 32, "12": 31, "11": 30,
    "10": 29, "9": 28, "8.1": 27, "8": 26, "7.1": 25, "7": 24, "6": 23, "5.1": 22, "5": 21,
    "4.4": 19, "4.3": 18, "4.2": 17, "4.1": 16,
}  # fmt: skip

# codenames and letters, after lower-casing and dropping "android" and parentheses.
# Oreo, Nougat and Lollipop each span two API levels, so they are left out on purpose.
CODENAME_TO_API: dict[str, int] = {
    "l": 21, "m": 23, "marshmallow": 23, "n": 24, "o": 26, "p": 28, "pie": 28,
    "q": 29, "quince tart": 29, "r": 30, "red velvet cake": 30, "s": 31, "snow cone": 31,
    "snow cone v2": 32, "sv2": 32, "t": 33, "tiramisu": 33, "u": 34, "upside down cake": 34,
    "v": 35, "vanilla ice cream": 35, "baklava": 36, "kitkat": 19,
}  # fmt: skip

MIN_API, MAX_API = 1, 40  # plausible API levels; 37 is expected for Android 17

_ANDROID_PREFIX = r"^(?:android|droid)?\s*(?:os)?\s*"
# leading version token: "10", "8.1.0", "12l", "36.1"
_LEAD = r"^(\d{1,2})(?:\.(\d{1,3}))?(?:\.\d{1,3})*(l)?(?:\s|$)"
_API = r"^(?:api|sdk)\s*(?:level)?\s*[:=]?\s*(\d{1,2})(?:\.\d+)?$"
_IOS = r"^(?:ios|iphone\s*os|ipad\s*os|ipados|cpu\s*(?:iphone\s*)?os|os)?\s*v?(\d{1,2}(?:[._]\d{1,3}){0,2})$"
_WEB = r"^(?:[a-z][a-z ]*[ /])?v?(\d{1,4}(?:\.\d{1,6}){0,3})$"


def os_versions(frame: pl.DataFrame) -> pl.Series:
    """The osVersion to send for each row of a small frame of (`platform`, `raw`, `kind`): null
    when not understood. Meant for the distinct values of a column (see lookups.os_table).

    Evaluated in stages of helper columns: as one expression, every use of a helper repeats the
    expressions (and regexes) behind it, which cost ~20 ms for a few dozen values.
    """
    plat = pl.col("platform")
    s = pl.col("_s")
    out = frame.select(
        plat, pl.col("kind"), _s=pl.col("raw").str.to_lowercase().str.strip_chars()
    ).with_columns(
        _explicit=s.str.extract(_API, 1).cast(pl.Int64, strict=False),
        _named=s.str.contains(r"^(?:android|droid)"),
        _ios=s.str.extract(_IOS, 1).str.replace_all("_", "."),
        _web=s.str.extract(_WEB, 1),
        _s2=s.str.replace(_ANDROID_PREFIX, "")
        .str.replace_all(r"[()\[\],;]", " ")
        .str.replace_all(r"\s+", " ")
        .str.strip_chars(),
    )
    lead = out["_s2"].str.extract_groups(_LEAD).struct.unnest()
    out = out.with_columns(_major_s=lead["1"], _minor_s=lead["2"], _l=lead["3"].is_not_null())
    major_s, minor_s, l_suffix = pl.col("_major_s"), pl.col("_minor_s"), pl.col("_l")
    out = out.with_columns(
        _major=major_s.cast(pl.Int64, strict=False), _minor=minor_s.cast(pl.Int64, strict=False)
    )
    major, minor, dotted = pl.col("_major"), pl.col("_minor"), minor_s.is_not_null()
    release_key = (
        pl.when(l_suffix)
        .then(major_s + pl.lit("l"))
        .when(dotted & (minor != 0))
        .then(major_s + pl.lit(".") + minor.cast(pl.String))
        .otherwise(major.cast(pl.String))
    )
    by_release = release_key.replace_strict(RELEASE_TO_API, default=None, return_dtype=pl.Int64)
    # from Android 9 on, minor releases kept the API level (12.1 = 12L is in the table)
    by_major = pl.when(major >= 9).then(
        major.cast(pl.String).replace_strict(RELEASE_TO_API, default=None, return_dtype=pl.Int64)
    )
    out = out.with_columns(_release_api=pl.coalesce(by_release, by_major))
    release_api = pl.col("_release_api")
    is_api_kind = pl.col("kind").fill_null("release") == "api"
    api = (
        pl.when(pl.col("_explicit").is_not_null())
        .then(pl.col("_explicit"))
        .when(major_s.is_null())
        .then(pl.col("_s2").replace_strict(CODENAME_TO_API, default=None, return_dtype=pl.Int64))
        .when(major >= 21)  # can only be an API level ("34", "36.1")
        .then(major)
        .when(dotted | l_suffix)  # "8.1.0", "12L": releases whatever the column claims
        .then(release_api)
        .when(is_api_kind & ~pl.col("_named"))  # "Android 10" is a release, whatever the column
        .then(major)
        .otherwise(release_api)
    )
    out = out.with_columns(_api=api)
    api = pl.col("_api")
    ios = pl.col("_ios")
    ios_major = ios.str.extract(r"^(\d+)", 1).cast(pl.Int64, strict=False)
    return out.select(
        pl.when(plat == "android")
        .then(pl.when((api >= MIN_API) & (api <= MAX_API)).then(api.cast(pl.String)))
        .when(plat == "ios")
        .then(pl.when((ios_major >= 2) & (ios_major <= 40)).then(ios))
        .when(plat == "web")
        .then(pl.col("_web"))
        .alias("os_version")
    ).to_series()
