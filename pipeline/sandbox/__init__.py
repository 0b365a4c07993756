"""A fake Masivo storefront API for the demo, tests and benchmarks.

Production code never imports this package. ``SandboxServer`` / ``run_sandbox_in_thread`` are
loaded lazily so that importing ``pipeline.sandbox.cli`` (to register the command) stays cheap.
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
