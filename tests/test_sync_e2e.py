"""End to end through the CLI (CliRunner) against a real sandbox over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastjsonschema
import polars as pl
import pytest
from click.testing import CliRunner, Result

from pipeline.cli import main

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data" / "generic_devices.csv"
SUMMARY_SCHEMA = fastjsonschema.compile(
    json.loads((ROOT / "schemas" / "summary.schema.json").read_text())
)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    pl.DataFrame(rows).write_csv(path)
    return path


def fcm(i: int) -> str:
    # The shape of a modern FCM registration token: a 22-char installation id, ':', 'APA91b...'.
    return f"c{i:021d}:APA91b" + "x" * 140


def run_cli(args: list[str], sandbox: Any, **env: str) -> Result:
    environ = {"MASIVO_API_KEY": sandbox.config.api_key, "MASIVO_BASE_URL": sandbox.base_url}
    environ.update(env)
    return CliRunner().invoke(main, args, env=environ, catch_exceptions=False)


def summary_of(report_dir: Path) -> dict[str, Any]:
    summary = json.loads((report_dir / "summary.json").read_text())
    SUMMARY_SCHEMA(summary)
    assert sum(summary["outcomes"].values()) == summary["input_rows"]
    return summary


def test_sample_sync_registers_exactly_the_valid_rows(sandbox: Any, tmp_path: Path) -> None:
    state, reports = tmp_path / "state", tmp_path / "r1"
    validate = run_cli(["validate", str(SAMPLE), "--report-dir", str(tmp_path / "v")], sandbox)
    assert validate.exit_code == 0, validate.output
    expected = pl.read_parquet(tmp_path / "v" / "results.parquet").filter(
        pl.col("reason") == "dry_run"
    )

    result = run_cli(
        ["sync", str(SAMPLE), "--state-dir", str(state), "--report-dir", str(reports)], sandbox
    )
    assert result.exit_code == 0, result.output
    summary = summary_of(reports)
    rows = pl.read_csv(SAMPLE, infer_schema=False)
    assert summary["input_rows"] == rows.height
    assert summary["outcomes"]["succeeded"] == expected.height > 200
    assert summary["outcomes"]["invalid"] > 0

    registrations = sandbox.state.registrations()
    assert len(registrations) == expected.height
    assert all(r.accepted == 1 for r in registrations)
    results = pl.read_parquet(reports / "results.parquet")
    sent = results.filter(pl.col("outcome") == "succeeded")
    assert sorted(sent["customer_id"].to_list()) == sorted(r.customer_id for r in registrations)
    assert set(sent["http_status"].to_list()) == {200}
    assert "report:" in result.output


def test_second_run_on_unchanged_input_sends_nothing(sandbox: Any, tmp_path: Path) -> None:
    args = ["sync", str(SAMPLE), "--state-dir", str(tmp_path / "state")]
    first = run_cli([*args, "--report-dir", str(tmp_path / "r1")], sandbox)
    assert first.exit_code == 0, first.output
    patches = sandbox.state.status_count(200, "patch_devices")

    second = run_cli([*args, "--report-dir", str(tmp_path / "r2")], sandbox)
    assert second.exit_code == 0, second.output
    assert sandbox.state.status_count(200, "patch_devices") == patches
    summary = summary_of(tmp_path / "r2")
    assert summary["outcomes"]["succeeded"] == 0
    assert summary["reasons"]["unchanged"] == summary_of(tmp_path / "r1")["outcomes"]["succeeded"]


def test_unknown_customers_are_rejected_and_rest_delivered(
    make_sandbox: Callable[..., Any], tmp_path: Path
) -> None:
    sandbox = make_sandbox(unknown_customers={"ghost-1", "ghost-2"})
    rows = [
        {
            "customer_id": cid,
            "device_token": fcm(i),
            "platform": "android",
            "model": "Pixel 8",
            "os_version": "14",
        }
        for i, cid in enumerate(["c-1", "ghost-1", "c-3", "ghost-2"])
    ]
    source = write_csv(tmp_path / "in.csv", rows)
    result = run_cli(
        [
            "sync",
            str(source),
            "--state-dir",
            str(tmp_path / "s"),
            "--report-dir",
            str(tmp_path / "r"),
            "--max-failure-rate",
            "0.9",
        ],
        sandbox,
    )
    assert result.exit_code == 0, result.output
    summary = summary_of(tmp_path / "r")
    assert summary["outcomes"]["succeeded"] == 2
    assert summary["reasons"]["customer_not_found"] == 2
    devices = {r.customer_id: r.device_info for r in sandbox.state.registrations()}
    assert devices == {
        "c-1": {"platform": "android", "model": "Pixel 8", "osVersion": "34"},
        "c-3": {"platform": "android", "model": "Pixel 8", "osVersion": "34"},
    }
    strict = run_cli(
        [
            "sync",
            str(source),
            "--state-dir",
            str(tmp_path / "s"),
            "--report-dir",
            str(tmp_path / "r2"),
            "--max-failure-rate",
            "0.1",
        ],
        sandbox,
    )
    assert strict.exit_code == 1, strict.output  # the two ghosts failed again: 2 of 2 sent


def test_marketing_automation_off_stops_with_exit_3_and_accounts_for_every_row(
    make_sandbox: Callable[..., Any], tmp_path: Path
) -> None:
    sandbox = make_sandbox(marketing_automation_off=True)
    result = run_cli(
        [
            "sync",
            str(SAMPLE),
            "--state-dir",
            str(tmp_path / "s"),
            "--report-dir",
            str(tmp_path / "r"),
        ],
        sandbox,
    )
    assert result.exit_code == 3, result.output
    summary = summary_of(tmp_path / "r")
    assert summary["stop_reason"] == "marketing_automation_disabled"
    assert summary["outcomes"]["succeeded"] == 0
    assert summary["reasons"]["marketing_automation_disabled"] >= 200
    assert sandbox.state.status_count(400, "patch_devices") <= 2  # stopped at the first call(s)
    assert "marketing automation" in result.output.lower()


def test_missing_api_key_is_a_usage_error(sandbox: Any, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["sync", str(SAMPLE), "--state-dir", str(tmp_path / "s")],
        env={"MASIVO_API_KEY": "", "MASIVO_ACCESS_TOKEN": "", "MASIVO_BASE_URL": sandbox.base_url},
    )
    assert result.exit_code == 2
    assert "MASIVO_API_KEY" in result.output
    assert "Traceback" not in result.output


def test_unreadable_input_names_the_file_and_exits_2(sandbox: Any, tmp_path: Path) -> None:
    bad = tmp_path / "devices.csv"
    bad.write_bytes(b"customer_id,device_token,platform\n1,\xff\xfe broken,android\n")
    result = run_cli(["sync", str(bad), "--state-dir", str(tmp_path / "s")], sandbox)
    assert result.exit_code == 2, result.output
    assert "devices.csv" in result.output and "Traceback" not in result.output
    missing = run_cli(["validate", str(tmp_path / "nope.csv")], sandbox)
    assert missing.exit_code == 2 and "nope.csv" in missing.output


def test_secrets_never_reach_output_reports_or_state(sandbox: Any, tmp_path: Path) -> None:
    state, reports = tmp_path / "state", tmp_path / "r"
    result = run_cli(
        ["sync", str(SAMPLE), "--state-dir", str(state), "--report-dir", str(reports), "--debug"],
        sandbox,
    )
    assert result.exit_code == 0, result.output
    tokens = sandbox.state.issued_tokens()
    secrets = [sandbox.config.api_key, *tokens]
    assert sandbox.state.tokens_issued >= 1
    haystacks = [result.output]
    for path in [*state.rglob("*"), *reports.rglob("*")]:
        if path.is_file():
            haystacks.append(path.read_bytes().decode("utf-8", "replace"))
    for secret in secrets:
        assert all(secret not in text for text in haystacks)
    help_text = (
        CliRunner().invoke(main, ["sync", "--help"], env={"MASIVO_API_KEY": secrets[0]}).output
    )
    assert secrets[0] not in help_text


@pytest.mark.slow
def test_python_m_pipeline_runs_a_sync_in_a_subprocess(sandbox: Any, tmp_path: Path) -> None:
    env = dict(os.environ, MASIVO_API_KEY=sandbox.config.api_key, MASIVO_BASE_URL=sandbox.base_url)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "sync",
            str(SAMPLE),
            "--state-dir",
            str(tmp_path / "s"),
            "--report-dir",
            str(tmp_path / "r"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    assert summary_of(tmp_path / "r")["outcomes"]["succeeded"] > 200
    assert sandbox.config.api_key not in proc.stdout + proc.stderr


@pytest.mark.slow
def test_every_valid_row_is_delivered_through_5xx_429_and_dropped_connections(
    make_sandbox: Callable[..., Any], tmp_path: Path
) -> None:
    sandbox = make_sandbox(
        error_500_rate=0.05,
        error_503_rate=0.05,
        rate_429_rate=0.05,
        drop_rate=0.01,
        retry_after_s=1,
        seed=11,
    )
    n = 200  # each 429 pauses the whole run for Retry-After (1 s): keep the count modest
    rows = [
        {
            "customer_id": f"c-{i}",
            "device_token": fcm(i),
            "platform": "ios",
            "model": "iPhone15,2",
            "os_version": "iOS 17.4.1",
        }
        for i in range(n)
    ]
    source = write_csv(tmp_path / "in.csv", rows)
    result = run_cli(
        [
            "sync",
            str(source),
            "--state-dir",
            str(tmp_path / "s"),
            "--report-dir",
            str(tmp_path / "r"),
            "--concurrency",
            "16",
        ],
        sandbox,
    )
    assert result.exit_code == 0, result.output
    summary = summary_of(tmp_path / "r")
    assert summary["outcomes"]["succeeded"] == n
    stats = sandbox.state.stats()
    assert stats["faults"]  # the faults really happened
    assert summary["send"]["retries"] > 0 and summary["send"]["rate_limit_waits"] > 0
    registrations = sandbox.state.registrations()
    assert len(registrations) == n
    assert {r.device_info["osVersion"] for r in registrations} == {"17.4.1"}
