"""A full disk while recording stops the run cleanly: exit 3, a report, nothing durable lost."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import pipeline.state.writer as writer_module
from pipeline.client import Credentials
from pipeline.send import SendOptions
from pipeline.sync import SyncConfig, run_sync


def test_disk_full_mid_run_stops_with_exit_3_and_resumes(
    make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = make_sandbox(latency_ms=5)
    n = 1500
    source = tmp_path / "devices.csv"
    pl.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "device_token": [f"d{i:021d}:APA91b" + "z" * 140 for i in range(n)],
            "platform": ["ios"] * n,
            "os_version": ["17.4"] * n,
        }
    ).write_csv(source)
    config = SyncConfig(
        inputs=(source,),
        base_url=sandbox.base_url,
        state_dir=tmp_path / "state",
        report_dir=tmp_path / "r1",
        credentials=Credentials(api_key=sandbox.config.api_key),
        send=SendOptions(concurrency=8),
        handle_signals=False,
    )

    real_write_all = writer_module.write_all
    calls = {"n": 0}

    def filling_disk(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] > 1:  # the first batch lands, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_all(*args, **kwargs)

    monkeypatch.setattr(writer_module, "write_all", filling_disk)
    stopped = run_sync(config)
    assert stopped.exit_code == 3
    assert stopped.summary.stop_reason == "state_write_failed"
    assert "No space left" in (stopped.summary.stop_message or "")
    assert sum(stopped.outcomes.values()) == n
    assert stopped.outcomes["aborted"] > 0
    assert (tmp_path / "r1" / "summary.json").exists()

    monkeypatch.setattr(writer_module, "write_all", real_write_all)
    resumed = run_sync(SyncConfig(**{**config.__dict__, "report_dir": tmp_path / "r2"}))
    assert resumed.exit_code == 0
    assert resumed.outcomes["succeeded"] + resumed.summary.reasons.get("unchanged", 0) == n
    assert resumed.summary.reasons.get("unchanged", 0) > 0  # the durable first batch was kept
    assert {r.device_token for r in sandbox.state.registrations()} == set(
        pl.read_csv(source)["device_token"]
    )
