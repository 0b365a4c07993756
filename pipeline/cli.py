"""The `masivo-sync` command line: parses options, calls the library, prints. Nothing else.

Every error the library raises on purpose becomes one line on stderr and an exit code a cron job
can act on; a traceback is shown only with --debug.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import click

from pipeline import __version__
from pipeline.cli_options import CONFIGURABLE_COMMANDS, send_options, source_options, with_envvars
from pipeline.client import ClientOptions
from pipeline.config_file import CONFIG_ENVVAR, default_map, find_config, load_config
from pipeline.errors import MasivoSyncError
from pipeline.exits import Exit, help_text
from pipeline.normalize import NormalizeOptions
from pipeline.secrets import redact
from pipeline.send import SendOptions
from pipeline.shard import Shard
from pipeline.sources import SourceOptions
from pipeline.sync import DEFAULT_BASE_URL, SyncConfig, run_sync
from pipeline.terminal import Console

EXIT_CODES_HELP = help_text()


class LazyGroup(click.Group):
    """Imports a subcommand's module only when that subcommand runs.

    Keeps the sandbox (uvicorn) out of the import path of `sync`, and startup fast.
    """

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = lazy or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self._lazy])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy:
            module_name, attr = self._lazy[cmd_name].split(":")
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=LazyGroup,
    lazy={
        "sandbox": "pipeline.sandbox.cli:sandbox_command",
        "reconcile": "pipeline.cli_state:reconcile",
        "state": "pipeline.cli_state:state_group",
        "config": "pipeline.cli_runs:config_group",
        "runs": "pipeline.cli_runs:runs",
        "report": "pipeline.cli_runs:report",
    },
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXIT_CODES_HELP,
)
@click.version_option(__version__, prog_name="masivo-sync")
@click.option(
    "--config",
    "config_path",
    envvar=CONFIG_ENVVAR,
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML file holding any option by name (e.g. concurrency = 128, or per command under "
    "[sync]). Flags beat environment variables, which beat the file. "
    "[default: ./masivo-sync.toml if it exists]",
)
@click.pass_context
def main(ctx: click.Context, config_path: Path | None) -> None:
    """Move push-notification device tokens from legacy exports into Masivo.

    \b
    Typical use:
      export MASIVO_API_KEY=...            # Settings → Advanced Settings in Masivo
      masivo-sync validate exports/        # check the files, send nothing
      masivo-sync plan exports/            # what would be sent against the last run
      masivo-sync sync exports/            # send, record, report

    Try it against a local fake Masivo: `masivo-sync sandbox` in one terminal, then
    `masivo-sync sync sample_data/ --base-url <the URL it prints>` with the sandbox's key.
    """
    try:
        path = find_config(config_path)
        if path is not None:
            commands = {name: ctx.command.get_command(ctx, name) for name in CONFIGURABLE_COMMANDS}  # type: ignore[attr-defined]
            ctx.default_map = default_map(load_config(path), commands, path)
            ctx.meta["config_path"] = path
    except MasivoSyncError as exc:
        Console().error(str(exc))
        sys.exit(exc.exit_code)


@with_envvars
@main.command(epilog=EXIT_CODES_HELP)
@source_options
@send_options
@click.option("--dry-run", is_flag=True, help="Plan only: count and list what would be sent.")
def sync(**options: Any) -> None:
    """Send new and changed devices from INPUTS (files, directories or globs) to Masivo.

    Credentials come only from the environment: MASIVO_API_KEY (exchanged for an access token
    that is renewed during long runs) or a pre-issued MASIVO_ACCESS_TOKEN. They are never
    printed. Every input row ends in the report with one outcome and a reason.
    """
    _run(options, mode="dry_run" if options.pop("dry_run") else "sync")


@with_envvars
@main.command(epilog=EXIT_CODES_HELP)
@source_options
@send_options
def plan(**options: Any) -> None:
    """Show what `sync` would send (same as `sync --dry-run`): nothing is sent, state untouched."""
    _run(options, mode="dry_run")


@with_envvars
@main.command(epilog=EXIT_CODES_HELP)
@source_options
def validate(**options: Any) -> None:
    """Read and check INPUTS without sending anything or touching the state.

    Prints counts per outcome and reason with sample rows, and writes the same report files as a
    sync, so bad rows can be fixed before a migration.
    """
    _run(options, mode="validate")


def _run(options: dict[str, Any], *, mode: str) -> None:
    console = Console(quiet=options["quiet"], log_format=options["log_format"])
    try:
        config = _config_from_options(options, mode=mode)
        with console.progress(f"{'Sending' if mode == 'sync' else 'Planning'}") as progress:
            result = run_sync(config, progress=progress)
    except MasivoSyncError as exc:
        console.error(redact(str(exc)))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        console.error("interrupted before sending started; nothing was sent")
        sys.exit(Exit.INTERRUPTED)
    except Exception as exc:
        if options["debug"]:
            # the traceback too goes through the redactor: secrets never reach a terminal
            print(redact(traceback.format_exc()), file=sys.stderr)
        console.error(
            f"internal error: {type(exc).__name__}: {redact(str(exc))} "
            "(rerun with --debug for a traceback, and please report it)"
        )
        sys.exit(Exit.INTERNAL)
    console.summary(result.summary, result.report_dir)
    sys.exit(result.exit_code)


def _config_from_options(options: dict[str, Any], *, mode: str) -> SyncConfig:
    sources = SourceOptions(
        profile=options["profile"],
        mapping_file=options["mapping_file"],
        encoding=options["encoding"],
        delimiter=options["delimiter"],
        android_version=options["android_version"],
        max_field_bytes=options["max_field_size"],
    )
    normalize = NormalizeOptions(
        max_age_days=options["max_age_days"] or None,
        include_opted_out=options["include_opted_out"],
        max_age_platforms=None if options["max_age_all_platforms"] else ("android",),
    )
    base_url = options.get("base_url") or os.environ.get("MASIVO_BASE_URL") or DEFAULT_BASE_URL
    send = SendOptions()
    client = None
    if "concurrency" in options:
        send = SendOptions(
            concurrency=options["concurrency"],
            rate_limit=options["rate_limit"],
            max_attempts=options["max_attempts"],
            preflight=options["preflight"],
            systemic_after=options["systemic_after"],
            retry_after_cap_s=options["retry_after_cap"],
            grace_period_s=options["grace_period"],
        )
        client = ClientOptions(
            base_url=base_url,
            concurrency=options["concurrency"],
            connect_timeout=options["connect_timeout"],
            read_timeout=options["read_timeout"],
            allow_insecure_http=options["allow_insecure_http"],
        )
    return SyncConfig(
        inputs=tuple(options["inputs"]),
        base_url=base_url,
        client=client,
        state_dir=options["state_dir"],
        report_dir=options["report_dir"],
        mode=mode,
        full_resync=options.get("full_resync", False),
        shard=Shard.parse(options["shard"]) if options.get("shard") else None,
        max_failure_rate=options.get("max_failure_rate"),
        unmask_tokens=options["unmask_tokens"],
        sources=sources,
        normalize=normalize,
        send=send,
    )
