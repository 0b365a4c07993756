"""report.html: rendering rules (escaping, masking, empty and validate runs) and a real browser.

The browser test drives the system Chromium through its command line (no Python dependency):
`--dump-dom` for the DOM, `--screenshot` for a picture, `--enable-logging=stderr` for the
console. The page runs no script and its CSP forbids loading anything, so *any* console message
(an error, a CSP violation from an injected tag or an external fetch) fails the test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pipeline.client.auth import Credentials
from pipeline.outcomes import REASONS
from pipeline.report import RESULT_COLUMNS
from pipeline.report_html import render_html, write_html
from pipeline.report_html.data import MAX_TIME_BUCKETS, timeline
from pipeline.sync import SyncConfig, run_sync

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data" / "generic_devices.csv"
OUTPUT = ROOT / "test-output"  # gitignored; screenshots land here for people and CI artifacts
HOSTILE = "<script>alert(1)</script>"
FULL_TOKEN = "cAbCdEfGhIjKlMnOpQrStU:APA91b" + "Q" * 120 + "wxyz"


def fcm(i: int) -> str:
    return f"c{i:021d}:APA91b" + "x" * 140


def results(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """A results.parquet-shaped frame: RESULT_COLUMNS with the sync-mode dtypes."""
    schema: dict[str, pl.DataType] = {name: pl.String() for name in RESULT_COLUMNS}
    schema.update(
        source_row=pl.Int64(),
        http_status=pl.Int64(),
        attempts=pl.Int64(),
        latency_ms=pl.Float64(),
        completed_s=pl.Float64(),
    )
    full = [{name: row.get(name) for name in RESULT_COLUMNS} for row in rows]
    return pl.DataFrame(full, schema=schema)


def summary_for(table: pl.DataFrame, **extra: Any) -> dict[str, Any]:
    outcomes = dict.fromkeys(
        ("succeeded", "skipped", "invalid", "rejected", "failed", "aborted"), 0
    )
    reasons: dict[str, int] = {}
    for outcome, reason in table.select("outcome", "reason").iter_rows():
        outcomes[outcome] += 1
        reasons[reason] = reasons.get(reason, 0) + 1
    summary = {
        "run_id": "20260101T000000Z-abc123",
        "started_at": "2026-01-01T00:00:00Z",
        "finished_at": "2026-01-01T00:00:09Z",
        "mode": "sync",
        "input_rows": table.height,
        "outcomes": outcomes,
        "reasons": reasons,
        "exit_code": 0,
        "stop_reason": None,
        "stop_message": None,
        "inputs": ["in.csv"],
        "files": [{"path": "in.csv", "profile": "generic", "rows": table.height, "format": "csv"}],
        "base_url": "http://127.0.0.1:1/api/storefront/v1",
        "duration_s": 9.0,
        "send": {"sent": 3, "attempts": 7, "retries": 2, "rate_limit_waits": 2,
                 "rate_limit_pauses": 1, "rate_limit_wait_s": 3.5, "token_renewals": 1,
                 "elapsed_s": 8.0, "transport": "AiohttpTransport", "rows_per_s": 0.4},
    }  # fmt: skip
    summary.update(extra)
    return summary


def sent_row(i: int, **overrides: Any) -> dict[str, Any]:
    row = {
        "source_file": "in.csv",
        "source_row": i + 1,
        "customer_id": f"c-{i}",
        "device_token_masked": "cAbCdE…wxyz",
        "platform": "android",
        "os_version": "34",
        "outcome": "succeeded",
        "reason": "registered",
        "http_status": 200,
        "attempts": 1,
        "change": "new",
        "latency_ms": 20.0 + i,
        "completed_s": 0.5 * i,
    }
    row.update(overrides)
    return row


# -- rendering rules ----------------------------------------------------------------------------


def test_hostile_values_are_escaped_everywhere() -> None:
    table = results(
        [
            sent_row(0, customer_id=HOSTILE, outcome="rejected", reason="customer_not_found",
                     detail='"><img src=x onerror=alert(2)>', http_status=404),
            sent_row(1, platform="</style><b>x</b>", source_file="<iframe src=//evil>.csv"),
            sent_row(2, customer_id="ctl\x00\x1b[31m", outcome="invalid",
                     reason="invalid_customer_id", latency_ms=None, completed_s=None),
        ]
    )  # fmt: skip
    summary = summary_for(
        table,
        run_id="<svg onload=alert(3)>",
        stop_reason="systemic_failure",
        stop_message="<script>alert(4)</script>",
        files=[{"path": "<img src=x>", "profile": "<b>generic</b>", "rows": 3}],
    )
    page = render_html(table, summary)
    assert "<script" not in page.lower()
    for raw in ("<img", "<iframe", "<svg onload", "</style><b>", "\x00", "\x1b"):
        assert raw not in page, raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in page
    assert "ctl\\x00\\x1b[31m" in page  # controls made visible, not passed through


def test_full_tokens_never_reach_the_page_even_unmasked_or_echoed() -> None:
    # --unmask-tokens adds device_token; a server error body may echo the token into detail.
    table = results(
        [sent_row(0, outcome="rejected", reason="bad_request", http_status=400,
                  detail=f"HTTP 400: token {FULL_TOKEN} is not valid")]
    ).with_columns(pl.lit(FULL_TOKEN).alias("device_token"))  # fmt: skip
    page = render_html(table, summary_for(table))
    assert FULL_TOKEN not in page
    assert FULL_TOKEN[20:60] not in page
    assert "cAbCdE…wxyz" in page


def test_key_numbers_reason_meanings_and_send_stats_are_shown() -> None:
    rows = [sent_row(i) for i in range(40)]
    rows += [sent_row(40 + i, outcome="rejected", reason="customer_not_found", http_status=404)
             for i in range(3)]  # fmt: skip
    rows.append(sent_row(43, outcome="skipped", reason="opted_out", http_status=None,
                         attempts=None, latency_ms=None, completed_s=None))  # fmt: skip
    table = results(rows)
    page = render_html(table, summary_for(table))
    assert 'id="input-rows" data-value="44"' in page
    assert 'id="outcome-succeeded" data-value="40"' in page
    assert 'id="outcome-rejected" data-value="3"' in page
    for reason in ("registered", "customer_not_found", "opted_out"):
        assert REASONS[reason][1] in page
    assert "first 5 of 40" in page  # samples are capped per reason
    assert 'id="send-retries">2<' in page and 'id="send-429">2<' in page
    assert 'id="lat-p50">' in page and "p99" in page
    assert "run completed" in page  # exit code meaning
    assert "android · 34" in page  # sent by platform · osVersion
    assert "<svg" in page


def test_zero_rows_and_zero_columns_render() -> None:
    empty = results([])
    page = render_html(empty, summary_for(empty, send={}))
    assert 'id="input-rows" data-value="0"' in page
    assert "No input rows." in page
    # A frame with no columns at all (a broken or foreign results file) still renders.
    assert "No input rows." in render_html(pl.DataFrame(), summary_for(empty))


def test_unknown_reason_and_null_outcome_do_not_break_the_page() -> None:
    table = results(
        [sent_row(0, reason="brand_new_reason"), sent_row(1, outcome=None, reason=None)]
    )
    page = render_html(table, summary_for(table.head(1)))
    assert "brand_new_reason" in page and "not a documented reason code" in page
    assert "results.parquet holds" in page  # summary and table disagree: say so


def test_the_page_a_run_writes_equals_a_render_from_its_files(tmp_path: Path) -> None:
    # write_report hands write_html the table it holds (no second copy of a big table); the
    # page must be the one `masivo-sync report RUN` renders from the files
    run_sync(
        SyncConfig(inputs=(SAMPLE,), mode="validate", report_dir=tmp_path / "v",
                   state_dir=tmp_path / "s", handle_signals=False)
    )  # fmt: skip
    written = (tmp_path / "v" / "report.html").read_text(encoding="utf-8")
    write_html(tmp_path / "v")
    rendered = (tmp_path / "v" / "report.html").read_text(encoding="utf-8")
    stamp = re.compile(r"Generated \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC")
    assert stamp.search(written)
    assert stamp.sub("", written) == stamp.sub("", rendered)


def test_validate_run_renders_without_send_data(tmp_path: Path) -> None:
    result = run_sync(
        SyncConfig(inputs=(SAMPLE,), mode="validate", report_dir=tmp_path / "v",
                   state_dir=tmp_path / "s", handle_signals=False)
    )  # fmt: skip
    # validate has no send data: the columns exist, typed as in a sync, all null.
    table = pl.read_parquet(tmp_path / "v" / "results.parquet")
    assert table.schema["latency_ms"] == pl.Float64
    assert table["latency_ms"].null_count() == table.height
    page = (tmp_path / "v" / "report.html").read_text(encoding="utf-8")  # written by write_report
    assert f'id="input-rows" data-value="{result.summary.input_rows}"' in page
    assert "Nothing is sent in a validate run" in page
    assert f"{result.summary.reasons['dry_run']:,} rows would have been sent" in page
    assert 'id="sent"' not in page  # one "nothing sent" section, not two
    assert "dry_run" in page and REASONS["dry_run"][1] in page
    assert 'id="send-sent"' not in page


def test_page_is_self_contained() -> None:
    table = results([sent_row(i) for i in range(5)])
    page = render_html(table, summary_for(table))
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    for forbidden in ("<script", "<link", "@import", "url(", " src=", "<iframe"):
        assert forbidden not in page.lower(), forbidden
    # The only URLs are the SVG namespace and the run's base URL (shown as text).
    urls = set(re.findall(r"https?://[^\s\"<]+", page))
    assert urls <= {"http://www.w3.org/2000/svg", "http://127.0.0.1:1/api/storefront/v1"}


def test_write_html_is_atomic_private_and_rerenderable(tmp_path: Path) -> None:
    table = results([sent_row(i) for i in range(3)])
    table.write_parquet(tmp_path / "results.parquet")
    (tmp_path / "summary.json").write_text(json.dumps(summary_for(table)), encoding="utf-8")
    path = write_html(tmp_path)
    assert path == tmp_path / "report.html"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # customer ids are personal data
    first = path.read_text(encoding="utf-8")
    assert write_html(tmp_path) == path  # re-render (masivo-sync report RUN) replaces it
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "report.html",
        "results.parquet",
        "summary.json",
    ]
    assert 'id="input-rows" data-value="3"' in first


def test_long_runs_use_coarser_buckets() -> None:
    table = results([sent_row(i, completed_s=float(i)) for i in range(0, 7200, 7)])
    line = timeline(table)
    assert line is not None
    assert line.width_s == 30 and line.buckets.height <= MAX_TIME_BUCKETS
    assert line.buckets["rows"].sum() == table.height
    short = timeline(results([sent_row(i, completed_s=i / 100) for i in range(250)]))
    assert short is not None and short.width_s == 0.1  # a 2.5 s run still gets ~25 columns


# -- a real browser -----------------------------------------------------------------------------


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if found := shutil.which(name):
            return found
    pytest.skip(
        "chromium is not installed and scripts/ensure-chromium.sh could not install it "
        "(needs root and apt-get); the report.html browser test did not run"
    )


class _Elements(HTMLParser):
    """Attributes of every element with an id, the text of the page, and the tags seen."""

    def __init__(self) -> None:
        super().__init__()
        self.by_id: dict[str, dict[str, str | None]] = {}
        self.tags: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        values = dict(attrs)
        if values.get("id"):
            self.by_id[str(values["id"])] = values

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _run_chromium(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        _chromium(),
        "--headless",
        "--no-sandbox",  # tests run as root in containers
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        *args,
        page.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def _console_messages(stderr: str) -> list[str]:
    # Chromium logs page console output as `...:INFO:CONSOLE:12] "message", source: file:///...`
    # (older builds: `CONSOLE(12)`); browser-internal noise (dbus, GPU) never says CONSOLE.
    return [line for line in stderr.splitlines() if re.search(r"CONSOLE[:(]\d+", line)]


def _open_in_browser(report: Path, tmp_path: Path, screenshot: Path) -> _Elements:
    dom = _run_chromium(report, tmp_path / "chromium-dom", "--dump-dom")
    shot = _run_chromium(
        report, tmp_path / "chromium-shot", f"--screenshot={screenshot}", "--window-size=1280,2000"
    )
    for run in (dom, shot):
        assert _console_messages(run.stderr) == []
    assert screenshot.is_file() and screenshot.stat().st_size > 10_000
    assert dom.stdout.lstrip().lower().startswith("<!doctype html>")
    elements = _Elements()
    elements.feed(dom.stdout)
    assert "script" not in elements.tags  # nothing injected survived parsing
    return elements


@pytest.mark.slow
def test_report_html_in_headless_chromium(
    make_sandbox: Callable[..., Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _chromium()
    sandbox = make_sandbox(
        unknown_prefix="C1002",  # rejected rows with samples
        rate_429_rate=0.05,  # 429 waits in the send stats
        retry_after_s=0,
        error_500_rate=0.03,  # retries
        latency_ms=2.0,
        jitter_ms=8.0,
        seed=3,
    )
    hostile = tmp_path / "hostile.csv"
    pl.DataFrame(
        [{"customer_id": HOSTILE, "device_token": fcm(1), "platform": "android",
          "model": "Pixel 8", "os_version": "14"},
         {"customer_id": '"><img src=x onerror=alert(1)>', "device_token": fcm(2),
          "platform": "ios", "model": "iPhone", "os_version": "17.4"},
         {"customer_id": "C1002<b>rejected</b>", "device_token": fcm(3),
          "platform": "android", "model": "Pixel 8", "os_version": "14"}]
    ).write_csv(hostile)  # fmt: skip
    result = run_sync(
        SyncConfig(
            inputs=(hostile, SAMPLE),  # first: its rows are among the samples
            base_url=sandbox.base_url,
            state_dir=tmp_path / "state",
            report_dir=tmp_path / "report",
            credentials=Credentials(api_key=sandbox.config.api_key),
            handle_signals=False,
        )
    )
    summary = result.summary.as_dict()
    assert summary["outcomes"]["succeeded"] > 200 and summary["outcomes"]["rejected"] > 0
    report = tmp_path / "report" / "report.html"  # written by report.write_report
    assert report.is_file()

    OUTPUT.mkdir(exist_ok=True)
    screenshot = OUTPUT / "report.png"
    elements = _open_in_browser(report, tmp_path, screenshot)
    assert elements.by_id["input-rows"]["data-value"] == str(summary["input_rows"])
    assert elements.by_id["outcome-succeeded"]["data-value"] == str(
        summary["outcomes"]["succeeded"]
    )
    text = "".join(elements.text)
    assert f"{summary['input_rows']:,}" in text
    for shown in (HOSTILE, '"><img src=x onerror=alert(1)>', "C1002<b>rejected</b>"):
        assert shown in text  # shown as text, never parsed as markup
    assert "img" not in elements.tags and "b" not in elements.tags
    assert "send-retries" in elements.by_id and "lat-p95" in elements.by_id

    # A validate report (no send data at all) loads cleanly too.
    validate = run_sync(
        SyncConfig(inputs=(SAMPLE,), mode="validate", report_dir=tmp_path / "validate",
                   state_dir=tmp_path / "state-v", handle_signals=False)
    )  # fmt: skip
    validate_shot = OUTPUT / "report-validate.png"
    validate_elements = _open_in_browser(
        tmp_path / "validate" / "report.html", tmp_path, validate_shot
    )
    assert validate_elements.by_id["input-rows"]["data-value"] == str(validate.summary.input_rows)
    # Canary: the same page with an escaping bug simulated must be caught, or the empty
    # console above proves nothing (e.g. a Chromium that logs console messages differently).
    broken = tmp_path / "broken.html"
    broken.write_text(
        report.read_text(encoding="utf-8").replace(
            "</main>", '<script>alert(1)</script><img src="https://example.invalid/x.png"></main>'
        ),
        encoding="utf-8",
    )
    caught = _console_messages(
        _run_chromium(broken, tmp_path / "chromium-canary", "--dump-dom").stderr
    )
    assert any("inline script" in line for line in caught), caught
    assert any("example.invalid" in line for line in caught), caught

    with capsys.disabled():
        print(f"\nreport.html screenshots: {screenshot} {validate_shot}", flush=True)
    assert os.access(screenshot, os.R_OK)
