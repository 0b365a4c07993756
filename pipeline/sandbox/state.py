"""What the sandbox saw and accepted, readable from any thread.

The event loop thread is the only writer; tests read from their own thread. Every mutation and
every snapshot takes one lock, so a reader never iterates a dict while the loop resizes it.
Access tokens are kept here only to validate them: they never enter the log or a snapshot.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any


@dataclass(slots=True)
class Device:
    """One (customer, device token) pair as the sandbox last accepted it."""

    device_info: dict[str, Any]
    accepted: int  # how many PATCHes for this pair got a 200 (register-or-update)
    first_at: float
    last_at: float


@dataclass(frozen=True, slots=True)
class Registration:
    customer_id: str
    device_token: str
    device_info: dict[str, Any]
    accepted: int
    first_at: float
    last_at: float


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One API request. status 0 means the connection was dropped without a response."""

    time: float
    method: str
    route: str  # "authorize", "patch_devices", "get_customer", "not_found"
    customer_id: str | None
    status: int
    device_token: str | None = None
    fault: str | None = None  # the injected fault that decided the answer, if any


class SandboxState:
    """Recorded registrations, request log, counters and issued tokens."""

    def __init__(self, *, keep_request_log: bool = True, request_log: Path | None = None) -> None:
        self._lock = threading.Lock()
        self.keep_request_log = keep_request_log
        self._customers: dict[str, dict[str, Device]] = {}
        self._log: list[LogEntry] = []
        self._by_status: Counter[int] = Counter()
        self._by_route: dict[str, Counter[int]] = {}
        self._faults: Counter[str] = Counter()
        self._tokens: dict[str, float] = {}  # token -> exp (epoch seconds)
        self.tokens_issued = 0
        self._log_file: IO[str] | None = None
        if request_log is not None:
            request_log.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = request_log.open("a", encoding="utf-8")

    # ---- tokens -------------------------------------------------------------------------

    def add_token(self, token: str, exp: float) -> None:
        with self._lock:
            self._tokens[token] = exp
            self.tokens_issued += 1

    def token_valid(self, token: str, now: float) -> bool:
        exp = self._tokens.get(token)
        return exp is not None and now < exp

    def issued_tokens(self) -> list[str]:
        """Every access token still known, for tests asserting that none leaked into output."""
        with self._lock:
            return list(self._tokens)

    def revoke_tokens(self) -> int:
        """Forget every issued token, as if the account's keys were rotated; returns the count."""
        with self._lock:
            n = len(self._tokens)
            self._tokens.clear()
            return n

    # ---- writes (event loop thread) -----------------------------------------------------

    def record(self, entry: LogEntry) -> None:
        with self._lock:
            self._by_status[entry.status] += 1
            route = self._by_route.get(entry.route)
            if route is None:
                route = self._by_route[entry.route] = Counter()
            route[entry.status] += 1
            if entry.fault:
                self._faults[entry.fault] += 1
            if self.keep_request_log:
                self._log.append(entry)
            if self._log_file is not None:
                # Flushed per line so a parent process can tail it while the server runs.
                self._log_file.write(json.dumps(asdict(entry), ensure_ascii=False) + "\n")
                self._log_file.flush()

    def register(
        self, customer_id: str, token: str, device_info: dict[str, Any], now: float
    ) -> None:
        with self._lock:
            devices = self._customers.get(customer_id)
            if devices is None:
                devices = self._customers[customer_id] = {}
            device = devices.get(token)
            if device is None:
                devices[token] = Device(device_info, 1, now, now)
            else:
                device.device_info = device_info
                device.accepted += 1
                device.last_at = now

    # ---- reads (any thread) -------------------------------------------------------------

    def registrations(self) -> list[Registration]:
        """Every accepted (customer, token) pair in first-accepted order per customer."""
        with self._lock:
            return [
                Registration(cid, tok, dict(d.device_info), d.accepted, d.first_at, d.last_at)
                for cid, devices in self._customers.items()
                for tok, d in devices.items()
            ]

    def devices_of(self, customer_id: str) -> dict[str, dict[str, Any]]:
        """token -> device_info for one customer (empty when nothing was accepted)."""
        with self._lock:
            return {t: dict(d.device_info) for t, d in self._customers.get(customer_id, {}).items()}

    def device(self, customer_id: str, token: str) -> Device | None:
        with self._lock:
            d = self._customers.get(customer_id, {}).get(token)
            return (
                None
                if d is None
                else Device(dict(d.device_info), d.accepted, d.first_at, d.last_at)
            )

    def accepted_count(self, customer_id: str, token: str) -> int:
        d = self.device(customer_id, token)
        return 0 if d is None else d.accepted

    @property
    def request_log(self) -> list[LogEntry]:
        with self._lock:
            return list(self._log)

    def stats(self) -> dict[str, Any]:
        """Counts of API requests; JSON-safe (status codes as strings, 0 = dropped)."""
        with self._lock:
            return {
                "total": sum(self._by_status.values()),
                "by_status": {str(k): v for k, v in sorted(self._by_status.items())},
                "by_route": {
                    r: {str(k): v for k, v in sorted(c.items())} for r, c in self._by_route.items()
                },
                "faults": dict(self._faults),
                "dropped": self._by_status.get(0, 0),
                "customers": len(self._customers),
                "registrations": sum(len(d) for d in self._customers.values()),
                "tokens_issued": self.tokens_issued,
            }

    def status_count(self, status: int, route: str | None = None) -> int:
        with self._lock:
            if route is None:
                return self._by_status.get(status, 0)
            return self._by_route.get(route, Counter()).get(status, 0)

    # ---- lifecycle ----------------------------------------------------------------------

    def reset(self) -> None:
        """Forget registrations, log and counters; issued tokens stay valid."""
        with self._lock:
            self._customers.clear()
            self._log.clear()
            self._by_status.clear()
            self._by_route.clear()
            self._faults.clear()

    def close(self) -> None:
        with self._lock:
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None
