"""Reads and validates the app configuration from CDK context; a bad key fails synth by name.

Besides the `batch-pipeline` object in cdk.json, any context key `batch-pipeline.<dotted path>` overrides one
value, so a deploy can change a setting without editing the file:

    npx cdk deploy -c batch-pipeline.notification_email=you@example.com \
                   -c batch-pipeline.pipelines.summarize.sagemaker.instance_count=4

A value given on the command line is a string; it is read as JSON when it parses (numbers, true/false/null,
objects), else kept as the string.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from constructs import Construct

from batch_pipeline.config.app import CONTEXT_KEY, AppConfig, ConfigError, load_app_config


def _value(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def apply_overrides(raw: Any, context: dict[str, Any]) -> Any:
    """`raw` with every `batch-pipeline.<path>` context value set at its path (shallowest paths first)."""
    overrides = sorted((key, value) for key, value in context.items() if key.startswith(CONTEXT_KEY + "."))
    if not overrides:
        return raw
    result = copy.deepcopy(raw) if isinstance(raw, dict) else {}
    for key, value in sorted(overrides, key=lambda item: item[0].count(".")):
        *parents, leaf = key[len(CONTEXT_KEY) + 1 :].split(".")
        node = result
        for index, part in enumerate(parents):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                where = ".".join([CONTEXT_KEY, *parents[: index + 1]])
                raise ConfigError(
                    f"invalid configuration: context key {key!r} goes below {where}, which is not an object"
                )
            node = child
        node[leaf] = _value(value)
    return result


def config_from_context(scope: Construct) -> AppConfig:
    raw = scope.node.try_get_context(CONTEXT_KEY)
    return load_app_config(apply_overrides(raw, scope.node.get_all_context()))
