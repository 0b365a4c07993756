"""User mapping files (TOML) for home-grown tables.

    base = "generic"              # optional: start from a built-in profile (default generic)
    android_version = "api"       # "release" (9, 14, "8.1") or "api" (28, 34)

    [columns]                     # canonical column = the column in your file
    customer_id = "ClienteID"
    device_token = "token_fcm"
    platform = "sistema"

    [constants]                   # a fixed value when no column holds it
    platform = "android"

    [values.platform]             # your value = canonical value (case-insensitive)
    "A" = "android"
    "I" = "ios"

    [opt_out]                     # the row is opted out when this column holds one of the values
    column = "acepta_push"
    values = ["N", "no"]

Columns named in the file replace the base profile's candidates for that canonical column;
everything else is inherited from the base.
"""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.sources.profiles import CANONICAL, PROFILES, OptOutRule, Profile

_KEYS = {"base", "android_version", "columns", "constants", "values", "opt_out", "name"}


def _fail(path: Path, what: str) -> ConfigError:
    return ConfigError(
        f"mapping file {path}: {what}", hint="see `pipeline/sources/mapping.py` for the format"
    )


def load_mapping(path: Path) -> Profile:
    """Read a mapping file into a Profile. Raises ConfigError naming the file and the bad key."""
    try:
        data: dict[str, Any] = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"mapping file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise _fail(path, f"not valid TOML ({exc})") from None

    unknown = set(data) - _KEYS
    if unknown:
        raise _fail(path, f"unknown keys {sorted(unknown)}; allowed: {sorted(_KEYS)}")
    base_name = data.get("base", "generic")
    if base_name not in PROFILES:
        raise _fail(path, f"base = {base_name!r} is not one of {sorted(PROFILES)}")
    base = PROFILES[base_name]

    columns = dict(base.columns)
    for canon, col in dict(data.get("columns", {})).items():
        if canon not in CANONICAL:
            raise _fail(path, f"[columns] {canon!r} is not a canonical column {list(CANONICAL)}")
        if not isinstance(col, str) or not col:
            raise _fail(path, f"[columns] {canon} must be a column name")
        columns[canon] = (col,)

    constants = dict(base.constants)
    for canon, val in dict(data.get("constants", {})).items():
        if canon not in CANONICAL:
            raise _fail(path, f"[constants] {canon!r} is not a canonical column {list(CANONICAL)}")
        constants[canon] = str(val)
        # a constant wins over inherited candidates, so drop them
        if canon not in dict(data.get("columns", {})):
            columns.pop(canon, None)

    values = {k: dict(v) for k, v in base.values.items()}
    for canon, table in dict(data.get("values", {})).items():
        if canon not in CANONICAL or not isinstance(table, dict):
            raise _fail(path, f"[values.{canon}] must map values of a canonical column")
        values.setdefault(canon, {}).update(
            {str(k).strip().lower(): str(v) for k, v in table.items()}
        )

    opt_out = base.opt_out
    if "opt_out" in data:
        rule = data["opt_out"]
        if not isinstance(rule, dict) or "column" not in rule or "values" not in rule:
            raise _fail(path, "[opt_out] needs `column` and `values`")
        opt_out = (
            OptOutRule(
                (str(rule["column"]),), frozenset(str(v).strip().lower() for v in rule["values"])
            ),
        )

    kind = data.get("android_version", base.android_version)
    if kind not in ("release", "api"):
        raise _fail(path, f"android_version = {kind!r}; use 'release' or 'api'")

    return replace(
        base,
        name=str(data.get("name", f"mapping:{Path(path).name}")),
        columns=columns,
        constants=constants,
        values=values,
        opt_out=opt_out,
        android_version=kind,
        signature=(),
    )
