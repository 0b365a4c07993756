"""masivo-device-sync: move push device tokens from legacy exports into Masivo.

The public API a cron wrapper or an Airflow task needs::

    from pipeline import SyncConfig, run_sync
    result = run_sync(SyncConfig(inputs=("export.csv",)))

Everything else lives in the stage modules (see docs/architecture.md).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "SyncConfig": "pipeline.sync",
    "SyncResult": "pipeline.sync",
    "run_sync": "pipeline.sync",
    "SourceOptions": "pipeline.sources",
    "NormalizeOptions": "pipeline.normalize",
    "SendOptions": "pipeline.send",
    "ClientOptions": "pipeline.client",
    "Credentials": "pipeline.client",
    "MasivoSyncError": "pipeline.errors",
    "UsageError": "pipeline.errors",
    "InputError": "pipeline.errors",
    "ConfigError": "pipeline.errors",
    "SystemicStop": "pipeline.errors",
    "Outcome": "pipeline.outcomes",
    "REASONS": "pipeline.outcomes",
}

__all__ = [  # noqa: RUF022 - grouped like _EXPORTS
    "__version__",
    "SyncConfig",
    "SyncResult",
    "run_sync",
    "SourceOptions",
    "NormalizeOptions",
    "SendOptions",
    "ClientOptions",
    "Credentials",
    "MasivoSyncError",
    "UsageError",
    "InputError",
    "ConfigError",
    "SystemicStop",
    "Outcome",
    "REASONS",
]

if TYPE_CHECKING:
    from pipeline.client import ClientOptions, Credentials
    from pipeline.errors import ConfigError, InputError, MasivoSyncError, SystemicStop, UsageError
    from pipeline.normalize import NormalizeOptions
    from pipeline.outcomes import REASONS, Outcome
    from pipeline.send import SendOptions
    from pipeline.sources import SourceOptions
    from pipeline.sync import SyncConfig, SyncResult, run_sync


def __getattr__(name: str) -> Any:
    # Lazy: `import pipeline` stays cheap, and the CLI imports only what a command needs.
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
