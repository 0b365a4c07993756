"""Benchmark scenarios; each returns table rows and turns its own failures into FAILED rows."""

from __future__ import annotations


def rows_label(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M rows"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k rows"
    return f"{n:,} rows"


def ratio_text(ours: float, base: float, what: str) -> str:
    """'1.42× bare polars read' (time ratio: below 1 means we are faster)."""
    text = f"{ours / base:.2f}× {what}"
    if ours < base:
        text += f" ({base / ours:.1f}× faster)"
    return text


def verdict(ok: bool, text: str) -> str:
    return f"{'✅' if ok else '❌'} {text}"
