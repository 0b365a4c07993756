"""Docs and help stay true to the code."""

from __future__ import annotations

from pathlib import Path

import click
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.outcomes import REASONS, reasons_markdown

ROOT = Path(__file__).resolve().parent.parent


def test_reasons_doc_is_generated_from_the_code() -> None:
    doc = (ROOT / "docs" / "reasons.md").read_text(encoding="utf-8")
    assert doc == reasons_markdown(), "run: python -m pipeline.outcomes > docs/reasons.md"
    for code in REASONS:
        assert f"`{code}`" in doc


def _commands(group: click.Group, ctx: click.Context) -> list[tuple[str, click.Command]]:
    found = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        found.append((name, command))
        if isinstance(command, click.Group):
            found += [(f"{name} {sub}", c) for sub, c in _commands(command, ctx)]
    return found


def test_every_command_and_option_has_help() -> None:
    ctx = click.Context(main)
    commands = _commands(main, ctx)
    assert {"sync", "plan", "validate", "sandbox"} <= {name for name, _ in commands}
    for name, command in commands:
        assert command.help, f"`masivo-sync {name}` has no help text"
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"`masivo-sync {name} {param.opts[0]}` has no help text"
        result = CliRunner().invoke(main, [*name.split(), "--help"])
        assert result.exit_code == 0, result.output


def test_readme_opens_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    head = readme[:400]
    assert "make demo" in head and "make test" in head
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def _exit_code_table(doc: str) -> set[int]:
    """The codes of the `| code | meaning | ...` table under a "### Exit codes" / "## Exit codes"
    heading (a row `| 130 / 143 | ...` lists two)."""
    section = doc.split("Exit codes\n", 1)[1].split("\n#", 1)[0]
    codes: set[int] = set()
    for line in section.splitlines():
        cell = line.split("|")[1].strip() if line.startswith("|") else ""
        codes |= {int(c) for c in cell.split(" / ") if c.strip().isdigit()}
    return codes


def test_exit_codes_in_help_and_docs_are_the_code_table() -> None:
    from pipeline.exits import MEANINGS, Exit

    assert set(MEANINGS) == set(Exit)
    for doc in ("README.md", "docs/operating.md"):
        text = (ROOT / doc).read_text(encoding="utf-8")
        assert _exit_code_table(text) == {int(c) for c in Exit}, doc
    result = CliRunner().invoke(main, ["sync", "--help"])
    for code, meaning in MEANINGS.items():
        assert f"{int(code):<4} {meaning}" in result.output
