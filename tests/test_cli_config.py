"""Config file precedence, `config show`, `runs`, `report RUN` and JSON logs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pipeline.cli import main

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data" / "generic_devices.csv"


def invoke(args: list[str], **env: str) -> Any:
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False)


def test_precedence_env_over_file_over_default(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("concurrency = 32\nmax_attempts = 7\n[sync]\nmax_failure_rate = 0.05\n")
    shown = invoke(
        ["--config", str(config), "config", "show", "sync", "--json"],
        MASIVO_SYNC_CONCURRENCY="48",
        MASIVO_API_KEY="super-secret-key-123",
    )
    assert shown.exit_code == 0, shown.output
    rows = {r["option"]: r for r in map(json.loads, shown.output.splitlines())}
    assert rows["--concurrency"]["value"] == "48"
    assert rows["--concurrency"]["source"] == "env MASIVO_SYNC_CONCURRENCY"
    assert rows["--max-attempts"]["value"] == "7"
    assert rows["--max-attempts"]["source"].endswith("c.toml")
    assert rows["--max-failure-rate"]["value"] == "0.05"
    assert rows["--read-timeout"]["source"] == "default"
    assert rows["MASIVO_API_KEY"]["value"] == "set (hidden)"
    assert "super-secret-key-123" not in shown.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("concurency = 3\n", "unknown option(s) concurency"),
        ("api_key = 'abc'\n", "holds a secret"),
        ("[sink]\nx = 1\n", "[sink] is not a command"),
        ("concurrency = \n", "not valid TOML"),
    ],
)
def test_bad_config_files_are_usage_errors(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(text)
    result = invoke(["--config", str(config), "validate", str(SAMPLE)])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_config_file_values_reach_the_run(sandbox: Any, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\n[sync]\nconcurrency = 4\n')
    env = {"MASIVO_API_KEY": sandbox.config.api_key, "MASIVO_BASE_URL": sandbox.base_url}
    result = invoke(["--config", str(config), "sync", str(SAMPLE), "--log-format", "json"], **env)
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    summary = next(e for e in events if e["event"] == "summary")
    assert summary["outcomes"]["succeeded"] > 200 and summary["exit_code"] == 0
    assert Path(summary["report_dir"]).is_relative_to(tmp_path / "state")

    runs = invoke(["runs", "--state-dir", str(tmp_path / "state"), "--json"])
    history = [json.loads(line) for line in runs.output.splitlines()]
    assert len(history) == 1 and history[0]["run_id"] == summary["run_id"]
    table = invoke(["runs", "--state-dir", str(tmp_path / "state")])
    assert summary["run_id"] in table.output

    again = invoke(["report", summary["run_id"][:18], "--state-dir", str(tmp_path / "state")])
    assert again.exit_code == 0, again.output
    assert summary["report_dir"] in again.output.replace("\n", "")
    missing = invoke(["report", "nope", "--state-dir", str(tmp_path / "state")])
    assert missing.exit_code == 1 and "no run 'nope'" in missing.output


def test_json_errors_are_json(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["validate", str(tmp_path / "missing.csv"), "--log-format", "json"]
    )
    assert result.exit_code == 2
    event = json.loads(result.output.strip().splitlines()[-1])
    assert event["event"] == "error" and "missing.csv" in event["message"]


@pytest.mark.parametrize(("meaning", "sent"), [("release", "34"), ("api", "14")])
def test_android_version_flag_decides_what_a_bare_number_means(
    tmp_path: Path, meaning: str, sent: str
) -> None:
    source = tmp_path / "a.csv"
    source.write_text(
        "customer_id,device_token,platform,os_version\n"
        "c1,c000000000000000000001:APA91bxxxxxxxxxxxxxxxxxxxxxxxxxxxx,android,14\n"
    )
    result = invoke(
        ["validate", str(source), "--android-version", meaning, "--report-dir", str(tmp_path / "r")]
    )
    assert result.exit_code == 0, result.output
    import polars as pl

    assert pl.read_parquet(tmp_path / "r" / "results.parquet")["os_version"][0] == sent
