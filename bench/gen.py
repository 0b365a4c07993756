"""Deterministic generic device exports for the benchmarks (same seed and size, same bytes).

    .venv/bin/python -m bench.gen 1000000            # writes bench/out/devices_1000000_s7.csv

A realistic mix rather than one repeated shape: ~163-character FCM tokens mostly, plus APNs hex
(three spellings), Expo, Web Push endpoints, legacy GCM, emails, phone numbers, malformed and empty
tokens; platforms in various spellings (and a few unsupported or unknown); Android releases such as
"14" and "8.1.0", iOS versions such as "17.4.1"; ~1% duplicate tokens, ~2% stale rows, a few empty
customers. Dates are relative to ANCHOR: pass `NormalizeOptions(now=ANCHOR)` or `--max-age 0`.

Generation is chunked (memory stays small) and uses only `random.Random` (stable across Python
versions) plus polars to format and write; 1M rows take a few seconds.
"""

from __future__ import annotations

import base64
import os
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

ANCHOR = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SEED = 7
HEADER = ("customer_id", "device_token", "platform", "model", "os_version", "updated_at")
OUT_DIR = Path(__file__).resolve().parent / "out"
GEN_VERSION = 1  # bump when the mix changes, so cached files are regenerated
_CHUNK = 100_000
_DAY = 86_400

# (value, weight) tables
_CLASSES = (("android", 60), ("ios", 33), ("web", 5), ("other", 2))
_SPELLINGS = {
    "android": (("android", 70), ("Android", 15), ("ANDROID", 5), ("gcm", 5), ("fcm", 5)),
    "ios": (("ios", 60), ("iOS", 25), ("iPhone", 10), ("IOS", 5)),
    "web": (("web", 80), ("Chrome", 20)),
    "other": (("kindle", 40), ("huawei", 30), ("blackberry", 20), ("", 10)),
}
_KINDS = {
    "android": (("fcm", 955), ("gcm", 10), ("email", 10), ("phone", 5), ("malformed", 10), ("empty", 10)),
    "ios": (("fcm", 840), ("apns", 120), ("expo", 30), ("malformed", 10)),
    "web": (("fcm", 70), ("webpush", 30)),
    "other": (("fcm", 1),),
}  # fmt: skip
_MODELS = {
    "android": ("Pixel 8", "Pixel 7a", "Pixel 3a", "SM-S918B", "SM-A546E", "Samsung SM-G355H",
                "Redmi Note 12", "moto g(7)", "M2101K6G", "ONEPLUS A6003", "CPH2409", "Nokia G21"),
    "ios": ("iPhone15,2", "iPhone14,5", "iPhone12,1", "iPhone10,1", "iPhone8,1", "iPad13,4"),
    "web": ("",),
    "other": ("KFTT", "Bold 9900", ""),
}  # fmt: skip
_VERSIONS = {
    "android": (("14", 25), ("13", 20), ("12", 12), ("11", 10), ("10", 8), ("15", 8), ("9", 5),
                ("8.1.0", 4), ("12L", 2), ("7.1.2", 2), ("34", 2), ("Android 13", 1), ("", 1)),
    "ios": (("17.4.1", 25), ("17.2", 20), ("18.1", 15), ("16.7.8", 15), ("15.8", 10),
            ("17", 5), ("iOS 17.2", 5), ("", 5)),
    "web": (("120", 50), ("121.0.6167.85", 50)),
    "other": (("7.1", 50), ("", 50)),
}  # fmt: skip


def csv_path(rows: int, seed: int = SEED, out_dir: Path = OUT_DIR) -> Path:
    return out_dir / f"devices_{rows}_s{seed}_v{GEN_VERSION}.csv"


def ensure_csv(rows: int, seed: int = SEED, out_dir: Path = OUT_DIR) -> tuple[Path, float | None]:
    """The cached CSV for (rows, seed), generated when missing; seconds spent generating or None."""
    path = csv_path(rows, seed, out_dir)
    if path.exists():
        return path, None
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    start = time.perf_counter()
    with tmp.open("wb") as f:
        for index, first in enumerate(range(0, rows, _CHUNK)):
            chunk = generate_chunk(
                min(_CHUNK, rows - first), first, random.Random(f"{seed}:{index}")
            )
            chunk.write_csv(f, include_header=index == 0)
    tmp.replace(path)
    return path, time.perf_counter() - start


