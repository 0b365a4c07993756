"""`masivo-sync sandbox` / `python -m pipeline.sandbox`: serve a fake Masivo until Ctrl-C.

Importing this module is cheap (uvicorn is imported only when the command runs), so the main CLI
can register the command without slowing every other command down.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from pathlib import Path
from types import FrameType

import click

from pipeline.sandbox.config import API_PREFIX, DEFAULT_API_KEY, SandboxConfig

_share = click.FloatRange(0.0, 1.0)


def _exit_quietly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=0,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port; 0 picks a free one.",
)
@click.option(
    "--api-key",
    default=DEFAULT_API_KEY,
    show_default=True,
    help="API key the sandbox accepts (a sandbox-only key).",
)
@click.option(
    "--token-ttl",
    "token_ttl_s",
    default=3600.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Access token lifetime in seconds (JWT exp rounds up to the second).",
)
@click.option(
    "--unknown-customer",
    "unknown_customers",
    multiple=True,
    metavar="ID",
    help="A customer id that answers 404 (repeatable).",
)
@click.option(
    "--unknown-prefix",
    default=None,
    metavar="PREFIX",
    help="Customer ids starting with PREFIX answer 404.",
)
@click.option(
    "--latency-ms",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Added latency per PATCH.",
)
@click.option(
    "--jitter-ms",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Extra random latency per PATCH, uniform in [0, jitter].",
)
@click.option(
    "--error-500-rate",
    default=0.0,
    show_default=True,
    type=_share,
    help="Share of PATCHes answered 500.",
)
@click.option(
    "--error-503-rate",
    default=0.0,
    show_default=True,
    type=_share,
    help="Share of PATCHes answered 503.",
)
@click.option(
    "--rate-429-rate",
    default=0.0,
    show_default=True,
    type=_share,
    help="Share of PATCHes answered 429 with Retry-After.",
)
@click.option(
    "--retry-after",
    "retry_after_s",
    default=1,
    show_default=True,
    type=click.IntRange(min=0),
    help="Retry-After seconds on injected 429s.",
)
@click.option(
    "--drop-rate",
    default=0.0,
    show_default=True,
    type=_share,
    help="Share of PATCHes whose connection is closed without a response.",
)
@click.option(
    "--rate-limit",
    default=None,
    type=click.IntRange(min=0),
    help="PATCHes allowed per window; past it 429 until the window resets. Default: unlimited.",
)
@click.option(
    "--rate-window",
    "rate_window_s",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Rate-limit window in seconds.",
)
@click.option(
    "--marketing-automation-off",
    is_flag=True,
    help="Every PATCH answers 400 'Marketing automation is not enabled'.",
)
@click.option("--fail-auth", is_flag=True, help="GET /auth/authorize always fails.")
@click.option(
    "--fail-auth-status",
    default=500,
    show_default=True,
    type=click.IntRange(400, 599),
    help="Status of a failing authorize.",
)
@click.option(
    "--seed",
    default=None,
    type=int,
    help="Seed for the fault RNG; the same seed gives the same fault counts.",
)
@click.option(
    "--request-log",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append every API request as a JSON line to this file.",
)
@click.option(
    "--no-memory-log", is_flag=True, help="Keep no in-memory request log (long benchmarks)."
)
def sandbox_command(
    host: str,
    port: int,
    no_memory_log: bool,
    **options: object,
) -> None:
    """Serve a fake Masivo API locally, with injectable faults, until Ctrl-C / SIGTERM."""
    try:
        config = SandboxConfig(keep_request_log=not no_memory_log, **options)  # type: ignore[arg-type]
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc

    from pipeline.sandbox.app import SandboxApp
    from pipeline.sandbox.server import bind_socket, serve_foreground, url_of

    try:
        app = SandboxApp(config)
    except OSError as exc:  # the request log cannot be opened
        raise click.UsageError(f"cannot open request log: {exc}") from exc
    try:
        sock = bind_socket(host, port)
    except OSError as exc:
        raise click.UsageError(f"cannot listen on {host}:{port}: {exc}") from exc
    # uvicorn re-raises the signal it caught once it has shut down; exiting via SystemExit lets
    # the request log be closed and gives exit status 0 for an orderly SIGTERM.
    signal.signal(signal.SIGTERM, _exit_quietly)
    # One parseable line, flushed: parent processes wait for it to learn the URL.
    click.echo(f"Masivo sandbox listening on {url_of(sock)}{API_PREFIX}")
    # The default key is a public sandbox key; a custom one might be someone's real key.
    shown_key = config.api_key if config.api_key == DEFAULT_API_KEY else "(custom, not shown)"
    click.echo(f"seed={app.faults.seed} api_key={shown_key}", err=True)
    sys.stdout.flush()
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is the normal way to stop
        serve_foreground(app, sock)
