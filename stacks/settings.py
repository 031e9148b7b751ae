"""Reads and validates the app configuration from CDK context; a bad key fails synth by name."""

from __future__ import annotations

from constructs import Construct

from batch_pipeline.config import CONTEXT_KEY, AppConfig, load_app_config


def config_from_context(scope: Construct) -> AppConfig:
    return load_app_config(scope.node.try_get_context(CONTEXT_KEY))
