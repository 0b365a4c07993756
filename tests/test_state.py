"""StateStore: durability, journal folding, layout marker, lock, write errors."""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from pipeline.errors import StateLockedError, StateVersionError, SystemicStop
from pipeline.state import SNAPSHOT_SCHEMA, StateStore, StateWriteError
from pipeline.state import writer as writer_module


@dataclass
class Result:
    device_token: str
    outcome: str = "succeeded"
    customer_id: str = "c1"
    platform: str = "android"
    model: str | None = "Pixel 7"
    os_version: str | None = "34"
    reason: str | None = "registered"
    http_status: int | None = 200
    attempts: int = 1
    error: str | None = None
    row_id: int = 0


def row(store: StateStore, token: str) -> dict[str, object]:
    found = store.snapshot().filter(pl.col("device_token") == token)
    assert found.height == 1, found
    return found.row(0, named=True)


def journals(directory: Path) -> list[Path]:
    return sorted((directory / "journal").glob("*.jsonl"))


def test_record_survives_reopen_with_nulls(tmp_path: Path) -> None:
    with StateStore.open(tmp_path, run_id="r1") as store:
        store.record([Result("t1", model=None, os_version=None), Result("t2", customer_id="c2")])
    with StateStore.open(tmp_path, run_id="r2", compact_now=True) as store:
        snap = store.snapshot()
        assert dict(snap.schema) == SNAPSHOT_SCHEMA
        assert snap.height == 2
        t1 = row(store, "t1")
        assert (t1["customer_id"], t1["model"], t1["os_version"]) == ("c1", None, None)
        assert t1["accepted_run_id"] == "r1" and t1["accepted_at"] is not None
        assert t1["last_error_at"] is None
    assert journals(tmp_path) == []  # folded into tokens.parquet by the second open


def test_snapshot_includes_this_runs_records(tmp_path: Path) -> None:
    with StateStore.open(tmp_path, run_id="r1") as store:
        assert store.snapshot().height == 0
        store.record([Result("t1")])
        assert row(store, "t1")["customer_id"] == "c1"


def test_failure_keeps_accepted_payload(tmp_path: Path) -> None:
    with StateStore.open(tmp_path, run_id="r1") as store:
        store.record([Result("t1", customer_id="c1")])
    with StateStore.open(tmp_path, run_id="r2") as store:
        store.record(
            [
                Result("t1", outcome="failed", customer_id="c9", reason="timeout", error="boom"),
                Result("t2", outcome="rejected", reason="customer_not_found", http_status=404),
                Result("t3", outcome="skipped", reason="unchanged"),  # nothing to store
            ]
        )
    with StateStore.open(tmp_path, run_id="r3", read_only=True) as store:
        t1 = row(store, "t1")
        assert (t1["customer_id"], t1["accepted_run_id"]) == ("c1", "r1")
        assert (t1["last_error_reason"], t1["last_error"], t1["last_error_run_id"]) == (
            "timeout",
            "boom",
            "r2",
        )
        assert t1["last_error_at"] > t1["accepted_at"]
        t2 = row(store, "t2")  # never accepted: only the failure is known
        assert t2["customer_id"] is None and t2["last_error_reason"] == "customer_not_found"
        assert store.snapshot().filter(pl.col("device_token") == "t3").height == 0


def test_later_success_overrides_payload_and_is_newer_than_error(tmp_path: Path) -> None:
    with StateStore.open(tmp_path, run_id="r1") as store:
        store.record([Result("t1", outcome="aborted", reason="interrupted")])
    with StateStore.open(tmp_path, run_id="r2") as store:
        store.record([Result("t1", customer_id="c2", model="M")])
    with StateStore.open(tmp_path, run_id="r3") as store:
        t1 = row(store, "t1")
        assert (t1["customer_id"], t1["model"]) == ("c2", "M")
        assert t1["accepted_at"] > t1["last_error_at"]


def test_background_flush_makes_records_durable_within_a_second(tmp_path: Path) -> None:
    store = StateStore.open(tmp_path, run_id="r1", flush_interval=0.2)
    try:
        store.record([Result("t1")])
        time.sleep(1.0)
        # Another process's view: read-only, straight from disk, no flush() called.
        with StateStore.open(tmp_path, run_id="peek", read_only=True) as peek:
            assert peek.snapshot()["device_token"].to_list() == ["t1"]
    finally:
        store.close()


def test_torn_last_line_is_ignored(tmp_path: Path) -> None:
    with StateStore.open(tmp_path, run_id="r1") as store:
        store.record([Result("t1"), Result("t2")])
    (journal,) = journals(tmp_path)
    with journal.open("ab") as handle:
        handle.write(b'{"at":1,"run":"r1","o":"succeeded","tok":"t3","ci')
    with StateStore.open(tmp_path, run_id="r2") as store:
        assert sorted(store.snapshot()["device_token"]) == ["t1", "t2"]


