"""Reads the app configuration from cdk.json for offline commands, exactly as synth does."""

from __future__ import annotations

import json
from pathlib import Path

from batch_pipeline.config.app import CONTEXT_KEY, AppConfig, ConfigError, load_app_config
from batch_pipeline.config.runtime import RuntimePipeline, runtime_pipelines

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CDK_JSON = REPO_ROOT / "cdk.json"


def load_config(cdk_json: Path | str | None = None) -> AppConfig:
    path = Path(cdk_json or DEFAULT_CDK_JSON)
    try:
        context = json.loads(path.read_text())["context"]
    except (OSError, ValueError, KeyError) as error:
        raise ConfigError(f"cannot read the configuration from {path}: {error}") from None
    return load_app_config(context.get(CONTEXT_KEY))


def load_pipeline(name: str, cdk_json: Path | str | None = None) -> RuntimePipeline:
    pipelines = runtime_pipelines(load_config(cdk_json))
    if name not in pipelines:
        raise ConfigError(f"unknown pipeline {name!r}; configured: {', '.join(sorted(pipelines))}")
    return pipelines[name]
