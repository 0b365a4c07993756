"""The options shared by the run commands (sync, plan, validate, reconcile).

Kept apart from cli.py so each command's module declares only what is its own. Every option gets
an environment variable MASIVO_SYNC_<NAME> (see `with_envvars`) and may be set in the config file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pipeline.sources import DEFAULT_MAX_FIELD_BYTES
from pipeline.sync import DEFAULT_BASE_URL, DEFAULT_STATE_DIR

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


def source_options(func: Any) -> Any:
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
            "--max-field-size",
            default=DEFAULT_MAX_FIELD_BYTES,
            show_default=True,
            type=click.IntRange(min=1),
            help="Largest value, in bytes, a column the run reads may hold; a file with a larger "
            "cell is refused naming the row (usually an unclosed quote swallowed lines).",
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


def send_options(func: Any) -> Any:
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
