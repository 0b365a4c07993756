"""The baselines of the sync scenarios: what someone would write without this project.

Each reads the CSV, takes an access token from /auth/authorize, and sends one PATCH per row with
no validation beyond lower-casing the platform, then returns counts per HTTP status. They run in a
child process (bench.worker) pinned to the client core, like our run.

- httpx:   httpx.AsyncClient, N workers over a shared iterator, a pool of N kept-alive connections
- aiohttp: aiohttp.ClientSession, the same shape; the wire library under our own send stage
- naive:   pandas.read_csv + requests.Session, one row at a time (the usual migration script)

The async baselines run on uvloop like our send stage, so the comparison is about what the
pipeline adds, not about the event loop.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from urllib.parse import quote

import polars as pl

API_KEY = "5a4db0c5-0000-4000-8000-00000000cafe"  # the sandbox's public default key
_PLATFORMS = {"android": "android", "gcm": "android", "fcm": "android", "ios": "ios",
              "iphone": "ios", "web": "web", "chrome": "web"}  # fmt: skip


def _url(base: str, customer_id: str) -> str:
    return f"{base}/customers/{quote(customer_id, safe='')}/devices"


def _body(token: str, platform: str, model: str, os_version: str) -> bytes:
    info = {"platform": _PLATFORMS.get(platform.lower(), platform.lower())}
    if model:
        info["model"] = model
    if os_version:
        info["osVersion"] = os_version
    return json.dumps({"device_token": token, "device_info": info}).encode()


def _requests(csv: str, base: str, rows: int) -> Iterator[tuple[str, bytes]]:
    frame = pl.read_csv(csv, infer_schema=False, n_rows=rows).fill_null("")
    for cid, token, platform, model, os_version, _ in frame.iter_rows():
        yield _url(base, cid), _body(token, platform, model, os_version)


def _run(coro_fn: object) -> Counter[int]:
    try:
        import uvloop

        return uvloop.run(coro_fn())  # type: ignore[operator]
    except ImportError:  # pragma: no cover
        return asyncio.run(coro_fn())  # type: ignore[operator]


def run_httpx(csv: str, base: str, rows: int, concurrency: int) -> Counter[int]:
    import httpx

    async def main() -> Counter[int]:
        statuses: Counter[int] = Counter()
        work = _requests(csv, base, rows)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:
            auth = await client.get(f"{base}/auth/authorize", headers={"x-api-key": API_KEY})
            headers = {"authorization": f"Bearer {auth.json()['data']}",
                       "content-type": "application/json"}  # fmt: skip

            async def worker() -> None:
                for url, body in work:
                    response = await client.patch(url, content=body, headers=headers)
                    statuses[response.status_code] += 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return statuses

    return _run(main)


def run_aiohttp(csv: str, base: str, rows: int, concurrency: int) -> Counter[int]:
    import aiohttp

    async def main() -> Counter[int]:
        statuses: Counter[int] = Counter()
        work = _requests(csv, base, rows)
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.get(
                f"{base}/auth/authorize", headers={"x-api-key": API_KEY}
            ) as auth:
                token = (await auth.json())["data"]
            headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}

            async def worker() -> None:
                for url, body in work:
                    async with session.patch(url, data=body, headers=headers) as response:
                        await response.read()
                        statuses[response.status] += 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return statuses

    return _run(main)


def run_naive(csv: str, base: str, rows: int, concurrency: int = 1) -> Counter[int]:
    import pandas as pd
    import requests

    statuses: Counter[int] = Counter()
    df = pd.read_csv(csv, dtype=str, keep_default_na=False, nrows=rows)
    with requests.Session() as session:
        token = session.get(f"{base}/auth/authorize", headers={"x-api-key": API_KEY}).json()
        session.headers["authorization"] = f"Bearer {token['data']}"
        for row in df.itertuples(index=False):
            info = {"platform": _PLATFORMS.get(row.platform.lower(), row.platform.lower())}
            if row.model:
                info["model"] = row.model
            if row.os_version:
                info["osVersion"] = row.os_version
            response = session.patch(
                _url(base, row.customer_id),
                json={"device_token": row.device_token, "device_info": info},
                timeout=30,
            )
            statuses[response.status_code] += 1
    return statuses


CLIENTS = {"httpx": run_httpx, "aiohttp": run_aiohttp, "naive": run_naive}
