"""kill -9 against the state store: nothing durable is lost, nothing is corrupt."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from pipeline.state import StateStore

pytestmark = pytest.mark.slow

# The child records results in a loop with the production flush interval and reports, after
# each record() returns, how many results it has handed to the store.
RECORDER = """
import sys, time
from dataclasses import dataclass
from pathlib import Path
from pipeline.state import StateStore

@dataclass
class R:
    device_token: str
    customer_id: str
    outcome: str = "succeeded"
    platform: str = "android"
    model: str | None = None
    os_version: str | None = "34"
    reason: str | None = "registered"
    http_status: int | None = 200
    attempts: int = 1
    error: str | None = None
    row_id: int = 0

store = StateStore.open(Path(sys.argv[1]), run_id="victim")
n = 0
while True:
    store.record([R(f"t{i}", f"c{i}") for i in range(n, n + 25)])
    n += 25
    print(n, flush=True)
    time.sleep(0.002)
"""


def test_sigkill_while_recording_loses_at_most_the_last_second(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", RECORDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    reported: list[tuple[float, int]] = []

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            reported.append((time.monotonic(), int(line)))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(3.0)
    killed_at = time.monotonic()
    child.send_signal(signal.SIGKILL)
    child.wait()
    reader.join(5)
    must_have = max((n for t, n in reported if t <= killed_at - 1.5), default=0)
    assert must_have > 0, "the child recorded nothing in time; machine too slow?"

    with StateStore.open(tmp_path, run_id="next") as store:
        assert any("victim" in w for w in store.warnings)  # stale lock noticed and taken over
        snap = store.snapshot()
    tokens = snap["device_token"].str.slice(1).cast(pl.Int64).sort()
    # A contiguous prefix t0..tM-1, each once, M at least what was recorded 1.5 s before the kill.
    assert tokens.to_list() == list(range(len(tokens)))
    assert len(tokens) >= must_have
    assert (snap["customer_id"] == "c" + snap["device_token"].str.slice(1)).all()
    assert snap["accepted_run_id"].unique().to_list() == ["victim"]


# The child opens the store for writing (which compacts) and SIGKILLs itself at one point of
# the compaction, chosen by argv[2]: deterministic, unlike racing a timer against it.
OPENER = """
import os, signal, sys
from pathlib import Path
import pipeline.state.files as files_module
from pipeline.state import StateStore

def die():
    os.kill(os.getpid(), signal.SIGKILL)

point = sys.argv[2]
original_write = files_module.write_atomic
original_unlink = Path.unlink

def write_atomic(path, write):
    if point == "mid_snapshot_write":
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(b"PAR1" + b"x" * 1000)
        die()
    original_write(path, write)
    if point == "after_rename":
        die()

def unlink(self, missing_ok=False):
    original_unlink(self, missing_ok=missing_ok)
    if point == "after_first_journal_unlink" and self.suffix == ".jsonl":
        die()

files_module.write_atomic = write_atomic
Path.unlink = unlink
StateStore.open(Path(sys.argv[1]), run_id="opener", compact_now=True).close()
print("completed", flush=True)
"""


@dataclass
class Result:
    device_token: str
    customer_id: str
    outcome: str = "succeeded"
    platform: str = "ios"
    model: str | None = "iPhone"
    os_version: str | None = "17"
    reason: str | None = "registered"
    http_status: int | None = 200
    attempts: int = 1
    error: str | None = None
    row_id: int = 0


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pl.DataFrame]:
    """A folded snapshot plus two unfolded journals that overwrite each other's tokens."""
    pristine = tmp_path_factory.mktemp("pristine")
    with StateStore.open(pristine, run_id="first") as store:
        store.record([Result(f"t{i:06d}", "old") for i in range(50_000)])
    with StateStore.open(pristine, run_id="second", compact_now=True) as store:  # folds "first"
        store.record([Result(f"t{i:06d}", f"c{i}") for i in range(0, 80_000, 2)])
        store.record([Result(f"t{i:06d}", "x", outcome="failed") for i in range(1, 80_000, 6)])
    with StateStore.open(pristine, run_id="third", compact_now=False) as store:
        store.record([Result(f"t{i:06d}", "third") for i in range(0, 80_000, 4)])
    assert len(list((pristine / "journal").glob("*.jsonl"))) == 2
    with StateStore.open(pristine, run_id="peek", read_only=True) as reader:
        expected = reader.snapshot().sort("device_token")
    assert expected.filter(pl.col("device_token") == "t000004")["customer_id"].item() == "third"
    return pristine, expected


@pytest.mark.parametrize(
    "point", ["mid_snapshot_write", "after_rename", "after_first_journal_unlink", "none"]
)
def test_sigkill_during_compaction_leaves_old_or_new_state(
    tmp_path: Path, seeded: tuple[Path, pl.DataFrame], point: str
) -> None:
    pristine, expected = seeded
    state = tmp_path / "state"
    shutil.copytree(pristine, state)
    child = subprocess.run(
        [sys.executable, "-c", OPENER, str(state), point], capture_output=True, text=True
    )
    if point == "none":
        assert child.returncode == 0 and "completed" in child.stdout, child.stderr
    else:
        assert child.returncode == -signal.SIGKILL, child.stderr
    for run_id, read_only in (("check", True), ("check2", False), ("check3", False)):
        with StateStore.open(state, run_id=run_id, read_only=read_only, compact_now=True) as store:
            assert store.snapshot().sort("device_token").equals(expected)
    assert list((state / "journal").glob("*.jsonl")) == []
