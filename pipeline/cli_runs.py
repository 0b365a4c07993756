"""`masivo-sync config show`, `masivo-sync runs` and `masivo-sync report RUN`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from pipeline.cli_options import CONFIGURABLE_COMMANDS
from pipeline.cli_state import open_state
from pipeline.errors import MasivoSyncError
from pipeline.report import Summary
from pipeline.sync import DEFAULT_STATE_DIR
from pipeline.terminal import Console

_SECRET_ENV = ("MASIVO_API_KEY", "MASIVO_ACCESS_TOKEN")


@click.group("config")
def config_group() -> None:
    """Look at the effective configuration (file, environment, defaults)."""


@config_group.command("show")
@click.argument("command", default="sync", type=click.Choice(CONFIGURABLE_COMMANDS))
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object per option instead of a table."
)
@click.pass_context
def config_show(ctx: click.Context, command: str, as_json: bool) -> None:
    """Print every option of COMMAND with its effective value and where it came from.

    Sources, strongest first: a flag on the command line, the option's environment variable,
    the config file (--config, or ./masivo-sync.toml), the built-in default. Secrets are shown
    only as set / not set.
    """
    root = ctx.find_root()
    target = root.command.get_command(root, command)  # type: ignore[attr-defined]
    assert target is not None
    file_values = (root.default_map or {}).get(command, {})
    config_path = root.meta.get("config_path")
    rows: list[tuple[str, str, str]] = []
    for param in target.params:
        if not isinstance(param, click.Option) or param.name in ("help",):
            continue
        envvars = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or [])
        env_hit = next((name for name in envvars if os.environ.get(name)), None)
        if env_hit:
            value, source = os.environ[env_hit], f"env {env_hit}"
        elif param.name in file_values:
            value, source = file_values[param.name], f"file {config_path}"
        else:
            value, source = param.get_default(ctx, call=True), "default"
        rows.append((max(param.opts, key=len), _show(value), source))
    for name in _SECRET_ENV:
        rows.append((name, "set (hidden)" if os.environ.get(name) else "not set", "env"))
    if as_json:
        for option, value, source in rows:
            click.echo(json.dumps({"option": option, "value": value, "source": source}))
        return
    table = Table(title=f"effective configuration of `masivo-sync {command}`", title_justify="left")
    for column in ("option", "value", "source"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    Console().out.print(table)


def _show(value: Any) -> str:
    if value is None or type(value).__name__ == "Sentinel":  # click's "no default"
        return "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


_STATE_DIR = click.option(
    "--state-dir",
    default=str(DEFAULT_STATE_DIR),
    show_default=True,
    envvar="MASIVO_SYNC_STATE_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="The state directory whose run history to read.",
)


def _history(state_dir: Path) -> list[dict[str, Any]]:
    if not state_dir.exists():
        return []
    try:
        with open_state(state_dir, read_only=True) as store:
            return store.runs()
    except MasivoSyncError as exc:
        Console().error(str(exc))
        sys.exit(exc.exit_code)


@click.command("runs")
@_STATE_DIR
@click.option(
    "--last",
    default=20,
    show_default=True,
    type=click.IntRange(min=1),
    help="How many runs to list, newest last.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the runs as JSON lines instead of a table."
)
def runs(state_dir: Path, last: int, as_json: bool) -> None:
    """List past syncs recorded in the state directory, with their outcome counts.

    `failed` counts failed and rejected rows; `masivo-sync report RUN` shows one run in full.
    """
    history = _history(state_dir)[-last:]
    if as_json:
        for run in history:
            click.echo(json.dumps(run, ensure_ascii=False, default=str))
        return
    if not history:
        click.echo(f"no runs recorded in {state_dir}")
        return
    table = Table(title=f"runs in {state_dir}", title_justify="left")
    table.add_column("run", no_wrap=True)
    table.add_column("finished (UTC)", no_wrap=True)
    for column in ("rows", "ok", "skipped", "invalid", "failed", "aborted", "exit"):
        table.add_column(column, justify="right")
    for run in history:
        summary = run.get("summary") or {}
        outcomes = summary.get("outcomes") or {}
        table.add_row(
            str(run.get("run_id")),
            str(run.get("finished_at", ""))[:19].replace("T", " "),
            f"{summary.get('input_rows', 0):,}",
            f"{outcomes.get('succeeded', 0):,}",
            f"{outcomes.get('skipped', 0):,}",
            f"{outcomes.get('invalid', 0):,}",
            f"{outcomes.get('failed', 0) + outcomes.get('rejected', 0):,}",
            f"{outcomes.get('aborted', 0):,}",
            str(summary.get("exit_code", "")),
        )
    Console().out.print(table)


@click.command("report")
@click.argument("run")
@_STATE_DIR
def report(run: str, state_dir: Path) -> None:
    """Show a past run's summary again and re-render its report.html.

    RUN is a run id from `masivo-sync runs` (a unique prefix is enough), `latest`, or the path
    of a report directory.
    """
    report_dir = _find_report_dir(run, state_dir)
    summary_path = report_dir / "summary.json"
    if not summary_path.is_file():
        raise click.ClickException(f"{report_dir} holds no summary.json")
    data = json.loads(summary_path.read_text(encoding="utf-8"))
    known = {
        "run_id",
        "started_at",
        "finished_at",
        "mode",
        "input_rows",
        "outcomes",
        "reasons",
        "exit_code",
        "stop_reason",
        "stop_message",
    }
    summary = Summary(
        **{k: data.get(k) for k in known}, extra={k: v for k, v in data.items() if k not in known}
    )
    try:
        from pipeline.report_html import write_html
    except ImportError:  # pragma: no cover - the HTML report ships with the package
        write_html = None
    if write_html is not None and (report_dir / "results.parquet").is_file():
        write_html(report_dir)
    Console().summary(summary, report_dir)


def _find_report_dir(run: str, state_dir: Path) -> Path:
    candidate = Path(run)
    if candidate.is_dir():
        return candidate
    history = _history(state_dir)
    if run == "latest" and history:
        matches = [history[-1]]
    else:
        matches = [r for r in history if str(r.get("run_id", "")).startswith(run)]
    if not matches:
        raise click.ClickException(f"no run {run!r} in {state_dir} (see `masivo-sync runs`)")
    if len(matches) > 1:
        raise click.ClickException(f"{run!r} matches {len(matches)} runs; give more of the id")
    summary = matches[0].get("summary") or {}
    return Path(str(summary.get("report_dir") or state_dir / "runs" / str(matches[0]["run_id"])))
