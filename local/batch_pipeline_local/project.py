"""The project a command works on: the folder holding `cdk.json`, and the app configuration read from it.

The CLI is installed like any package (editable or not), so it never looks for the project beside its own files. It
takes `cdk.json` from `--config PATH` when given, else from the current directory or the nearest folder above it
(the `cdk` CLI itself reads ./cdk.json; walking up also lets a command run from a subfolder of the project).
Everything else a command reads from the project is found next to that file: `app.py` and `stacks/` (synthesized
in-process by local mode), `examples/` (the demo), `cdk.out/` (summary), `node_modules/` (the IAM evaluator).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batch_pipeline.config.app import CONTEXT_KEY, AppConfig, ConfigError, load_app_config
from batch_pipeline.config.runtime import RuntimePipeline, runtime_pipelines

CDK_JSON = "cdk.json"


def find_cdk_json(start: Path | None = None) -> Path:
    """`cdk.json` in `start` (default: the current directory) or the nearest folder above it."""
    folder = (start or Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        path = candidate / CDK_JSON
        if path.is_file():
            return path
    raise ConfigError(
        f"no {CDK_JSON} in {folder} or any folder above it: run the command in the project folder "
        f"(where {CDK_JSON} is), or name the file with --config PATH"
    )


@dataclass(frozen=True)
class Project:
    """A project folder: its `cdk.json` and the folders found next to it."""

    cdk_json: Path

    @classmethod
    def find(cls, config: Path | str | None = None) -> Project:
        """The project of `--config PATH` when given, else the one the current directory is in."""
        return cls(find_cdk_json() if config is None else Path(config).resolve())

    @property
    def root(self) -> Path:
        return self.cdk_json.parent

    @property
    def examples(self) -> Path:
        return self.root / "examples"

    @property
    def cdk_out(self) -> Path:
        return self.root / "cdk.out"

    @property
    def node_modules(self) -> Path:
        return self.root / "node_modules"

    def context(self) -> dict[str, Any]:
        """The `context` object of cdk.json: feature flags and the pipeline configuration."""
        try:
            context = json.loads(self.cdk_json.read_text())["context"]
        except (OSError, ValueError, KeyError) as error:
            raise ConfigError(f"cannot read the configuration from {self.cdk_json}: {error}") from None
        if not isinstance(context, dict):
            raise ConfigError(f"cannot read the configuration from {self.cdk_json}: context is not an object")
        return context


def load_config(cdk_json: Path | str | None = None) -> AppConfig:
    """The app configuration, validated exactly as synth validates it."""
    return load_app_config(Project.find(cdk_json).context().get(CONTEXT_KEY))


def load_pipeline(name: str, cdk_json: Path | str | None = None) -> RuntimePipeline:
    pipelines = runtime_pipelines(load_config(cdk_json))
    if name not in pipelines:
        raise ConfigError(f"unknown pipeline {name!r}; configured: {', '.join(sorted(pipelines))}")
    return pipelines[name]
