"""What a Lambda sees of the configuration: each pipeline with its catalog model resolved, and the prices.

The stack writes these as compact JSON into the functions' environment (PIPELINES, PRICES); the settings module
parses them back with the same models, so synth and runtime can never disagree on a field.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError

from batch_pipeline.config.app import (
    AppConfig,
    Backend,
    BedrockFamily,
    BedrockPricing,
    ConfigError,
    Pipeline,
    SageMakerModel,
    TokenPrices,
    _Model,
    _Priced,
)

# ---------------------------------------------------------------- what a Lambda sees


class RuntimePipeline(_Model):
    """One pipeline with its catalog model resolved to what a handler needs (no image URIs or weights)."""

    name: str
    backend: Backend
    model_key: str
    pipeline: Pipeline
    # SageMaker: the task decides the output contract; the CfnModel name is set by the stack.
    task: Literal["text2text", "zero-shot"] | None = None
    sagemaker_model_name: str | None = None
    # Bedrock: the identifier calls use (foundation model or inference profile), its request schema family,
    # and the model card's output maximum.
    bedrock_model_id: str | None = None
    bedrock_family: BedrockFamily | None = None
    bedrock_max_output_tokens: int | None = None


def runtime_pipelines(
    config: AppConfig, sagemaker_model_names: dict[str, str] | None = None
) -> dict[str, RuntimePipeline]:
    names = sagemaker_model_names or {}
    result = {}
    for name, pipeline in config.pipelines.items():
        model = config.models[pipeline.model]
        extra: dict[str, Any]
        if isinstance(model, SageMakerModel):
            extra = {"task": model.task, "sagemaker_model_name": names.get(pipeline.model)}
        else:
            extra = {
                "bedrock_model_id": model.model_id,
                "bedrock_family": model.family,
                "bedrock_max_output_tokens": model.max_output_tokens,
            }
        result[name] = RuntimePipeline(
            name=name, backend=model.backend, model_key=pipeline.model, pipeline=pipeline, **extra
        )
    return result


def dump_runtime_pipelines(pipelines: dict[str, RuntimePipeline]) -> str:
    """Compact JSON for the PIPELINES environment variable (Lambda allows 4 KB of variables in all). Values equal to
    the model's defaults are left out: parsing puts them back, and the default configuration takes half the bytes."""
    return json.dumps(
        {name: p.model_dump(mode="json", exclude_none=True, exclude_defaults=True) for name, p in pipelines.items()},
        separators=(",", ":"),
    )


def parse_runtime_pipelines(text: str) -> dict[str, RuntimePipeline]:
    """Read the PIPELINES environment variable written by the stack."""
    try:
        raw = json.loads(text)
        return {name: RuntimePipeline.model_validate(value) for name, value in raw.items()}
    except (ValueError, ValidationError) as error:
        raise ConfigError(f"invalid PIPELINES environment variable: {error}") from None


# ---------------------------------------------------------------- prices a Lambda sees


class RuntimePricing(_Priced):
    """One catalog model's prices as the manifest function needs them: token prices (Bedrock) or the hourly price of
    each instance type its pipelines use (SageMaker). The note stays in the catalog and `batch-pipeline plan`."""

    on_demand: TokenPrices | None = None
    batch: TokenPrices | None = None
    instance_hourly_usd: dict[str, Annotated[float, Field(ge=0, allow_inf_nan=False)]] | None = None

    def hourly_usd(self, instance_type: str | None) -> float | None:
        return (self.instance_hourly_usd or {}).get(instance_type or "")


def runtime_prices(config: AppConfig) -> dict[str, RuntimePricing]:
    """The prices of every catalog model a pipeline uses, by model key (the PRICES environment variable)."""
    result: dict[str, RuntimePricing] = {}
    for pipeline in config.pipelines.values():
        model = config.models[pipeline.model]
        pricing = model.pricing
        if pricing is None:
            continue
        if isinstance(pricing, BedrockPricing):
            result[pipeline.model] = RuntimePricing(
                as_of=pricing.as_of, source=pricing.source, on_demand=pricing.on_demand, batch=pricing.batch
            )
            continue
        used = {
            p.sagemaker.instance_type
            for p in config.pipelines.values()
            if p.model == pipeline.model and p.sagemaker is not None
        }
        hourly = {name: price for name, price in pricing.instance_hourly_usd.items() if name in used}
        result[pipeline.model] = RuntimePricing(as_of=pricing.as_of, source=pricing.source, instance_hourly_usd=hourly)
    return result


def dump_runtime_prices(prices: dict[str, RuntimePricing]) -> str:
    """Compact JSON for the PRICES environment variable of the manifest function."""
    return json.dumps(
        {name: p.model_dump(mode="json", exclude_none=True) for name, p in prices.items()}, separators=(",", ":")
    )


def parse_runtime_prices(text: str) -> dict[str, RuntimePricing]:
    try:
        raw = json.loads(text)
        return {name: RuntimePricing.model_validate(value) for name, value in raw.items()}
    except (ValueError, ValidationError, AttributeError) as error:
        raise ConfigError(f"invalid PRICES environment variable: {error}") from None
