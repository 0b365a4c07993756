"""`python -m bench --quick` end to end on a tiny size: every scenario gets its row in the table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = (
    "generate CSV",
    "read + normalize",
    "plan: read + normalize + dedupe + diff",
    "plan: peak memory",
    "diff against the state snapshot",
    "state record() per result",
    "first sync @ 0 ms",
    "first sync @ 50 ms",
    "incremental rerun",
    "resume after SIGKILL",
)


@pytest.mark.slow
def test_quick_bench_prints_the_table() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--rows", "500"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert "| scenario | size | median | baseline | baseline median | ratio |" in lines[0]
    rows = [line for line in lines if line.startswith("| ") and "---" not in line]
    for name in SCENARIOS:
        assert any(name in row for row in rows), f"no row for {name!r}:\n{proc.stdout}"
    # the local steps do not depend on timing or on the optional bench extras
    for row in rows:
        if row.startswith(("| read + normalize", "| plan", "| diff", "| state record")):
            assert "FAILED" not in row, row
    assert "Total runtime" in proc.stdout
