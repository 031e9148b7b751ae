"""Every command's --json prints exactly one JSON document on stdout; logs and metrics go to stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "POWERTOOLS_LOG_LEVEL": "INFO"}
    return subprocess.run(
        [sys.executable, "-m", "batch_pipeline_local.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def upload(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "small.jsonl"
    path.write_bytes(
        b"".join(
            orjson.dumps({"id": i, "text_inputs": f"Summarize: story {i} words words", "reference": f"story {i}"})
            + b"\n"
            for i in range(3)
        )
    )
    return path


def pipeline_name() -> str:
    config = json.loads((ROOT / "cdk.json").read_text())["context"]["batch-pipeline"]
    return next(name for name, p in config["pipelines"].items() if p.get("input_format") == "jumpstart-text2text")


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_offline_commands_print_one_json_document(command, upload):
    result = cli(command, str(upload), "--pipeline", pipeline_name(), "--json")
    assert isinstance(json.loads(result.stdout), dict), result.stderr


def test_local_run_json_keeps_powertools_logs_off_stdout(upload):
    result = cli("local", "run", str(upload), "--pipeline", pipeline_name(), "--json")
    document = json.loads(result.stdout)  # fails if any log line or EMF blob precedes the JSON
    assert document.get("status") or document.get("accepted") is not None
    assert '"level"' in result.stderr or "intake" in result.stderr  # the handlers' logs are still there, on stderr