def test_garbage_after_last_fsync_keeps_the_good_prefix(tmp_path: Path) -> None:
    with StateStore.open(tmp_path, run_id="r1") as store:
        store.record([Result("t1")])
    (journal,) = journals(tmp_path)
    with journal.open("ab") as handle:  # what a power cut can leave: zeros, then a stray line
        handle.write(b"\0" * 64 + b"\n" + b'{"at":1,"run":"r1","o":"succeeded","tok":"t9"}\n')
    with StateStore.open(tmp_path, run_id="r2") as store:
        assert store.snapshot()["device_token"].to_list() == ["t1"]


def test_leftover_journal_after_compaction_is_not_applied_again(tmp_path: Path) -> None:
    # Two runs that did not compact: two pending journals, the newer one wins for t1.
    with StateStore.open(tmp_path, run_id="r1", compact_now=False) as store:
        store.record([Result("t1", customer_id="old")])
    with StateStore.open(tmp_path, run_id="r2", compact_now=False) as store:
        store.record([Result("t1", customer_id="new")])
    j1, _ = journals(tmp_path)
    saved = tmp_path / "saved.jsonl"
    shutil.copy(j1, saved)
    with StateStore.open(tmp_path, run_id="r3", compact_now=True) as store:  # folds both
        assert row(store, "t1")["customer_id"] == "new"
    # Crash between the snapshot rename and the unlink of j1: j1 is back, already folded.
    shutil.copy(saved, j1)
    for run_id, read_only in (("show", True), ("r4", False), ("r5", False)):
        with StateStore.open(
            tmp_path, run_id=run_id, read_only=read_only, compact_now=True
        ) as store:
            assert row(store, "t1")["customer_id"] == "new"
    assert journals(tmp_path) == []


def test_small_journals_stay_pending_and_apply_in_sequence_order(tmp_path: Path) -> None:
    for run, customer in (("r1", "a"), ("r2", "b"), ("r3", "c")):
        with StateStore.open(tmp_path, run_id=run) as store:  # auto: too small to fold
            store.record([Result("t1", customer_id=customer)])
    names = [p.name for p in journals(tmp_path)]
    assert [n.split("-")[0] for n in names] == ["0000000001", "0000000002", "0000000003"]
    # The sequence, not the clock, orders them: make the clock part of the names lie.
    for path in journals(tmp_path):
        seq, _, rest = path.name.split("-", 2)
        path.rename(path.with_name(f"{seq}-{10**19 - int(seq)}-{rest}"))
    with StateStore.open(tmp_path, run_id="show", read_only=True) as store:
        assert row(store, "t1")["customer_id"] == "c"
    with StateStore.open(tmp_path, run_id="r4", compact_now=True) as store:
        assert row(store, "t1")["customer_id"] == "c"
        store.record([Result("t2")])
    assert journals(tmp_path)[0].name.startswith("0000000004-")  # numbering goes on


def test_crash_during_snapshot_write_leaves_old_snapshot(tmp_path: Path) -> None:
    with StateStore.open(tmp_path, run_id="r1") as store:
        store.record([Result("t1")])
    with StateStore.open(tmp_path, run_id="r2") as store:
        store.record([Result("t2")])
    # A half-written temp snapshot from a killed compaction, next to the journals it was folding.
    (tmp_path / f".tokens.parquet.{os.getpid() + 1}.tmp").write_bytes(b"PAR1 half")
    with StateStore.open(tmp_path, run_id="r3", compact_now=True) as store:
        assert sorted(store.snapshot()["device_token"]) == ["t1", "t2"]
    assert not list(tmp_path.glob(".*.tmp"))


def test_read_only_sees_unfolded_journals_and_needs_no_lock(tmp_path: Path) -> None:
    with StateStore.open(tmp_path, run_id="r1") as writer:
        writer.record([Result("t1")])
        writer.flush()
        with StateStore.open(tmp_path, run_id="show", read_only=True) as reader:
            assert reader.snapshot()["device_token"].to_list() == ["t1"]
            with pytest.raises(RuntimeError):
                reader.record([Result("t2")])


def test_read_only_on_missing_directory_is_empty(tmp_path: Path) -> None:
    with StateStore.open(tmp_path / "nope", run_id="x", read_only=True) as store:
        assert store.snapshot().height == 0 and store.runs() == []
    assert not (tmp_path / "nope").exists()


@pytest.mark.parametrize(("layout", "words"), [(2, "newer"), (0, "reset"), ("x", "reset")])
def test_other_layout_is_refused(tmp_path: Path, layout: object, words: str) -> None:
    (tmp_path / "state.json").write_text(json.dumps({"layout": layout}))
    for read_only in (False, True):
        with pytest.raises(StateVersionError) as info:
            StateStore.open(tmp_path, run_id="r", read_only=read_only)
        assert "layout" in str(info.value) and words in str(info.value)
        assert info.value.exit_code == 2


