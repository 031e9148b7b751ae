"""What a file will cost before it is uploaded: the tokens it sends and gets back, and the run's price as planned.

Input tokens
  - Bedrock `CountTokens` (bedrock-runtime), when AWS credentials are present and the catalog says the model supports
    it (`models.<m>.count_tokens`; the Bedrock User Guide lists the models:
    https://docs.aws.amazon.com/bedrock/latest/userguide/count-tokens.html). It is called on an evenly spaced sample
    of at most `count_tokens_sample` records, never once per record: the tokens per character measured on the
    sample are applied to the characters of every record. CountTokens itself is free of charge (same page).
  - Otherwise a heuristic: the characters of the text the model reads, divided by `chars_per_token` (4 by default,
    the usual rule of thumb for English; CJK text and code run at fewer characters per token).
Output tokens
  - The most a record can get back (its own max_tokens, else the pipeline's, else the model card's maximum; for
    SageMaker text2text the HYPER_PARAMS or per-record max_length), times `output_ratio` (1.0 by default, so the
    estimate is an upper bound). A zero-shot classifier generates no tokens: it scores each candidate label.
Cost (pricing.py)
  - Bedrock: tokens at the price of the route intake planned (batch, or on demand for a file under the per-job
    minimum), with the other route's price beside it.
  - SageMaker: instance-hours = records / (records per second per instance) at the instance type's hourly price;
    the throughput is the catalog's planning assumption unless given. Instance start-up time, also billed, is not in it.

The records read are the model-ready lines intake writes (shards), so a `prompt` line is counted as the request
the model will actually receive.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson

from batch_pipeline.config.app import AppConfig, BedrockModel, ConfigError, ModelEntry, SageMakerModel
from batch_pipeline.config.runtime import RuntimePipeline, RuntimePricing, runtime_prices
from batch_pipeline.contracts import Route
from batch_pipeline.results.pricing import planned_bedrock_cost, planned_sagemaker_cost

if TYPE_CHECKING:  # boto3 loads only when CountTokens is asked (the CLI imports every command at start-up)
    from botocore.client import BaseClient

TokenMethod = Literal["auto", "count-tokens", "heuristic"]
DEFAULT_CHARS_PER_TOKEN = 4.0
DEFAULT_OUTPUT_RATIO = 1.0
DEFAULT_COUNT_TOKENS_SAMPLE = 20
# The hypothesis BART-MNLI's zero-shot pipeline pairs with each sequence: "This example is {label}."
ZERO_SHOT_TEMPLATE_CHARS = len("This example is .")
# Keys whose string values are text the model reads, in every Bedrock request schema we build or accept
# (Anthropic messages, Nova and Converse content blocks and system prompts, Titan inputText).
TEXT_KEYS = frozenset({"text", "content", "system", "inputText", "prompt"})
# Inside text, the keys that are not: block types, roles, and media (an image's base64 bytes are not characters read).
NOT_TEXT_KEYS = frozenset({"type", "role", "format", "image", "document", "video", "source", "bytes", "cachePoint"})
COUNT_TOKENS_DOC = "https://docs.aws.amazon.com/bedrock/latest/userguide/count-tokens.html"


class EstimateError(ConfigError):
    """CountTokens was asked for and cannot be used; the message says why."""


@dataclass(frozen=True)
class EstimateSettings:
    tokens: TokenMethod = "auto"
    chars_per_token: float = DEFAULT_CHARS_PER_TOKEN
    output_ratio: float = DEFAULT_OUTPUT_RATIO
    count_tokens_sample: int = DEFAULT_COUNT_TOKENS_SAMPLE
    records_per_second: float | None = None

    def __post_init__(self) -> None:
        if not self.chars_per_token > 0:
            raise ValueError("chars per token must be greater than 0")
        if not 0 <= self.output_ratio <= 1:
            raise ValueError("the expected output ratio must be between 0 and 1")
        if self.count_tokens_sample < 1:
            raise ValueError("the CountTokens sample must be at least 1 record")
        if self.records_per_second is not None and not self.records_per_second > 0:
            raise ValueError("records per second must be greater than 0")


# ---------------------------------------------------------------- reading model-ready records


def _strings(value: Any, inside_text: bool = False) -> Iterator[str]:
    if isinstance(value, str):
        if inside_text:
            yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in NOT_TEXT_KEYS:
                yield from _strings(item, inside_text or key in TEXT_KEYS)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item, inside_text)


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def model_chars(record: dict[str, Any], pipeline: RuntimePipeline) -> int:
    """Characters of the text the model reads for one model-ready record."""
    if pipeline.backend == "bedrock":
        return sum(len(text) for text in _strings(record.get("modelInput"), False))
    if pipeline.task == "zero-shot":
        labels = _as_list(record.get("candidate_labels"))
        sequences = _as_list(record.get("sequences"))
        # One premise/hypothesis pair per candidate label, for each sequence.
        return sum(
            len(sequence) * len(labels) + sum(len(label) + ZERO_SHOT_TEMPLATE_CHARS for label in labels)
            for sequence in sequences
        )
    return sum(len(text) for text in _as_list(record.get("text_inputs")))


def _bedrock_max_tokens(body: Any) -> int | None:
    if not isinstance(body, dict):
        return None
    candidates = [
        body.get("max_tokens"),
        (body.get("inferenceConfig") or {}).get("maxTokens"),
        (body.get("inferenceConfig") or {}).get("max_new_tokens"),
        (body.get("textGenerationConfig") or {}).get("maxTokenCount"),
    ]
    return next((value for value in candidates if isinstance(value, int) and not isinstance(value, bool)), None)


def max_output_tokens(record: dict[str, Any], pipeline: RuntimePipeline) -> int | None:
    """The most one record can get back; None when nothing says."""
    if pipeline.backend == "bedrock":
        own = _bedrock_max_tokens(record.get("modelInput"))
        if own is not None:
            return own
        params = pipeline.pipeline.bedrock.inference_params if pipeline.pipeline.bedrock else {}
        configured = params.get("max_tokens") or params.get("max_new_tokens")
        return configured if isinstance(configured, int) else pipeline.bedrock_max_output_tokens
    if pipeline.task == "zero-shot":
        return 0
    settings = pipeline.pipeline.sagemaker
    # With HYPER_PARAMS set the JumpStart container ignores per-record parameters (config.SageMakerSettings).
    params = settings.hyper_params if settings is not None and settings.hyper_params is not None else record
    for name in ("max_new_tokens", "max_length"):
        value = params.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def model_ready_records(run_folder: Path, shards: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The records intake wrote, shard by shard, one line at a time."""
    for shard in shards:
        with open(run_folder / shard["key"], "rb") as lines:
            for line in lines:
                if line.strip():
                    yield orjson.loads(line)


