"""`masivo-sync state ...` and `masivo-sync reconcile`: look at and manage the state directory."""

from __future__ import annotations

import functools
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import polars as pl
from rich.table import Table

from pipeline.cli import EXIT_CODES_HELP, _run
from pipeline.cli_options import source_options, with_envvars
from pipeline.diff import RECONCILE_STATUSES
from pipeline.errors import ConfigError, MasivoSyncError
from pipeline.state import StateStore
from pipeline.sync import DEFAULT_STATE_DIR, new_run_id
from pipeline.terminal import Console

_STATE_DIR = click.option(
    "--state-dir",
    default=str(DEFAULT_STATE_DIR),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The state directory to work on.",
)

_STATUS_HELP = "\n".join(f"  {name:<20} {meaning}" for name, meaning in RECONCILE_STATUSES.items())


@with_envvars
@click.command(epilog=EXIT_CODES_HELP)
@source_options
def reconcile(**options: Any) -> None:
    """Compare INPUTS with what Masivo has accepted (the state); send nothing.

    Writes the usual report files plus reconcile.parquet / reconcile.csv, one row per token with
    its status:

    \b
    {statuses}
    """
    _run(options, mode="reconcile")


assert reconcile.help is not None
reconcile.help = reconcile.help.replace("{statuses}", _STATUS_HELP)


@click.group("state")
def state_group() -> None:
    """Inspect, export or wipe the state directory (the record of what Masivo accepted).

    \b
    The state directory holds:
      state.json      layout marker; a directory of another layout is refused, never misread
      tokens.parquet  one row per device token: payload last accepted, when, by which run,
                      and the last failure
      journal/        results of the run in progress (folded into tokens.parquet next time)
      runs.jsonl      one line per finished run with its summary
      runs/           report directories (safe to delete; the state does not need them)
      lock            held by the running sync
    Deleting the whole directory makes the next sync send every valid row again (safe: the
    PATCH is register-or-update, but it costs the calls).
    """


def open_state(state_dir: Path, *, read_only: bool) -> StateStore:
    """Open a state directory for a CLI command (not a sync); a missing one is a usage error."""
    if not state_dir.exists():
        raise ConfigError(
            f"no state directory at {state_dir} (nothing has been synced there)",
            hint="check --state-dir",
        )
    run_id = new_run_id(datetime.now(UTC))
    return StateStore.open(state_dir, run_id=f"cli-{run_id}", read_only=read_only)


def _guard(func: Any) -> Any:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MasivoSyncError as exc:
            Console().error(str(exc))
            sys.exit(exc.exit_code)

    return wrapper


@state_group.command("show")
@_STATE_DIR
@click.option(
    "--runs", "last_runs", default=10, show_default=True, help="How many past runs to list."
)
@_guard
def show(state_dir: Path, last_runs: int) -> None:
    """What the state holds: token counts, failing tokens, the last runs."""
    console = Console()
    with open_state(state_dir, read_only=True) as store:
        snapshot = store.snapshot()
        runs = store.runs()
    accepted = snapshot.filter(pl.col("accepted_at").is_not_null())
    failing = snapshot.filter(
        pl.col("last_error_at").is_not_null()
        & (pl.col("accepted_at").is_null() | (pl.col("last_error_at") > pl.col("accepted_at")))
    )
    console.out.print(f"state directory: {state_dir}", markup=False)
    console.out.print(
        f"tokens: {snapshot.height:,}  accepted by Masivo: {accepted.height:,}  "
        f"failing (will be resent): {failing.height:,}",
        markup=False,
    )
    if failing.height:
        reasons = failing.group_by("last_error_reason").len().sort("len", descending=True)
        console.out.print(
            "failing by reason: " + ", ".join(f"{r} {n:,}" for r, n in reasons.iter_rows()),
            markup=False,
        )
    table = Table(title="last runs", title_justify="left")
    for column in ("run", "finished", "mode", "rows", "succeeded", "failed", "exit"):
        table.add_column(column)
    for run in runs[-last_runs:]:
        summary = run.get("summary") or {}
        outcomes = summary.get("outcomes") or {}
        table.add_row(
            str(run.get("run_id")),
            str(run.get("finished_at")),
            str(summary.get("mode", "")),
            f"{summary.get('input_rows', 0):,}",
            f"{outcomes.get('succeeded', 0):,}",
            f"{outcomes.get('failed', 0) + outcomes.get('rejected', 0) + outcomes.get('aborted', 0):,}",
            str(summary.get("exit_code", "")),
        )
    console.out.print(table)


@state_group.command("export")
@_STATE_DIR
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@_guard
def export(state_dir: Path, output: Path) -> None:
    """Write the per-token state to OUTPUT as Parquet (full device tokens: personal data)."""
    with open_state(state_dir, read_only=True) as store:
        store.export(output)
        rows = store.snapshot().height
    click.echo(f"wrote {rows:,} tokens to {output}")


@state_group.command("reset")
@_STATE_DIR
@click.option("--yes", is_flag=True, help="Really wipe it (required; there is no undo).")
@_guard
def reset(state_dir: Path, yes: bool) -> None:
    """Forget everything the state knows; the next sync sends every valid row again."""
    if not yes:
        raise click.UsageError("state reset wipes the record of what Masivo accepted; add --yes")
    with open_state(state_dir, read_only=False) as store:
        store.reset()
    click.echo(f"state at {state_dir} wiped")