def _pick(rng: random.Random, table: tuple[tuple[str, int], ...], k: int) -> list[str]:
    return rng.choices([v for v, _ in table], [w for _, w in table], k=k)


class _Tokens:
    """Token spellings built from one block of random bytes (no per-character Python loop)."""

    def __init__(self, rng: random.Random, n: int) -> None:
        self.rng = rng
        self.b64 = base64.urlsafe_b64encode(rng.randbytes(117 * n)).decode("ascii")  # 156 chars/row
        self.hex = rng.randbytes(32 * n).hex()  # 64 chars/row

    def make(self, kind: str, i: int) -> str:
        s = self.b64[156 * i : 156 * (i + 1)]
        if kind == "fcm":  # 22 + 7 + 134 = 163 characters, like real FCM registration tokens
            return f"{s[:22]}:APA91b{s[22:]}"
        if kind == "gcm":
            return "APA91b" + s[:134]
        if kind == "apns":
            h = self.hex[64 * i : 64 * (i + 1)]
            style = i % 3
            if style == 1:
                return h.upper()
            if style == 2:  # Objective-C description: "<8 hex 8 hex ...>"
                return "<" + " ".join(h[j : j + 8] for j in range(0, 64, 8)) + ">"
            return h
        if kind == "expo":
            return f"ExponentPushToken[{s[:22]}]"
        if kind == "webpush":
            return f"https://fcm.googleapis.com/fcm/send/{s[:60]}"
        if kind == "email":
            return f"user{i}.{s[:5].lower()}@example.com"
        if kind == "phone":
            return f"+52 55 {self.rng.randrange(1000, 9999)} {self.rng.randrange(1000, 9999)}"
        if kind == "malformed":
            return f"token for {s[:8]}!"
        return ""


def generate_chunk(n: int, first: int, rng: random.Random) -> pl.DataFrame:
    """n rows whose global indices start at `first`."""
    classes = _pick(rng, _CLASSES, n)
    per_class = {c: iter(_pick(rng, _KINDS[c], classes.count(c))) for c in _KINDS}
    spell = {c: iter(_pick(rng, _SPELLINGS[c], classes.count(c))) for c in _SPELLINGS}
    vers = {c: iter(_pick(rng, _VERSIONS[c], classes.count(c))) for c in _VERSIONS}
    tokens = _Tokens(rng, n)
    rand = rng.random
    customer, token, platform, model, os_version, age_s = [], [], [], [], [], []
    for i in range(n):
        c = classes[i]
        u = rand()
        g = first + i
        # ~1.25 devices per customer; 0.3% empty or blank customer ids
        customer.append("" if u < 0.002 else " " if u < 0.003 else f"C{1_000_000 + g * 4 // 5}")
        if i > 100 and u > 0.99:  # 1% re-exports of an earlier row's token (duplicates)
            token.append(token[rng.randrange(i)])
        else:
            token.append(tokens.make(next(per_class[c]), i))
        platform.append(next(spell[c]))
        models = _MODELS[c]
        model.append("" if rand() < 0.04 else models[int(rand() * len(models))])
        os_version.append(next(vers[c]))
        # 2% stale (300-700 days old), the rest active within the last 200 days
        days = 300 + int(rand() * 400) if rand() < 0.02 else int(rand() * 200)
        age_s.append(days * _DAY + int(rand() * _DAY))
    anchor_s = int(ANCHOR.timestamp())
    frame = pl.DataFrame(
        {
            "customer_id": customer,
            "device_token": token,
            "platform": platform,
            "model": model,
            "os_version": os_version,
            "_age": age_s,
        }
    )
    return frame.select(
        *HEADER[:-1],
        (pl.lit(anchor_s, pl.Int64) - pl.col("_age"))
        .mul(1000)
        .cast(pl.Datetime("ms"))
        .dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        .alias("updated_at"),
    )


def main(argv: list[str]) -> None:
    for arg in argv or ["1000000"]:
        path, took = ensure_csv(int(arg))
        state = "cached" if took is None else f"generated in {took:.1f} s"
        print(f"{path} ({path.stat().st_size / 1e6:.0f} MB, {state})")


if __name__ == "__main__":
    main(sys.argv[1:])
