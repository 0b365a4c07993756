"""Incremental runs, plan, reconcile, state commands, and crash safety, against the sandbox."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner, Result

from pipeline.cli import main

ROOT = Path(__file__).resolve().parent.parent


def fcm(i: int) -> str:
    return f"c{i:021d}:APA91b" + "y" * 140


def devices(n: int, *, os_version: str = "14") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "customer_id": [f"cust-{i % (n // 2 or 1):06d}" for i in range(n)],
            "device_token": [fcm(i) for i in range(n)],
            "platform": ["android"] * n,
            "model": [f"Pixel {i % 9}" for i in range(n)],
            "os_version": [os_version] * n,
        }
    )


def cli(args: list[str], sandbox: Any) -> Result:
    env = {"MASIVO_API_KEY": sandbox.config.api_key, "MASIVO_BASE_URL": sandbox.base_url}
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False)


def summary(path: Path) -> dict[str, Any]:
    data = json.loads((path / "summary.json").read_text())
    assert sum(data["outcomes"].values()) == data["input_rows"]
    return data


def patches(sandbox: Any) -> int:
    return sum(1 for e in sandbox.state.request_log if e.route == "patch_devices")


def test_only_changed_rows_are_sent_and_plan_sends_nothing(sandbox: Any, tmp_path: Path) -> None:
    source = tmp_path / "devices.csv"
    frame = devices(1000)
    frame.write_csv(source)
    state = str(tmp_path / "state")
    assert cli(["sync", str(source), "--state-dir", state], sandbox).exit_code == 0
    first = patches(sandbox)
    assert first == 1000

    # change 1%: ten rows get a new model
    changed_rows = list(range(0, 1000, 100))
    frame = frame.with_columns(
        pl.when(pl.int_range(pl.len()).is_in(changed_rows))
        .then(pl.lit("Pixel 10 Pro"))
        .otherwise(pl.col("model"))
        .alias("model")
    )
    frame.write_csv(source)

    plan = cli(
        ["plan", str(source), "--state-dir", state, "--report-dir", str(tmp_path / "p")], sandbox
    )
    assert plan.exit_code == 0, plan.output
    assert patches(sandbox) == first  # a plan sends nothing
    planned = summary(tmp_path / "p")
    assert planned["changes"] == {"new": 0, "changed": 10, "unchanged": 990, "removed": 0}
    assert planned["reasons"]["dry_run"] == 10

    run = cli(
        ["sync", str(source), "--state-dir", state, "--report-dir", str(tmp_path / "r")], sandbox
    )
    assert run.exit_code == 0, run.output
    sent = [e.device_token for e in sandbox.state.request_log if e.route == "patch_devices"][first:]
    assert sorted(sent) == sorted(fcm(i) for i in changed_rows)
    assert summary(tmp_path / "r")["outcomes"]["succeeded"] == 10


def test_failed_rows_are_resent_next_run_and_then_not_again(
    make_sandbox: Any, tmp_path: Path
) -> None:
    sandbox = make_sandbox(error_500_rate=1.0)
    source = tmp_path / "devices.csv"
    devices(6).write_csv(source)
    state = str(tmp_path / "state")
    args = ["sync", str(source), "--state-dir", state, "--max-attempts", "2", "--no-preflight"]
    failing = cli([*args, "--report-dir", str(tmp_path / "r1")], sandbox)
    assert failing.exit_code == 0, failing.output
    assert summary(tmp_path / "r1")["outcomes"]["failed"] == 6

    sandbox.reconfigure(error_500_rate=0.0)
    healed = cli([*args, "--report-dir", str(tmp_path / "r2")], sandbox)
    assert healed.exit_code == 0
    assert summary(tmp_path / "r2")["outcomes"]["succeeded"] == 6
    assert len(sandbox.state.registrations()) == 6

    quiet = cli([*args, "--report-dir", str(tmp_path / "r3")], sandbox)
    assert quiet.exit_code == 0
    assert summary(tmp_path / "r3")["reasons"] == {"unchanged": 6}


def test_reconcile_and_state_commands(sandbox: Any, tmp_path: Path) -> None:
    source = tmp_path / "devices.csv"
    frame = devices(20)
    frame.write_csv(source)
    state = tmp_path / "state"
    assert cli(["sync", str(source), "--state-dir", str(state)], sandbox).exit_code == 0

    moved = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 0)
        .then(pl.lit("someone-else"))
        .otherwise("customer_id")
        .alias("customer_id")
    ).head(19)  # the last token disappears from the source
    moved.write_csv(source)
    result = cli(
        [
            "reconcile",
            str(source),
            "--state-dir",
            str(state),
            "--report-dir",
            str(tmp_path / "rec"),
        ],
        sandbox,
    )
    assert result.exit_code == 0, result.output
    counts = summary(tmp_path / "rec")["reconcile"]
    assert counts == {"in_sync": 18, "moved_customer": 1, "removed_from_source": 1}
    table = pl.read_csv(tmp_path / "rec" / "reconcile.csv")
    assert "device_token" not in table.columns  # masked unless asked

    show = CliRunner().invoke(main, ["state", "show", "--state-dir", str(state)])
    assert show.exit_code == 0 and "accepted by Masivo: 20" in show.output
    out = tmp_path / "state.parquet"
    export = CliRunner().invoke(main, ["state", "export", str(out), "--state-dir", str(state)])
    assert export.exit_code == 0 and pl.read_parquet(out).height == 20
    refused = CliRunner().invoke(main, ["state", "reset", "--state-dir", str(state)])
    assert refused.exit_code == 2 and "--yes" in refused.output
    wiped = CliRunner().invoke(main, ["state", "reset", "--yes", "--state-dir", str(state)])
    assert wiped.exit_code == 0
    again = cli(
        ["sync", str(source), "--state-dir", str(state), "--report-dir", str(tmp_path / "r")],
        sandbox,
    )
    assert again.exit_code == 0 and summary(tmp_path / "r")["outcomes"]["succeeded"] == 19


def test_state_of_another_layout_is_refused(sandbox: Any, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "state.json").write_text('{"layout": 99}')
    devices(4).write_csv(tmp_path / "d.csv")
    result = cli(["sync", str(tmp_path / "d.csv"), "--state-dir", str(state)], sandbox)
    assert result.exit_code == 2
    assert "layout" in result.output and "Traceback" not in result.output


def _spawn_sync(source: Path, state: Path, sandbox: Any, *extra: str) -> subprocess.Popen[str]:
    env = dict(os.environ, MASIVO_API_KEY=sandbox.config.api_key, MASIVO_BASE_URL=sandbox.base_url)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "sync",
            str(source),
            "--state-dir",
            str(state),
            "-q",
            "--concurrency",
            "16",
            *extra,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing(make_sandbox: Any, tmp_path: Path) -> None:
    sandbox = make_sandbox(latency_ms=10)
    source = tmp_path / "devices.csv"
    n = 3000
    devices(n).write_csv(source)
    state = tmp_path / "state"
    rng = random.Random(7)
    kills = 0
    started = time.monotonic()
    for _attempt in range(12):
        proc = _spawn_sync(source, state, sandbox)
        try:
            proc.wait(timeout=rng.uniform(1.5, 3.0))
            assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
            break
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
    else:
        pytest.fail("the sync never completed")
    elapsed = time.monotonic() - started
    assert kills >= 1

    registrations = sandbox.state.registrations()
    assert {r.device_token for r in registrations} == {fcm(i) for i in range(n)}  # rows lost = 0
    resent = sum(r.accepted - 1 for r in registrations)
    rate = sum(r.accepted for r in registrations) / elapsed
    # at most the calls in flight plus what completed in the last second before each kill
    assert resent <= kills * (16 + rate * 1.0), (resent, kills, rate)
    final = CliRunner().invoke(main, ["state", "show", "--state-dir", str(state)])
    assert f"accepted by Masivo: {n:,}" in final.output


@pytest.mark.slow
def test_sigint_and_sigterm_leave_a_report_and_a_consistent_state(
    make_sandbox: Any, tmp_path: Path
) -> None:
    sandbox = make_sandbox(latency_ms=20)
    source = tmp_path / "devices.csv"
    devices(4000).write_csv(source)
    state = tmp_path / "state"
    for signum, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        report_dir = tmp_path / f"r{signum}"
        proc = _spawn_sync(source, state, sandbox, "--report-dir", str(report_dir))
        time.sleep(2.0)
        proc.send_signal(signum)
        proc.wait(timeout=60)
        assert proc.returncode == code, proc.stderr.read() if proc.stderr else ""
        data = summary(report_dir)
        assert data["stop_reason"] == "interrupted"
        assert data["outcomes"]["aborted"] > 0
    accepted = {r.device_token for r in sandbox.state.registrations()}
    finish = _spawn_sync(source, state, sandbox, "--report-dir", str(tmp_path / "final"))
    assert finish.wait(timeout=120) == 0
    final = summary(tmp_path / "final")
    assert final["outcomes"]["succeeded"] + final["reasons"].get("unchanged", 0) == 4000
    # nothing accepted before the interruptions was sent again
    assert final["reasons"].get("unchanged", 0) >= len(accepted) - 32


def test_a_second_run_on_the_same_state_is_refused(make_sandbox: Any, tmp_path: Path) -> None:
    sandbox = make_sandbox(latency_ms=50)
    source = tmp_path / "devices.csv"
    devices(2000).write_csv(source)
    state = tmp_path / "state"
    first = _spawn_sync(source, state, sandbox)
    try:
        deadline = time.monotonic() + 20
        while patches(sandbox) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        second = cli(["sync", str(source), "--state-dir", str(state)], sandbox)
        assert second.exit_code == 2, second.output
        assert "in use by run" in second.output
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()


def test_state_commands_on_a_missing_directory_are_usage_errors(tmp_path: Path) -> None:
    for args in (["state", "show"], ["state", "reset", "--yes"]):
        result = CliRunner().invoke(main, [*args, "--state-dir", str(tmp_path / "nope")])
        assert result.exit_code == 2
        assert "no state directory" in result.output and "Traceback" not in result.output
