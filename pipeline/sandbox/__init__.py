"""A fake Masivo storefront API for the demo, tests and benchmarks.

Production code never imports this package. ``SandboxServer`` / ``run_sandbox_in_thread`` are
loaded lazily so that importing ``pipeline.sandbox.cli`` (to register the command) stays cheap.

Endpoints (under ``API_PREFIX`` = /api/storefront/v1):
    GET   /auth/authorize                  x-api-key -> {"data": "<HS256 JWT with iat, exp>"}
    PATCH /customers/{id}/devices          Bearer token; body per schemas/device-patch.schema.json
    GET   /customers/{id}                  {"data": {"customer": {"id", "devices": [...]}}}
Control (no auth): GET /_sandbox/{registrations,log,stats,config}, POST /_sandbox/{reset,revoke-tokens}

A PATCH is answered by the first rule that applies, in this order: injected fault (drop, 500,
503, 429 with Retry-After), rate-limit window exceeded (429, Retry-After = seconds to reset),
bad/missing/expired token (401), marketing automation off (400), body not JSON or not matching
the schema (400 with details), unknown customer (404), else 200 and the device is recorded.
Faults and the rate limit apply to PATCH only; every response carries X-RateLimit-* headers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.sandbox.config import API_PREFIX, DEFAULT_API_KEY, SandboxConfig

if TYPE_CHECKING:
    from pipeline.sandbox.app import SandboxApp
    from pipeline.sandbox.server import SandboxServer, run_sandbox_in_thread
    from pipeline.sandbox.state import LogEntry, Registration, SandboxState

__all__ = [
    "API_PREFIX",
    "DEFAULT_API_KEY",
    "LogEntry",
    "Registration",
    "SandboxApp",
    "SandboxConfig",
    "SandboxServer",
    "SandboxState",
    "run_sandbox_in_thread",
]

_LAZY = {
    "SandboxApp": "pipeline.sandbox.app",
    "SandboxServer": "pipeline.sandbox.server",
    "run_sandbox_in_thread": "pipeline.sandbox.server",
    "SandboxState": "pipeline.sandbox.state",
    "LogEntry": "pipeline.sandbox.state",
    "Registration": "pipeline.sandbox.state",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
