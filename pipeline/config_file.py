"""The TOML configuration file: every command-line option, by name, for cron and Kubernetes.

Precedence is flags > environment > file > defaults. Click already resolves values in that order
when the file is given to it as the context's `default_map`, and reports where each value came
from (`ctx.get_parameter_source`), so this module only reads, checks and shapes the file.

    # masivo-sync.toml
    base_url = "https://app.masivo.ai/api/storefront/v1"
    state_dir = "/var/lib/masivo-sync"
    concurrency = 128

    [sync]                  # values for one command only
    max_failure_rate = 0.05

Secrets are refused: API keys and tokens come from the environment only.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from pipeline.errors import ConfigError

DEFAULT_CONFIG_FILE = Path("masivo-sync.toml")
CONFIG_ENVVAR = "MASIVO_SYNC_CONFIG"
_SECRET_KEYS = {"api_key", "access_token", "masivo_api_key", "masivo_access_token", "token"}


def find_config(explicit: Path | None) -> Path | None:
    """The file to use: the one given, else ./masivo-sync.toml when it exists."""
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"config file {explicit} does not exist", hint="check --config")
        return explicit
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def load_config(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None
    for key in _walk_keys(data):
        if key.lower() in _SECRET_KEYS:
            raise ConfigError(
                f"config file {path} holds a secret ({key!r})",
                hint="remove it and set MASIVO_API_KEY or MASIVO_ACCESS_TOKEN in the environment",
            )
    return data


def _walk_keys(data: Mapping[str, Any]) -> list[str]:
    keys = []
    for key, value in data.items():
        keys.append(key)
        if isinstance(value, Mapping):
            keys += _walk_keys(value)
    return keys


def option_names(command: click.Command) -> set[str]:
    return {p.name for p in command.params if isinstance(p, click.Option) and p.name}


def default_map(
    data: Mapping[str, Any], commands: Mapping[str, click.Command], path: Path
) -> dict[str, dict[str, Any]]:
    """Click's default_map: for each command, the file's top-level values it has an option
    for, overridden by the command's own table. Unknown keys are errors, not silently ignored."""
    top = {k.replace("-", "_"): v for k, v in data.items() if not isinstance(v, Mapping)}
    tables = {k: v for k, v in data.items() if isinstance(v, Mapping)}
    known_anywhere = set().union(*(option_names(c) for c in commands.values()))
    unknown = sorted(set(top) - known_anywhere)
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown option(s) {', '.join(unknown)}",
            hint="names are the long options with '_' for '-', e.g. max_failure_rate",
        )
    for name in tables:
        if name not in commands:
            raise ConfigError(
                f"config file {path}: [{name}] is not a command",
                hint=f"one of {', '.join(sorted(commands))}",
            )
    result: dict[str, dict[str, Any]] = {}
    for name, command in commands.items():
        own = {k.replace("-", "_"): v for k, v in tables.get(name, {}).items()}
        bad = sorted(set(own) - option_names(command))
        if bad:
            raise ConfigError(f"config file {path}: [{name}] has no option(s) {', '.join(bad)}")
        merged = {k: v for k, v in top.items() if k in option_names(command)} | own
        if merged:
            result[name] = merged
    return result
