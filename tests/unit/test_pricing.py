"""Catalog prices (validated, carried to the Lambdas) and the cost a manifest computes from the run's own numbers."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from batch_pipeline.config.app import ConfigError, load_app_config
from batch_pipeline.config.runtime import dump_runtime_prices, parse_runtime_prices, runtime_pipelines, runtime_prices
from batch_pipeline.contracts import Job, Manifest
from batch_pipeline.results.manifest import build_manifest, render_summary
from batch_pipeline.storage.layout import RunFolder

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = json.loads((ROOT / "cdk.json").read_text())["context"]["batch-pipeline"]
FINISHED = datetime(2026, 11, 21, 10, 1, 30, tzinfo=UTC)


def config_with(path: list[str], value: object) -> dict:
    raw = copy.deepcopy(DEFAULTS)
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return raw


def pipelines(raw: dict | None = None) -> dict:
    return runtime_pipelines(load_app_config(raw or DEFAULTS), {"flan-t5-large": "m1", "bart-large-mnli": "m2"})


def prices(raw: dict | None = None) -> dict:
    return runtime_prices(load_app_config(raw or DEFAULTS))


def priced(name: str, raw: dict | None = None) -> dict:
    """build_manifest's keyword arguments for pipeline `name`: the pipeline and its model's prices."""
    pipeline = pipelines(raw)[name]
    return {"pipeline": pipeline, "pricing": prices(raw).get(pipeline.model_key)}


# ---------------------------------------------------------------- the catalog


def test_every_default_batch_pipeline_is_priced_with_a_date_and_the_pricing_page():
    for name, pipeline in pipelines().items():
        pricing = prices().get(pipeline.model_key)
        assert pricing is not None, name
        assert pricing.source.startswith("https://aws.amazon.com/"), name
        datetime.strptime(pricing.as_of, "%Y-%m-%d")
        if pipeline.backend == "bedrock":
            # Batch inference at 50% of on-demand (Bedrock User Guide, Capacity, Limits, and Cost Optimization).
            assert pricing.batch.input_per_1k == pytest.approx(pricing.on_demand.input_per_1k / 2)
            assert pricing.batch.output_per_1k == pytest.approx(pricing.on_demand.output_per_1k / 2)
        else:
            assert (pricing.hourly_usd(pipeline.pipeline.sagemaker.instance_type) or 0) > 0


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (["models", "nova-lite", "pricing", "on_demand", "input_per_1k"], -0.1, "greater than or equal to 0"),
        (["models", "nova-lite", "pricing", "batch", "output_per_1k"], float("nan"), "finite number"),
        (["models", "nova-lite", "pricing", "as_of"], "2026/09/01", "pattern"),
        (["models", "nova-lite", "pricing", "as_of"], "2026-02-30", "is not a date"),
        (["models", "nova-lite", "pricing", "source"], "http://aws.amazon.com/bedrock/pricing/", "pattern"),
        (["models", "nova-lite", "pricing", "source"], "aws.amazon.com/bedrock/pricing", "pattern"),
        (["models", "flan-t5-large", "pricing", "instance_hourly_usd"], {"p3.2xlarge": 3.8}, "pattern"),
        (["models", "flan-t5-large", "pricing", "instance_hourly_usd"], {}, "at least 1"),
        (["models", "bart-large-mnli", "pricing", "records_per_second"], {"ml.c5.2xlarge": 0}, "greater than 0"),
    ],
)
def test_a_bad_price_is_rejected_by_key(path, value, expected):
    with pytest.raises(ConfigError) as error:
        load_app_config(config_with(path, value))
    # The message names the key (pydantic puts the backend tag of the model entry in the path).
    assert f"batch-pipeline.models.{path[1]}." in str(error.value)
    assert ".pricing." + ".".join(path[3:]) in str(error.value)
    assert expected in str(error.value)


def test_a_price_dated_in_the_future_is_rejected():
    tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    with pytest.raises(ConfigError, match="in the future"):
        load_app_config(config_with(["models", "nova-lite", "pricing", "as_of"], tomorrow))


def test_an_instance_type_without_a_price_is_named():
    raw = config_with(["pipelines", "summarize", "sagemaker", "instance_type"], "ml.g5.xlarge")
    expected = r"pipelines\.summarize\.sagemaker\.instance_type: ml\.g5\.xlarge has no price"
    with pytest.raises(ConfigError, match=expected):
        load_app_config(raw)


def test_a_model_without_prices_is_allowed_and_carries_none():
    raw = copy.deepcopy(DEFAULTS)
    del raw["models"]["nova-lite"]["pricing"]
    assert "nova-lite" not in prices(raw)
    manifest = build_manifest(
        BEDROCK_RUN,
        [bedrock_job("batch")],
        COLLECT,
        None,
        FINISHED,
        **priced("bedrock-summarize", raw),
        folder=RunFolder.of(BEDROCK_RUN),
    )
    assert "cost" not in manifest


def test_prices_reach_the_manifest_function_through_its_prices_variable():
    parsed = parse_runtime_prices(dump_runtime_prices(prices()))
    catalog = DEFAULTS["models"]
    assert parsed["nova-lite"].batch.input_per_1k == catalog["nova-lite"]["pricing"]["batch"]["input_per_1k"]
    assert (
        parsed["flan-t5-large"].hourly_usd("ml.p3.2xlarge")
        == catalog["flan-t5-large"]["pricing"]["instance_hourly_usd"]["ml.p3.2xlarge"]
    )
    assert parsed["nova-lite"].note is None  # the note stays in the catalog: the variable must stay small
    with pytest.raises(ConfigError, match="PRICES"):
        parse_runtime_prices('{"nova-lite": {"as_of": "yesterday"}}')


def test_only_the_instance_types_pipelines_use_are_carried():
    raw = config_with(
        ["models", "flan-t5-large", "pricing", "instance_hourly_usd"], {"ml.p3.2xlarge": 3.825, "ml.g5.xlarge": 1.0}
    )
    assert prices(raw)["flan-t5-large"].instance_hourly_usd == {"ml.p3.2xlarge": 3.825}


# ---------------------------------------------------------------- the manifest's cost

BEDROCK_RUN = {
    "run_id": "calls-0123456789abcdef",
    "pipeline": "bedrock-summarize",
    "backend": "bedrock",
    "output_bucket": "out",
    "run_prefix": "runs/bedrock-summarize/calls-0123456789abcdef/",
    "counts": {"total": 120, "valid": 120, "rejected": 0},
}
SAGEMAKER_RUN = {
    **BEDROCK_RUN,
    "pipeline": "summarize",
    "backend": "sagemaker",
    "run_prefix": "runs/summarize/calls-0123456789abcdef/",
}


def bedrock_job(route: str) -> Job:
    return Job(
        index=0,
        name="llmbp-calls-0",
        arn="arn:job",
        status="Completed",
        state="succeeded",
        done=True,
        records=120,
        route=route,
        model_invocations=120,
    )


def transform_job(started: str | None, ended: str | None, name: str = "llmbp-calls-0") -> Job:
    return Job(
        index=0,
        name=name,
        arn=f"arn:{name}",
        status="Completed",
        state="succeeded",
        done=True,
        records=20,
        started_at=started,
        ended_at=ended,
        model_invocations=20,
    )


COLLECT = {"processed": 120, "succeeded": 120, "failed": 0, "input_tokens": 2_000_000, "output_tokens": 500_000}


@pytest.mark.parametrize(
    ("route", "expected_route", "prices"), [("batch", "batch", "batch"), ("on-demand", "on-demand", "on_demand")]
)
def test_bedrock_cost_is_tokens_at_the_price_of_the_route_taken(route, expected_route, prices):
    manifest = build_manifest(
        BEDROCK_RUN,
        [bedrock_job(route)],
        COLLECT,
        None,
        FINISHED,
        **priced("bedrock-summarize"),
        folder=RunFolder.of(BEDROCK_RUN),
    )
    price = DEFAULTS["models"]["nova-lite"]["pricing"][prices]
    cost = manifest["cost"]
    assert cost["route"] == expected_route
    assert cost["input_usd"] == pytest.approx(2000 * price["input_per_1k"])
    assert cost["output_usd"] == pytest.approx(500 * price["output_per_1k"])
    assert cost["usd"] == pytest.approx(cost["input_usd"] + cost["output_usd"])
    assert cost["instance_usd"] is None
    assert cost["model"] == "nova-lite" and cost["prices_as_of"] == "2026-09-01"
    assert cost["source"] == "https://aws.amazon.com/bedrock/pricing/"
    assert "2000000 input and 500000 output tokens" in cost["basis"]
    Manifest.model_validate(manifest)
    assert f"Cost: {cost['usd']:.6f} USD ({route}" in render_summary(manifest)


def test_on_demand_costs_twice_batch_for_the_same_tokens():
    batch = build_manifest(
        BEDROCK_RUN,
        [bedrock_job("batch")],
        COLLECT,
        None,
        FINISHED,
        **priced("bedrock-summarize"),
        folder=RunFolder.of(BEDROCK_RUN),
    )["cost"]
    on_demand = build_manifest(
        BEDROCK_RUN,
        [bedrock_job("on-demand")],
        COLLECT,
        None,
        FINISHED,
        **priced("bedrock-summarize"),
        folder=RunFolder.of(BEDROCK_RUN),
    )["cost"]
    assert on_demand["usd"] == pytest.approx(2 * batch["usd"])


def test_a_bedrock_run_without_token_counts_claims_no_cost():
    collect = {"processed": 120, "succeeded": 120, "failed": 0}
    manifest = build_manifest(
        BEDROCK_RUN,
        [bedrock_job("batch")],
        collect,
        None,
        FINISHED,
        **priced("bedrock-summarize"),
        folder=RunFolder.of(BEDROCK_RUN),
    )
    assert "cost" not in manifest and "Cost:" not in render_summary(manifest)


def test_sagemaker_cost_is_transform_instance_hours_at_the_hourly_price():
    raw = config_with(["pipelines", "summarize", "sagemaker", "instance_count"], 2)
    jobs = [
        transform_job("2026-11-21T10:00:00+00:00", "2026-11-21T10:30:00+00:00"),
        transform_job("2026-11-21T10:00:00+00:00", "2026-11-21T11:00:00+00:00", "llmbp-calls-1"),
    ]
    collect = {"processed": 40, "succeeded": 40, "failed": 0}
    manifest = build_manifest(
        SAGEMAKER_RUN, jobs, collect, None, FINISHED, **priced("summarize", raw), folder=RunFolder.of(SAGEMAKER_RUN)
    )
    cost = manifest["cost"]
    hourly = DEFAULTS["models"]["flan-t5-large"]["pricing"]["instance_hourly_usd"]["ml.p3.2xlarge"]
    # (0.5 h + 1 h) x 2 instances
    assert cost["instance_usd"] == pytest.approx(3 * hourly)
    assert cost["usd"] == cost["instance_usd"] and cost["input_usd"] == cost["output_usd"] == 0
    assert cost["route"] == "batch" and cost["model"] == "flan-t5-large" and cost["instance_usd"] is not None
    assert "3.0000 instance-hours" in cost["basis"]
    assert manifest["jobs"][0]["started_at"] == "2026-11-21T10:00:00+00:00"  # the report can show job durations
    Manifest.model_validate(manifest)


def test_a_transform_job_without_times_is_named_in_the_basis_not_counted_as_free():
    jobs = [transform_job("2026-11-21T10:00:00+00:00", "2026-11-21T10:06:00+00:00"), transform_job(None, None, "j-1")]
    cost = build_manifest(
        SAGEMAKER_RUN,
        jobs,
        {"succeeded": 20},
        None,
        FINISHED,
        **priced("summarize"),
        folder=RunFolder.of(SAGEMAKER_RUN),
    )["cost"]
    assert cost["instance_usd"] == pytest.approx(0.1 * 3.825)
    assert "no start/end time for j-1" in cost["basis"]


def test_a_manifest_without_the_pipeline_or_its_prices_has_no_cost():
    assert "cost" not in build_manifest(
        BEDROCK_RUN, [bedrock_job("batch")], COLLECT, None, FINISHED, folder=RunFolder.of(BEDROCK_RUN)
    )
    pipeline = pipelines()["bedrock-summarize"]
    assert "cost" not in build_manifest(
        BEDROCK_RUN,
        [bedrock_job("batch")],
        COLLECT,
        None,
        FINISHED,
        pipeline=pipeline,
        pricing=None,
        folder=RunFolder.of(BEDROCK_RUN),
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("route", "spot"), ("usd", -1.0), ("prices_as_of", "Sept 2026"), ("source", "aws pricing page")],
)
def test_the_manifest_contract_holds_the_agreed_cost_shape(field, value):
    manifest = build_manifest(
        BEDROCK_RUN,
        [bedrock_job("batch")],
        COLLECT,
        None,
        FINISHED,
        **priced("bedrock-summarize"),
        folder=RunFolder.of(BEDROCK_RUN),
    )
    manifest["cost"][field] = value
    with pytest.raises(ValidationError):
        Manifest.model_validate(manifest)
