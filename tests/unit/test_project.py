"""The CLI finds the project as a user expects: `--config PATH`, else cdk.json in the current folder or the nearest
folder above it; never through the installed package's own location."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batch_pipeline.config.app import ConfigError
from batch_pipeline_local.cli.main import main
from batch_pipeline_local.project import Project, find_cdk_json, load_config

REPO = Path(__file__).resolve().parents[2]


def a_project(folder: Path, pipelines: set[str]) -> Path:
    """A copy of this project's cdk.json keeping only `pipelines`."""
    context = Project(REPO / "cdk.json").context()
    configured = context["batch-pipeline"]["pipelines"]
    context["batch-pipeline"]["pipelines"] = {name: configured[name] for name in pipelines}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "cdk.json"
    path.write_text(json.dumps({"app": "python3 app.py", "context": context}))
    return path


def test_the_project_is_found_in_the_current_folder_or_the_nearest_above(tmp_path, monkeypatch):
    cdk_json = a_project(tmp_path, {"summarize"})
    deep = tmp_path / "data" / "day-1"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert find_cdk_json() == cdk_json
    assert Project.find().root == tmp_path
    assert set(load_config().pipelines) == {"summarize"}


def test_config_names_the_project_wherever_the_command_runs(tmp_path, monkeypatch):
    cdk_json = a_project(tmp_path / "elsewhere", {"classify"})
    monkeypatch.chdir(REPO)
    assert set(load_config(cdk_json).pipelines) == {"classify"}
    assert Project.find(cdk_json).examples == tmp_path / "elsewhere" / "examples"


def test_outside_any_project_the_error_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="no cdk.json in .* or any folder above it.*--config"):
        find_cdk_json()


def test_commands_read_the_project_they_are_pointed_at(tmp_path, monkeypatch, capsys):
    sample = str(REPO / "examples" / "summarize.jsonl")
    monkeypatch.chdir(tmp_path)  # no cdk.json here or above
    assert main(["validate", sample, "--pipeline", "summarize"]) == 2
    assert "no cdk.json" in capsys.readouterr().err
    only_classify = a_project(tmp_path / "project", {"classify"})
    assert main(["validate", sample, "--pipeline", "summarize", "--config", str(only_classify)]) == 2
    assert "unknown pipeline 'summarize'; configured: classify" in capsys.readouterr().err
    monkeypatch.chdir(REPO / "examples")  # a subfolder of this project: its cdk.json, found above
    assert main(["validate", sample, "--pipeline", "summarize"]) == 0