def sample_positions(total: int, size: int) -> set[int]:
    """`size` record positions spread evenly over `total` (all of them when the file is that small)."""
    if total <= size:
        return set(range(total))
    if size == 1:
        return {0}
    return {round(i * (total - 1) / (size - 1)) for i in range(size)}


# ---------------------------------------------------------------- CountTokens


def count_tokens_request(model_id: str, record: dict[str, Any], converse: bool) -> dict[str, Any]:
    """The CountTokens request for one Bedrock record: the InvokeModel body as a JSON blob, or the Converse fields
    CountTokens takes (messages, system, toolConfig, additionalModelRequestFields; not inferenceConfig)."""
    body = record.get("modelInput") or {}
    if converse:
        fields = ("messages", "system", "toolConfig", "additionalModelRequestFields")
        return {"modelId": model_id, "input": {"converse": {key: body[key] for key in fields if key in body}}}
    return {"modelId": model_id, "input": {"invokeModel": {"body": orjson.dumps(body)}}}


def credentials_present() -> bool:
    import boto3  # deferred: an estimate by the heuristic needs no AWS SDK (the CLI imports every command at start-up)

    return boto3.session.Session().get_credentials() is not None


def default_count_tokens_client() -> BaseClient:
    # Deferred: an estimate by the heuristic needs no AWS SDK (the CLI imports every command at start-up).
    import boto3
    from botocore.config import Config

    region = boto3.session.Session().region_name or os.environ.get("AWS_REGION") or "us-east-1"
    # Short timeouts: a plan should fall back to the heuristic quickly when Bedrock cannot be reached.
    config = Config(connect_timeout=5, read_timeout=15, retries={"mode": "standard", "max_attempts": 3})
    return boto3.client("bedrock-runtime", region_name=region, config=config)


