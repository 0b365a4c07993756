"""Secrets never leak; hostile customer ids reach Masivo as exactly themselves; files are private."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner

from pipeline.cli import main

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data" / "generic_devices.csv"
API_KEY = "9f1c2a77-5ec2-4b1e-9d3a-LEAKME0000001"


def fcm(i: int) -> str:
    return f"e{i:021d}:APA91b" + "q" * 140


HOSTILE_IDS = [
    "a/b",
    "../../admin",
    "..",
    ".",
    "x?y=1",
    "x#frag",
    "100%",
    "%2F",
    "back\\slash",
    "with space",
    "ünïcødé-客户",
    "emoji-🙂",
    "L" * 1000,
]


def test_hostile_customer_ids_arrive_exactly_in_one_path_segment(
    make_sandbox: Any, tmp_path: Path
) -> None:
    sandbox = make_sandbox(api_key=API_KEY)
    source = tmp_path / "ids.csv"
    pl.DataFrame(
        {
            "customer_id": HOSTILE_IDS,
            "device_token": [fcm(i) for i in range(len(HOSTILE_IDS))],
            "platform": ["android"] * len(HOSTILE_IDS),
            "os_version": ["34"] * len(HOSTILE_IDS),
        }
    ).write_csv(source)
    env = {"MASIVO_API_KEY": API_KEY, "MASIVO_BASE_URL": sandbox.base_url}
    result = CliRunner().invoke(
        main, ["sync", str(source), "--state-dir", str(tmp_path / "s")], env=env
    )
    assert result.exit_code == 0, result.output
    arrived = {r.device_token: r.customer_id for r in sandbox.state.registrations()}
    assert arrived == {fcm(i): cid for i, cid in enumerate(HOSTILE_IDS)}
    assert all(e.route == "patch_devices" for e in sandbox.state.request_log if e.method == "PATCH")


def test_ids_that_can_never_be_valid_are_invalid_rows(make_sandbox: Any, tmp_path: Path) -> None:
    sandbox = make_sandbox(api_key=API_KEY)
    source = tmp_path / "bad.parquet"
    ids = ["", "   ", "line\nbreak", "carriage\rreturn", "nul\x00byte", "tab\there", "ok"]
    pl.DataFrame(
        {
            "customer_id": ids,
            "device_token": [fcm(100 + i) for i in range(len(ids))],
            "platform": ["ios"] * len(ids),
            "os_version": ["17.1"] * len(ids),
        }
    ).write_parquet(source)
    env = {"MASIVO_API_KEY": API_KEY, "MASIVO_BASE_URL": sandbox.base_url}
    result = CliRunner().invoke(
        main,
        [
            "sync",
            str(source),
            "--state-dir",
            str(tmp_path / "s"),
            "--report-dir",
            str(tmp_path / "r"),
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    results = pl.read_parquet(tmp_path / "r" / "results.parquet").sort("source_row")
    assert results["outcome"].to_list() == ["invalid"] * 6 + ["succeeded"]
    assert set(results["reason"].to_list()[:6]) <= {"missing_customer_id", "invalid_customer_id"}
    assert [r.customer_id for r in sandbox.state.registrations()] == ["ok"]


def _all_text(*roots: Path) -> list[tuple[Path, str]]:
    found = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                found.append((path, path.read_bytes().decode("utf-8", "replace")))
    return found


def test_no_command_prints_or_writes_a_secret(make_sandbox: Any, tmp_path: Path) -> None:
    sandbox = make_sandbox(api_key=API_KEY, token_ttl_s=2)
    state, reports = tmp_path / "state", tmp_path / "reports"
    env = {"MASIVO_API_KEY": API_KEY, "MASIVO_BASE_URL": sandbox.base_url}
    runner = CliRunner()
    outputs = []
    commands = [
        ["--help"],
        ["sync", "--help"],
        ["validate", str(SAMPLE), "--report-dir", str(reports / "v")],
        ["plan", str(SAMPLE), "--state-dir", str(state), "--report-dir", str(reports / "p")],
        [
            "sync",
            str(SAMPLE),
            "--state-dir",
            str(state),
            "--report-dir",
            str(reports / "s"),
            "--debug",
        ],
        [
            "sync",
            str(SAMPLE),
            "--state-dir",
            str(state),
            "--report-dir",
            str(reports / "s2"),
            "--full-resync",
            "--log-format",
            "json",
        ],
        ["reconcile", str(SAMPLE), "--state-dir", str(state), "--report-dir", str(reports / "rc")],
        ["state", "show", "--state-dir", str(state)],
        ["state", "export", str(reports / "export.parquet"), "--state-dir", str(state)],
        ["runs", "--state-dir", str(state), "--json"],
        ["report", "latest", "--state-dir", str(state)],
        ["config", "show", "sync"],
        ["config", "show", "sync", "--json"],
    ]
    for args in commands:
        result = runner.invoke(main, args, env=env)
        assert result.exit_code == 0, (args, result.output)
        outputs.append(result.output)
    # a wrong key: the error must not echo it either
    wrong = runner.invoke(
        main,
        ["sync", str(SAMPLE), "--state-dir", str(tmp_path / "other")],
        env={**env, "MASIVO_API_KEY": API_KEY + "-WRONG"},
    )
    assert wrong.exit_code == 3, wrong.output
    outputs.append(wrong.output)

    secrets = [API_KEY, *sandbox.state.issued_tokens()]
    assert len(secrets) >= 3  # the short token lifetime forced renewals
    for secret in secrets:
        for text in outputs:
            assert secret not in text
        for path, text in _all_text(state, reports, tmp_path / "other"):
            assert secret not in text, path


def test_state_and_report_files_are_private(sandbox: Any, tmp_path: Path) -> None:
    env = {"MASIVO_API_KEY": sandbox.config.api_key, "MASIVO_BASE_URL": sandbox.base_url}
    state = tmp_path / "state"
    result = CliRunner().invoke(main, ["sync", str(SAMPLE), "--state-dir", str(state)], env=env)
    assert result.exit_code == 0, result.output
    for path in [state, *state.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.name == "lock":
            continue
        expected = 0o700 if path.is_dir() else 0o600
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}, expected {oct(expected)}"


@pytest.mark.parametrize("unmask", [False, True])
def test_tokens_are_masked_in_reports_unless_asked(
    sandbox: Any, tmp_path: Path, unmask: bool
) -> None:
    env = {"MASIVO_API_KEY": sandbox.config.api_key, "MASIVO_BASE_URL": sandbox.base_url}
    args = [
        "sync",
        str(SAMPLE),
        "--state-dir",
        str(tmp_path / "s"),
        "--report-dir",
        str(tmp_path / "r"),
    ]
    result = CliRunner().invoke(main, [*args, *(["--unmask-tokens"] if unmask else [])], env=env)
    assert result.exit_code == 0
    token = sandbox.state.registrations()[0].device_token
    csv_text = (tmp_path / "r" / "results.csv").read_text()
    assert (token in csv_text) is unmask
    html = tmp_path / "r" / "report.html"
    if html.exists():
        assert token not in html.read_text()