def test_corrupt_marker_and_foreign_directory_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "state.json").write_text("{not json")
    with pytest.raises(StateVersionError, match="not valid JSON"):
        StateStore.open(tmp_path / "a", run_id="r")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "photos.txt").write_text("x")
    with pytest.raises(StateVersionError, match="not a state directory"):
        StateStore.open(tmp_path / "b", run_id="r")


def test_permissions_are_private(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    with StateStore.open(directory, run_id="r1") as store:
        store.record([Result("t1")])
        store.finish_run({"succeeded": 1})
    with StateStore.open(directory, run_id="r2"):
        pass
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for path in directory.rglob("*"):
        expected = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def test_second_writer_is_refused_with_holder_details(tmp_path: Path) -> None:
    with StateStore.open(tmp_path, run_id="nightly-1"):
        with pytest.raises(StateLockedError) as info:
            StateStore.open(tmp_path, run_id="nightly-2")
        message = str(info.value)
        assert "nightly-1" in message and str(os.getpid()) in message
        assert info.value.exit_code == 2
    with StateStore.open(tmp_path, run_id="nightly-3"):  # released on close
        pass


def test_lock_held_by_another_process_is_refused(tmp_path: Path) -> None:
    code = (
        "import sys, time; from pathlib import Path; from pipeline.state import StateStore\n"
        f"s = StateStore.open(Path({str(tmp_path)!r}), run_id='other')\n"
        "print('locked', flush=True); time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        with pytest.raises(StateLockedError, match=f"pid {child.pid}"):
            StateStore.open(tmp_path, run_id="me")
    finally:
        child.kill()
        child.wait()
    with StateStore.open(tmp_path, run_id="me") as store:  # the kernel dropped its flock
        assert any("Took over" in w and "other" in w for w in store.warnings)


def test_stale_lock_with_dead_pid_is_taken_over(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(dead.stdout)
    (tmp_path / "lock").write_text(
        json.dumps(
            {"pid": pid, "host": socket.gethostname(), "run_id": "crashed", "started_at": "x"}
        )
    )
    with StateStore.open(tmp_path, run_id="r2") as store:
        assert len(store.warnings) == 1 and f"pid {pid}" in store.warnings[0]
    assert (tmp_path / "lock").read_text() == ""  # released cleanly
    with StateStore.open(tmp_path, run_id="r3") as store:
        assert store.warnings == []


def test_enospc_raises_state_write_error_and_keeps_durable_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = StateStore.open(tmp_path, run_id="r1")
    store.record([Result("t1")])
    store.flush()
    (journal,) = journals(tmp_path)
    durable = journal.read_bytes()

    def full_disk(fd: int, data: bytes) -> None:
        os.write(fd, bytes(data)[:10])  # a partial write, as a filling disk does
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer_module, "write_all", full_disk)
    store.record([Result("t2")])
    with pytest.raises(StateWriteError) as info:
        store.flush()
    assert isinstance(info.value, SystemicStop) and info.value.reason == "state_write_failed"
    assert info.value.exit_code == 3 and "No space left" in str(info.value)
    assert journal.read_bytes() == durable  # the torn bytes were cut off again
    with pytest.raises(StateWriteError):  # sticky: the run must stop
        store.record([Result("t3")])
    monkeypatch.undo()
    with pytest.raises(StateWriteError):
        store.close()
    with StateStore.open(tmp_path, run_id="r2") as again:
        assert again.snapshot()["device_token"].to_list() == ["t1"]


def test_enospc_in_background_flush_surfaces_on_next_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer_module.os, "fdatasync", full_disk)
    store = StateStore.open(tmp_path, run_id="r1", flush_interval=0.05)
    store.record([Result("t1")])
    deadline = time.monotonic() + 5
    with pytest.raises(StateWriteError):
        while time.monotonic() < deadline:
            store.record([])
            time.sleep(0.02)
    monkeypatch.undo()
    with pytest.raises(StateWriteError):
        store.close()
    assert not (tmp_path / "lock").read_text()  # lock released despite the error


def test_runs_reset_export(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with StateStore.open(state, run_id="r1") as store:
        store.record([Result("t1"), Result("t2", outcome="failed", reason="timeout")])
        store.finish_run({"succeeded": 1, "failed": 1})
        store.export(tmp_path / "out.parquet")
    exported = pl.read_parquet(tmp_path / "out.parquet")
    assert sorted(exported["device_token"]) == ["t1", "t2"]
    with (state / "runs.jsonl").open("ab") as handle:
        handle.write(b'{"run_id": "torn')  # a crash while appending
    with StateStore.open(state, run_id="r2") as store:
        (run,) = store.runs()
        assert run["run_id"] == "r1" and run["summary"] == {"succeeded": 1, "failed": 1}
        assert run["started_at"] <= run["finished_at"]
        store.record([Result("t3")])
        store.reset()
        assert store.snapshot().height == 0 and store.runs() == []
        store.record([Result("t4")])
    with StateStore.open(state, run_id="r3") as store:
        assert store.snapshot()["device_token"].to_list() == ["t4"]
