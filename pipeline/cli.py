"""The `masivo-sync` command line: parses options, calls the library, prints. Nothing else.

Every error the library raises on purpose becomes one line on stderr and an exit code a cron job
can act on; a traceback is shown only with --debug.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

import click

from pipeline import __version__
from pipeline.client import ClientOptions
from pipeline.config_file import CONFIG_ENVVAR, default_map, find_config, load_config
from pipeline.errors import MasivoSyncError
from pipeline.normalize import NormalizeOptions
from pipeline.secrets import redact
from pipeline.send import SendOptions
from pipeline.shard import Shard
from pipeline.sources import SourceOptions
from pipeline.sync import DEFAULT_BASE_URL, DEFAULT_STATE_DIR, SyncConfig, run_sync
from pipeline.terminal import Console

EXIT_CODES_HELP = """\b
Exit codes:
  0    run completed
  1    completed, but failed + rejected rows exceeded --max-failure-rate
  2    usage, configuration or input error (nothing was sent)
  3    stopped by a systemic error (e.g. every call rejected the same way)
  130  interrupted (Ctrl-C); 143 terminated (SIGTERM)
"""


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


CONFIGURABLE_COMMANDS = ("sync", "plan", "validate", "reconcile")


def envvar_name(param_name: str) -> str:
    return f"MASIVO_SYNC_{param_name.upper()}"


def with_envvars(command: click.Command) -> click.Command:
    """Give every option of a run command its environment variable, MASIVO_SYNC_<NAME>."""
    for param in command.params:
        if isinstance(param, click.Option) and param.name and not param.envvar:
            param.envvar = envvar_name(param.name)
            param.show_envvar = True
    return command


def _source_options(func: Any) -> Any:
    options = [
        click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=str)),
        click.option(
            "--profile",
            default="auto",
            show_default=True,
            type=click.Choice(["auto", "generic", "onesignal", "airship", "braze", "pushwoosh"]),
            help="Export format of the inputs; 'auto' detects it per file from the header.",
        ),
        click.option(
            "--mapping",
            "mapping_file",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="TOML mapping file for a home-grown table (column renames, constants, value maps).",
        ),
        click.option(
            "--encoding",
            default="utf-8",
            show_default=True,
            help="Text encoding of CSV inputs, e.g. cp1252 or latin-1 for old Windows exports.",
        ),
        click.option(
            "--delimiter",
            default=None,
            help="CSV delimiter; detected among , ; and tab when not given.",
        ),
        click.option(
            "--max-age",
            "max_age_days",
            default=270,
            show_default=True,
            type=click.IntRange(min=0),
            help="Skip devices whose last activity is older than this many days (FCM expires "
            "Android tokens after 270). 0 turns the check off.",
        ),
        click.option(
            "--max-age-all-platforms",
            is_flag=True,
            help="Apply --max-age to iOS and web rows too (by default only Android, whose tokens "
            "FCM expires).",
        ),
        click.option(
            "--android-version",
            type=click.Choice(["release", "api"]),
            default=None,
            help="What a bare Android version number in the inputs means: a release ('14') or an "
            "API level ('34'). [default: what the profile says; generic: release]",
        ),
        click.option(
            "--include-opted-out",
            is_flag=True,
            help="Also register devices the source marks as unsubscribed / opted out.",
        ),
        click.option(
            "--report-dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="Where to write summary.json and results.{csv,parquet}. "
            "[default: <state-dir>/runs/<run-id>]",
        ),
        click.option(
            "--state-dir",
            default=str(DEFAULT_STATE_DIR),
            show_default=True,
            type=click.Path(file_okay=False, path_type=Path),
            help="Where the record of what Masivo accepted is kept between runs.",
        ),
        click.option(
            "--unmask-tokens",
            is_flag=True,
            help="Write full device tokens into the report (they are personal data; masked by default).",
        ),
        click.option("--quiet", "-q", is_flag=True, help="Print only errors and the final line."),
        click.option(
            "--log-format",
            type=click.Choice(["text", "json"]),
            default="text",
            show_default=True,
            help="'json' prints progress, errors and the summary as one JSON object per line "
            "(stable keys, for log pipelines); nothing else goes to stdout/stderr.",
        ),
        click.option("--debug", is_flag=True, help="Show a traceback for unexpected errors."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _send_options(func: Any) -> Any:
    options = [
        click.option(
            "--base-url",
            envvar="MASIVO_BASE_URL",
            default=DEFAULT_BASE_URL,
            show_default=True,
            help="Masivo storefront API base URL (env MASIVO_BASE_URL).",
        ),
        click.option(
            "--allow-insecure-http",
            is_flag=True,
            help="Allow a plain http:// base URL to a host other than this machine (the API key "
            "would cross the network unencrypted).",
        ),
        click.option(
            "--concurrency",
            default=64,
            show_default=True,
            type=click.IntRange(1, 1024),
            help="Requests in flight at once.",
        ),
        click.option(
            "--rate-limit",
            type=click.FloatRange(min=0, min_open=True),
            default=None,
            help="Most requests per second (shared by all workers). [default: no limit; "
            "the run still slows down when Masivo answers 429]",
        ),
        click.option(
            "--max-attempts",
            default=5,
            show_default=True,
            type=click.IntRange(1, 50),
            help="Attempts per row for transient errors (5xx, timeouts, dropped connections).",
        ),
        click.option(
            "--max-failure-rate",
            type=click.FloatRange(0, 1),
            default=None,
            help="Exit 1 when failed + rejected rows exceed this share of the rows sent, e.g. 0.05.",
        ),
        click.option(
            "--preflight/--no-preflight",
            default=True,
            show_default=True,
            help="Send the first row alone before opening concurrency, to stop early when every "
            "call would fail the same way.",
        ),
        click.option(
            "--systemic-after",
            default=20,
            show_default=True,
            type=click.IntRange(min=0),
            help="Stop the run (exit 3) when this many consecutive calls fail the same way; 0 never.",
        ),
        click.option(
            "--retry-after-cap",
            default=60.0,
            show_default=True,
            type=click.FloatRange(min=0),
            help="Longest pause, in seconds, that a 429's Retry-After may impose on the run.",
        ),
        click.option(
            "--connect-timeout",
            default=5.0,
            show_default=True,
            type=click.FloatRange(min=0, min_open=True),
            help="Seconds to wait for a connection to Masivo.",
        ),
        click.option(
            "--read-timeout",
            default=30.0,
            show_default=True,
            type=click.FloatRange(min=0, min_open=True),
            help="Seconds to wait for Masivo's answer to one call.",
        ),
        click.option(
            "--grace-period",
            default=10.0,
            show_default=True,
            type=click.FloatRange(min=0),
            help="On Ctrl-C / SIGTERM, seconds to let calls in flight finish (a second signal stops at once).",
        ),
        click.option(
            "--shard",
            default=None,
            metavar="I/N",
            help="Send only shard I of N (0-based) of the tokens, for splitting one backfill over N "
            "processes or machines; each shard keeps its own state under <state-dir>/shard-I-of-N. "
            "--rate-limit applies per shard: divide the global budget by N.",
        ),
        click.option(
            "--full-resync",
            is_flag=True,
            help="Ignore what earlier runs delivered and send every valid row again.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@with_envvars
@main.command(epilog=EXIT_CODES_HELP)
@_source_options
@_send_options
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
@_source_options
@_send_options
def plan(**options: Any) -> None:
    """Show what `sync` would send (same as `sync --dry-run`): nothing is sent, state untouched."""
    _run(options, mode="dry_run")


@with_envvars
@main.command(epilog=EXIT_CODES_HELP)
@_source_options
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
        sys.exit(130)
    except Exception as exc:
        if options["debug"]:
            raise
        console.error(
            f"internal error: {type(exc).__name__}: {redact(str(exc))} "
            "(rerun with --debug for a traceback, and please report it)"
        )
        sys.exit(70)
    console.summary(result.summary, result.report_dir)
    sys.exit(result.exit_code)


def _config_from_options(options: dict[str, Any], *, mode: str) -> SyncConfig:
    sources = SourceOptions(
        profile=options["profile"],
        mapping_file=options["mapping_file"],
        encoding=options["encoding"],
        delimiter=options["delimiter"],
        android_version=options["android_version"],
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
