"""Durable per-token record of what Masivo accepted: snapshot + journals, lock, version marker.

See store.py for the directory layout and the crash-safety argument.
"""

from .journal import PAYLOAD_COLUMNS, SNAPSHOT_SCHEMA
from .lock import StateLock
from .store import LAYOUT, ResultLike, StateStore
from .writer import StateWriteError

__all__ = [
    "LAYOUT",
    "PAYLOAD_COLUMNS",
    "SNAPSHOT_SCHEMA",
    "ResultLike",
    "StateLock",
    "StateStore",
    "StateWriteError",
]
