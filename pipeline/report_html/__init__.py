"""report.html: one self-contained page a person can read after a run.

Built only from the two files every report directory already has (summary.json and
results.parquet), so a past run can be re-rendered (`masivo-sync report RUN`) and the page can
never show something the machine-readable report does not.

The page fetches and runs nothing (no CDN, fonts or scripts; a CSP forbids them) because reports
are opened from disk, offline, and hold personal data: charts are inline SVG built in Python,
every value is HTML-escaped (customer ids are hostile input) and full device tokens are dropped
even when results.parquet was written with --unmask-tokens.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from pipeline.report_html import data, page

__all__ = ["render_html", "write_html"]

REPORT_FILE = "report.html"


def render_html(table: pl.DataFrame, summary: Mapping[str, Any]) -> str:
    """The whole page for one run.

    `table` is what results.parquet holds (report.RESULT_COLUMNS, optionally `device_token`,
    which is ignored); `summary` is the summary.json dict. Works for any mode and for zero rows.
    """
    return page.document(summary, data.prepare(table))


def write_html(report_dir: Path, table: pl.DataFrame | None = None) -> Path:
    """Render report_dir/report.html from its summary.json and results.parquet; return its path.

    `table`: the results table the caller has just written to results.parquet, if it still holds
    it (a sync does): reading the file back would hold a second copy of a 10M-row table.
    Written to a private temporary file and renamed, so a browser or a concurrent re-render
    never sees half a page.
    """
    report_dir = Path(report_dir)
    summary = json.loads((report_dir / "summary.json").read_text(encoding="utf-8"))
    if table is None:
        table = pl.read_parquet(report_dir / "results.parquet")
    body = render_html(table, summary).encode("utf-8")
    target = report_dir / REPORT_FILE
    # mkstemp: unique name (two renders may race) and mode 0600 (the page holds customer ids).
    fd, tmp = tempfile.mkstemp(dir=report_dir, prefix=f".{REPORT_FILE}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(body)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target