def _token_method_reason(settings: EstimateSettings, pipeline: RuntimePipeline, model: ModelEntry) -> str | None:
    """Why CountTokens is not used (None when it is)."""
    if settings.tokens == "heuristic":
        return "asked for the heuristic"
    if pipeline.backend != "bedrock":
        return "CountTokens is a Bedrock operation; SageMaker models are estimated by the heuristic"
    if not (isinstance(model, BedrockModel) and model.count_tokens):
        return (
            f"the catalog does not list {pipeline.model_key} as supported by CountTokens "
            f"(models.{pipeline.model_key}.count_tokens; supported models: {COUNT_TOKENS_DOC})"
        )
    if not credentials_present():
        return "no AWS credentials found"
    return None


# ---------------------------------------------------------------- the estimate


@dataclass
class _Tally:
    records: int = 0
    chars: int = 0
    output_max: int = 0
    output_unknown: int = 0
    sample: list[tuple[dict[str, Any], int]] = field(default_factory=list)


def _tally(records: Iterator[dict[str, Any]], pipeline: RuntimePipeline, positions: set[int]) -> _Tally:
    tally = _Tally()
    for position, record in enumerate(records):
        chars = model_chars(record, pipeline)
        tally.records += 1
        tally.chars += chars
        most = max_output_tokens(record, pipeline)
        if most is None:
            tally.output_unknown += 1
        else:
            tally.output_max += most
        if position in positions:
            tally.sample.append((record, chars))
    return tally


def _counted_input(tally: _Tally, client: Any, model: BedrockModel, converse: bool) -> tuple[int, dict[str, Any]]:
    counted = sample_chars = 0
    for record, chars in tally.sample:
        response = client.count_tokens(**count_tokens_request(model.base_model_id, record, converse))
        counted += int(response["inputTokens"])
        sample_chars += chars
    exact = len(tally.sample) == tally.records
    if exact:
        total = counted
    else:
        per_char = counted / sample_chars if sample_chars else 0.0
        total = round(tally.chars * per_char)
    details = {
        "calls": len(tally.sample),
        "sampled_records": len(tally.sample),
        "sample_tokens": counted,
        "sample_chars": sample_chars,
        "extrapolated": not exact,
        "model_id": model.base_model_id,
    }
    return total, details


def estimate_tokens(
    tally: _Tally,
    pipeline: RuntimePipeline,
    model: ModelEntry,
    settings: EstimateSettings,
    client_factory: Callable[[], BaseClient],
) -> dict[str, Any]:
    reason = _token_method_reason(settings, pipeline, model)
    if reason is None and isinstance(model, BedrockModel):  # no reason: a Bedrock model that CountTokens takes
        try:
            converse = bool(pipeline.pipeline.bedrock and pipeline.pipeline.bedrock.converse)
            total, details = _counted_input(tally, client_factory(), model, converse)
        except Exception as error:  # botocore errors; the heuristic still gives an answer
            if settings.tokens == "count-tokens":
                raise EstimateError(f"CountTokens failed: {type(error).__name__}: {error}") from error
            reason = f"CountTokens failed ({type(error).__name__}: {error})"
        else:
            how = (
                "every record counted"
                if not details["extrapolated"]
                else f"{details['calls']} of {tally.records} records counted (evenly spaced), the tokens per character "
                f"of that sample applied to all {tally.chars} characters"
            )
            return {
                "input": total,
                "method": "count_tokens",
                "input_basis": f"Bedrock CountTokens: {how}",
                "count_tokens": details,
            }
    if settings.tokens == "count-tokens":
        raise EstimateError(f"CountTokens cannot be used: {reason}")
    return {
        "input": math.ceil(tally.chars / settings.chars_per_token),
        "method": "heuristic",
        "input_basis": f"{tally.chars} characters of model input / {settings.chars_per_token:g} characters per "
        f"token ({reason})",
    }


def _output_tokens(tally: _Tally, pipeline: RuntimePipeline, settings: EstimateSettings) -> tuple[int | None, str]:
    if pipeline.task == "zero-shot":
        return 0, "a zero-shot classifier generates no tokens: it scores each candidate label"
    if tally.output_unknown == tally.records:
        return None, "unknown: neither the records nor the pipeline set a maximum output length"
    basis = (
        f"{tally.output_max} tokens if every answer used its maximum (max_tokens or max_length), "
        f"x {settings.output_ratio:g} expected ratio"
    )
    if tally.output_unknown:
        basis += f"; {tally.output_unknown} records set no maximum and are not counted"
    return math.ceil(tally.output_max * settings.output_ratio), basis


