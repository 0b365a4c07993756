"""Request bodies built with polars, one slice of the plan at a time."""

from __future__ import annotations

import json
from collections.abc import Iterator

import polars as pl

PLAN_COLUMNS = ("row_id", "customer_id", "device_token", "platform", "model", "os_version")


def _json_member(column: str, key: str) -> pl.Expr:
    # `"key":"value"` with JSON escaping done by polars (json_encode of a one-field struct,
    # braces stripped), so no per-row Python json.dumps.
    return (
        pl.struct(pl.col(column).alias(key))
        .struct.json_encode()
        .str.strip_prefix("{")
        .str.strip_suffix("}")
    )


def _optional_member(column: str, key: str) -> pl.Expr:
    # Masivo gets no `model` / `osVersion` key at all when the value is null.
    return (
        pl.when(pl.col(column).is_null())
        .then(pl.lit(""))
        .otherwise(pl.lit(",") + _json_member(column, key))
    )


BODY_EXPR: pl.Expr = pl.concat_str(
    [
        pl.lit("{"),
        _json_member("device_token", "device_token"),
        pl.lit(',"device_info":{'),
        _json_member("platform", "platform"),
        _optional_member("model", "model"),
        _optional_member("os_version", "osVersion"),
        pl.lit("}}"),
    ]
).alias("_body")


def body_for(device_token: str, platform: str, model: str | None, os_version: str | None) -> bytes:
    """The reference (per-row) encoding; tests check BODY_EXPR against it."""
    info: dict[str, str] = {"platform": platform}
    if model is not None:
        info["model"] = model
    if os_version is not None:
        info["osVersion"] = os_version
    return json.dumps(
        {"device_token": device_token, "device_info": info}, separators=(",", ":")
    ).encode()


Row = tuple[int, str, str, str, str | None, str | None, bytes]


def iter_rows(plan: pl.DataFrame, slice_rows: int = 4096) -> Iterator[Row]:
    """(row_id, customer_id, device_token, platform, model, os_version, body) per planned row.

    Only one slice is materialised as Python objects at a time.
    """
    missing = [c for c in PLAN_COLUMNS if c not in plan.columns]
    if missing:
        raise ValueError(f"plan frame lacks columns: {', '.join(missing)}")
    frame = plan.select(
        pl.col("row_id").cast(pl.Int64),
        *(pl.col(c).cast(pl.String) for c in PLAN_COLUMNS[1:]),
    )
    for chunk in frame.iter_slices(slice_rows):
        with_body = chunk.with_columns(BODY_EXPR.cast(pl.Binary))
        yield from with_body.iter_rows()  # type: ignore[misc]
