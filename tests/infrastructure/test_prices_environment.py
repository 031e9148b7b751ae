"""The catalog's prices reach the manifest function, and only it, within Lambda's 4 KB of environment variables."""

from __future__ import annotations

import copy

import pytest

from batch_pipeline.config.runtime import parse_runtime_prices
from tests.infrastructure.conftest import synth

# Lambda: "The total size of all environment variables doesn't exceed 4 KB" (keys and values together).
LAMBDA_ENVIRONMENT_LIMIT = 4096


def functions(template) -> dict[str, dict]:
    return template.find_resources("AWS::Lambda::Function")


def variables(function: dict) -> dict:
    return function["Properties"].get("Environment", {}).get("Variables", {})


def test_only_the_manifest_function_carries_the_prices(template):
    carrying = [name for name, function in functions(template).items() if "PRICES" in variables(function)]
    assert len(carrying) == 1 and carrying[0].startswith("FunctionsWriteManifest")
    prices = parse_runtime_prices(variables(functions(template)[carrying[0]])["PRICES"])
    assert set(prices) == {"flan-t5-large", "bart-large-mnli", "nova-lite"}
    assert prices["nova-lite"].batch is not None and prices["flan-t5-large"].hourly_usd("ml.p3.2xlarge")


def test_every_function_environment_fits_lambdas_limit_with_room_for_resolved_names(template):
    for name, function in functions(template).items():
        literal = sum(
            len(key) + (len(value) if isinstance(value, str) else 0) for key, value in variables(function).items()
        )
        # Bucket names and ARNs are tokens here; at deploy time each is at most about 100 characters.
        tokens = sum(1 for value in variables(function).values() if not isinstance(value, str))
        assert literal + 100 * tokens <= LAMBDA_ENVIRONMENT_LIMIT, name


def test_a_catalog_too_large_for_the_environment_fails_synth_by_name(default_context):
    context = copy.deepcopy(default_context)
    nova = context["batch-pipeline"]["models"]["nova-lite"]
    # Many priced models: each adds its prices to the manifest function's PRICES.
    for index in range(40):
        context["batch-pipeline"]["models"][f"nova-{index}"] = copy.deepcopy(nova)
        context["batch-pipeline"]["pipelines"][f"p{index}"] = {
            **context["batch-pipeline"]["pipelines"]["bedrock-summarize"],
            "model": f"nova-{index}",
        }
    with pytest.raises(ValueError, match=r"the prices \d+; Lambda environment variables are limited"):
        synth(context)
