"""The deployment examples in docs/ parse and pass the right arguments."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import yaml
from click.testing import CliRunner

from pipeline.cli import main

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_indexed_job_gives_each_pod_its_shard() -> None:
    job = yaml.safe_load((DOCS / "examples" / "k8s-indexed-job.yaml").read_text())
    assert job["kind"] == "Job" and job["spec"]["completionMode"] == "Indexed"
    completions = job["spec"]["completions"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    command = shlex.split(container["args"][0].replace('"${JOB_COMPLETION_INDEX}', '"0'))
    assert command[:3] == ["exec", "masivo-sync", "sync"]
    args = command[2:]
    assert args[args.index("--shard") + 1] == f"0/{completions}"
    # every option the manifest uses exists on the real command
    parsed = main.get_command(None, "sync").make_context("sync", args[1:])  # type: ignore[union-attr]
    assert parsed.params["concurrency"] == 64 and parsed.params["shard"] == f"0/{completions}"
    assert "MASIVO_API_KEY" not in str(job)  # secrets come from a Secret, not the manifest


def test_cronjob_in_operating_doc_parses() -> None:
    text = (DOCS / "operating.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", text, re.S)
    assert block is not None
    cron = yaml.safe_load(block.group(1))
    assert cron["kind"] == "CronJob" and cron["spec"]["concurrencyPolicy"] == "Forbid"
    args = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:3] == ["--config", "/config/masivo-sync.toml", "sync"]
    # the global option is parsed by the real group: here the file is missing, which it says
    result = CliRunner().invoke(main, [*args[:2], "config", "show", "sync"])
    assert result.exit_code == 2 and "/config/masivo-sync.toml does not exist" in result.output
    ctx = main.get_command(None, "sync").make_context("sync", args[3:])  # type: ignore[union-attr]
    assert ctx.params["log_format"] == "json"


def test_airflow_examples_map_one_task_per_shard() -> None:
    tree = ast.parse((DOCS / "examples" / "airflow_sharded_backfill.py").read_text())
    calls = {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }
    assert "expand" in calls
    source = ast.unparse(tree)
    assert "shard=Shard(index, SHARDS)" in source and "GLOBAL_RATE_LIMIT / SHARDS" in source
    operating = (DOCS / "operating.md").read_text()
    airflow = re.search(r"```python\n(.*?)```", operating, re.S)
    assert airflow is not None
    ast.parse(airflow.group(1))