def _cost(
    pipeline: RuntimePipeline,
    pricing: RuntimePricing | None,
    model: ModelEntry,
    route: str,
    records: int,
    tokens: dict[str, Any],
    settings: EstimateSettings,
) -> dict[str, Any] | None:
    if pricing is None:
        return None
    if pipeline.backend == "bedrock":
        planned: Route = "on-demand" if route == "on-demand" else "batch"
        cost = planned_bedrock_cost(pricing, pipeline.model_key, planned, tokens["input"], tokens["output"] or 0)
        cost["basis"] = f"estimated tokens at the {planned} price: intake's plan routes this file " + (
            "on demand (fewer records than a batch job's minimum)" if planned == "on-demand" else "to batch inference"
        )
    else:
        settings_sm = pipeline.pipeline.sagemaker
        instance_type = settings_sm.instance_type if settings_sm else ""
        assumed = (
            model.pricing.records_per_second.get(instance_type)
            if isinstance(model, SageMakerModel) and model.pricing
            else None
        )
        throughput = settings.records_per_second or assumed
        if throughput is None:
            return {
                "usd": None,
                "route": "batch",
                "model": pipeline.model_key,
                "prices_as_of": pricing.as_of,
                "source": pricing.source,
                "unpriced": f"no throughput for {instance_type}: pass "
                "--records-per-second (records per second per instance, e.g. from a past run's timings)",
            }
        cost = planned_sagemaker_cost(
            pricing,
            pipeline.model_key,
            records,
            throughput,
            instance_type,
            settings_sm.instance_count if settings_sm else 1,
        )
        origin = "given" if settings.records_per_second else "the catalog's planning assumption, not a measurement"
        cost["basis"] = (
            f"{records} records / ({throughput:g} records per second per instance, {origin}) on "
            f"{cost['instance_count']} x {instance_type} = {cost['instance_hours']} instance-hours at "
            f"{cost['instance_hourly_usd']} USD per instance-hour; instance start-up time is billed "
            "too and not included"
        )
    if isinstance(model, (BedrockModel, SageMakerModel)) and model.pricing and model.pricing.note:
        cost["price_note"] = model.pricing.note
    return cost


def estimate(
    config: AppConfig,
    pipeline: RuntimePipeline,
    route: str,
    run_folder: Path,
    shards: list[dict[str, Any]],
    settings: EstimateSettings,
    client_factory: Callable[[], BaseClient] = default_count_tokens_client,
) -> dict[str, Any]:
    """`{"estimated_tokens": {...}, "estimated_cost_usd": {...} | None, "assumptions": [...]}` for the records
    intake wrote under `run_folder` (its `shards`)."""
    model = config.models[pipeline.model_key]
    total = sum(int(shard["records"]) for shard in shards)
    positions = sample_positions(total, settings.count_tokens_sample)
    tally = _tally(model_ready_records(run_folder, shards), pipeline, positions)
    tokens = estimate_tokens(tally, pipeline, model, settings, client_factory)
    tokens["output"], tokens["output_basis"] = _output_tokens(tally, pipeline, settings)
    cost = _cost(
        pipeline, runtime_prices(config).get(pipeline.model_key), model, route, tally.records, tokens, settings
    )
    assumptions = [f"input tokens: {tokens['input_basis']}", f"output tokens: {tokens['output_basis']}"]
    if cost is None:
        assumptions.append(
            f"cost: the catalog has no prices for {pipeline.model_key} (models.{pipeline.model_key}.pricing)"
        )
    else:
        assumptions.append(
            f"cost: {cost.get('basis') or cost.get('unpriced')}; prices as of {cost['prices_as_of']} "
            f"from {cost['source']}"
        )
        if cost.get("price_note"):
            assumptions.append(f"prices: {cost['price_note']}")
    return {
        "estimated_tokens": {
            "input": tokens["input"],
            "output": tokens["output"],
            "method": tokens["method"],
            **({"count_tokens": tokens["count_tokens"]} if "count_tokens" in tokens else {}),
        },
        "estimated_cost_usd": cost,
        "assumptions": assumptions,
    }
