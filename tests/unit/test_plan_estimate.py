"""`batch-pipeline plan`'s estimate: sampled CountTokens (checked by botocore's Stubber against the real
bedrock-runtime service model), the characters-per-token heuristic, and the cost of the run as planned."""

from __future__ import annotations

import math
from pathlib import Path

import boto3
import orjson
import pytest
from botocore.stub import Stubber

from batch_pipeline.config.app import load_app_config
from batch_pipeline.config.runtime import runtime_pipelines
from batch_pipeline.intake.stream import LocalDirSink, run_intake
from batch_pipeline_local.cli.plan_estimate import (
    EstimateError,
    EstimateSettings,
    count_tokens_request,
    estimate,
    model_chars,
    sample_positions,
)

ARTIFACTS = {
    "us-east-1": {"image_uri": "example.dkr.ecr.us-east-1.amazonaws.com/hf:1", "model_data_uri": "s3://models/m.tar.gz"}
}
TOKEN_PRICES = {
    "as_of": "2026-09-01",
    "source": "https://aws.amazon.com/bedrock/pricing/",
    "on_demand": {"input_per_1k": 0.0008, "output_per_1k": 0.004},
    "batch": {"input_per_1k": 0.0004, "output_per_1k": 0.002},
}
MODELS = {
    # Claude 3.5 Haiku is on the CountTokens list (Bedrock User Guide, count-tokens.html).
    "haiku": {
        "backend": "bedrock",
        "model_id": "us.anthropic.claude-3-5-haiku-20241022-v1:0",
        "family": "anthropic",
        "routes_to_regions": ["us-east-1", "us-west-2"],
        "count_tokens": True,
        "max_output_tokens": 8192,
        "pricing": TOKEN_PRICES,
    },
    "nova": {
        "backend": "bedrock",
        "model_id": "amazon.nova-lite-v1:0",
        "family": "nova",
        "max_output_tokens": 5000,
        "pricing": TOKEN_PRICES,
    },
    "flan": {
        "backend": "sagemaker",
        "task": "text2text",
        "jumpstart_model_id": "flan",
        "regions": ARTIFACTS,
        "pricing": {
            "as_of": "2026-12-02",
            "source": "https://aws.amazon.com/sagemaker-ai/pricing/",
            "instance_hourly_usd": {"ml.g5.xlarge": 1.5},
            "records_per_second": {"ml.g5.xlarge": 10},
        },
    },
}
BEDROCK = {"min_records_per_job": 10, "max_records_per_job": 1000, "inference_params": {"max_tokens": 300}}
PIPELINES = {
    "haiku": {"model": "haiku", "input_format": "bedrock", "bedrock": BEDROCK},
    "haiku-converse": {
        "model": "haiku",
        "input_format": "prompt",
        "bedrock": {**BEDROCK, "invocation_type": "Converse"},
    },
    "nova": {"model": "nova", "input_format": "prompt", "bedrock": BEDROCK},
    "flan": {
        "model": "flan",
        "input_format": "jumpstart-text2text",
        "sagemaker": {"instance_type": "ml.g5.xlarge", "instance_count": 2, "hyper_params": {"max_length": 40}},
    },
}
CONFIG = load_app_config({"models": MODELS, "pipelines": PIPELINES})
RUNTIME = runtime_pipelines(CONFIG, {"flan": "model-flan"})


def anthropic_record(i: int) -> dict:
    return {
        "recordId": f"r{i}",
        "modelInput": {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 100 + i,
            "messages": [{"role": "user", "content": "word " * (i + 1)}],
        },
    }


def planned(name: str, records: list[dict], tmp_path: Path) -> tuple[list[dict], str, Path]:
    """Intake's run folder for `records` on pipeline `name`: (shards, route, folder)."""
    folder = tmp_path / name
    sink = LocalDirSink(folder)
    data = b"".join(orjson.dumps(record) + b"\n" for record in records)
    result = run_intake([data], RUNTIME[name], sink=sink, workdir=str(tmp_path))
    assert result.accepted, result.report
    shards = [{**shard, "key": str(Path(shard["key"]).relative_to(folder))} for shard in result.shards]
    return shards, result.plan.route, folder


def stubbed_runtime() -> tuple[object, Stubber]:
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    return client, Stubber(client)


def test_count_tokens_is_sampled_extrapolated_and_sent_in_the_real_request_shape(tmp_path):
    records = [anthropic_record(i) for i in range(50)]
    shards, route, folder = planned("haiku", records, tmp_path)
    settings = EstimateSettings(count_tokens_sample=5)
    positions = sorted(sample_positions(50, 5))
    assert positions == [0, 12, 24, 37, 49]
    client, stubber = stubbed_runtime()
    counted = {}
    for position in positions:
        record = records[position]
        counted[position] = 10 + position  # what CountTokens answers for that record
        # The foundation model behind the inference profile, and the InvokeModel body as the JSON blob.
        stubber.add_response(
            "count_tokens",
            {"inputTokens": counted[position]},
            {
                "modelId": "anthropic.claude-3-5-haiku-20241022-v1:0",
                "input": {"invokeModel": {"body": orjson.dumps(record["modelInput"])}},
            },
        )
    with stubber:
        result = estimate(CONFIG, RUNTIME["haiku"], route, folder, shards, settings, client_factory=lambda: client)
    stubber.assert_no_pending_responses()  # exactly 5 calls for 50 records

    chars = [model_chars(record, RUNTIME["haiku"]) for record in records]
    per_char = sum(counted.values()) / sum(chars[p] for p in positions)
    tokens = result["estimated_tokens"]
    assert tokens["method"] == "count_tokens"
    assert tokens["input"] == round(sum(chars) * per_char)
    assert tokens["count_tokens"]["calls"] == 5 and tokens["count_tokens"]["extrapolated"] is True
    assert tokens["output"] == sum(100 + i for i in range(50))  # each record's own max_tokens, ratio 1.0
    assert any("5 of 50 records counted" in line for line in result["assumptions"])


def test_count_tokens_for_converse_sends_only_the_fields_it_takes(tmp_path):
    records = [{"id": i, "prompt": f"Summarize: {'text ' * (i + 3)}"} for i in range(12)]
    shards, route, folder = planned("haiku-converse", records, tmp_path)
    client, stubber = stubbed_runtime()
    for record in records:  # 12 records, sample 20: every record counted, nothing extrapolated
        body = {"messages": [{"role": "user", "content": [{"text": record["prompt"]}]}]}
        stubber.add_response(
            "count_tokens",
            {"inputTokens": 7},
            {"modelId": "anthropic.claude-3-5-haiku-20241022-v1:0", "input": {"converse": body}},
        )
    with stubber:
        result = estimate(
            CONFIG, RUNTIME["haiku-converse"], route, folder, shards, EstimateSettings(), client_factory=lambda: client
        )
    assert result["estimated_tokens"]["input"] == 7 * 12
    assert result["estimated_tokens"]["count_tokens"]["extrapolated"] is False
    assert result["estimated_tokens"]["output"] == 300 * 12  # the pipeline's max_tokens, put into each request


def test_the_request_builder_is_what_the_service_model_accepts():
    client, stubber = stubbed_runtime()
    request = count_tokens_request("anthropic.claude-3-5-haiku-20241022-v1:0", anthropic_record(1), converse=False)
    stubber.add_response("count_tokens", {"inputTokens": 1}, request)
    with stubber:
        assert client.count_tokens(**request)["inputTokens"] == 1
    # And the Stubber would catch a wrong shape: CountTokens takes no inferenceConfig in its converse input.
    wrong = {"modelId": "m", "input": {"converse": {"messages": [], "inferenceConfig": {"maxTokens": 5}}}}
    with pytest.raises(Exception, match="inferenceConfig"), Stubber(client) as strict:
        strict.add_response("count_tokens", {"inputTokens": 1}, wrong)
        client.count_tokens(**wrong)


def test_a_refused_count_tokens_falls_back_to_the_heuristic_and_says_why(tmp_path):
    shards, route, folder = planned("haiku", [anthropic_record(i) for i in range(10)], tmp_path)
    client, stubber = stubbed_runtime()
    refusal = "The provided model doesn't support counting tokens"
    stubber.add_client_error("count_tokens", "ValidationException", refusal)
    with stubber:
        result = estimate(
            CONFIG, RUNTIME["haiku"], route, folder, shards, EstimateSettings(), client_factory=lambda: client
        )
    assert result["estimated_tokens"]["method"] == "heuristic"
    assert any("CountTokens failed" in line and "doesn't support" in line for line in result["assumptions"])
    client, stubber = stubbed_runtime()
    stubber.add_client_error("count_tokens", "AccessDeniedException", "not authorized to perform bedrock:CountTokens")
    with stubber, pytest.raises(EstimateError, match="AccessDenied"):
        estimate(
            CONFIG,
            RUNTIME["haiku"],
            route,
            folder,
            shards,
            EstimateSettings(tokens="count-tokens"),
            client_factory=lambda: client,
        )


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_without_credentials_the_heuristic_counts_characters_and_no_call_is_made(tmp_path, no_credentials):
    records = [anthropic_record(i) for i in range(30)]
    shards, route, folder = planned("haiku", records, tmp_path)

    def no_client():
        raise AssertionError("CountTokens must not be called without credentials")

    result = estimate(
        CONFIG, RUNTIME["haiku"], route, folder, shards, EstimateSettings(chars_per_token=3.5), client_factory=no_client
    )
    chars = sum(len("word " * (i + 1)) for i in range(30))  # only the message text, not the JSON around it
    assert result["estimated_tokens"] == {
        "input": math.ceil(chars / 3.5),
        "output": sum(100 + i for i in range(30)),
        "method": "heuristic",
    }
    assert any("3.5 characters per token (no AWS credentials found)" in line for line in result["assumptions"])


def test_count_tokens_is_not_tried_for_a_model_the_catalog_does_not_list(tmp_path):
    shards, route, folder = planned("nova", [{"id": i, "prompt": "hello there"} for i in range(20)], tmp_path)
    result = estimate(
        CONFIG,
        RUNTIME["nova"],
        route,
        folder,
        shards,
        EstimateSettings(),
        client_factory=lambda: pytest.fail("no CountTokens for Nova"),
    )
    assert result["estimated_tokens"]["method"] == "heuristic"
    with pytest.raises(EstimateError, match="does not list nova"):
        estimate(CONFIG, RUNTIME["nova"], route, folder, shards, EstimateSettings(tokens="count-tokens"))


@pytest.mark.parametrize(("records", "route", "prices"), [(5, "on-demand", "on_demand"), (40, "batch", "batch")])
def test_bedrock_cost_uses_the_route_intake_planned(tmp_path, records, route, prices):
    shards, planned_route, folder = planned("nova", [{"id": i, "prompt": "x" * 400} for i in range(records)], tmp_path)
    cost = estimate(
        CONFIG, RUNTIME["nova"], planned_route, folder, shards, EstimateSettings(tokens="heuristic", output_ratio=0.5)
    )["estimated_cost_usd"]
    assert cost["route"] == route
    input_tokens, output_tokens = records * 100, records * 300 * 0.5
    price = TOKEN_PRICES[prices]
    assert cost["usd"] == pytest.approx(
        input_tokens / 1000 * price["input_per_1k"] + output_tokens / 1000 * price["output_per_1k"]
    )
    assert set(cost["by_route"]) == {"batch", "on-demand"}
    assert cost["prices_as_of"] == "2026-09-01" and cost["source"] == "https://aws.amazon.com/bedrock/pricing/"


def test_sagemaker_cost_is_instance_hours_from_the_throughput(tmp_path):
    records = [{"id": i, "text_inputs": "Summarize: " + "a " * 50} for i in range(360)]
    shards, route, folder = planned("flan", records, tmp_path)
    assumed = estimate(CONFIG, RUNTIME["flan"], route, folder, shards, EstimateSettings())
    cost = assumed["estimated_cost_usd"]
    # 360 records / (10 per second x 2 instances) = 18 s on each of 2 instances = 0.01 instance-hours
    assert cost["instance_hours"] == pytest.approx(0.01) and cost["wall_clock_hours"] == pytest.approx(0.005)
    assert cost["usd"] == pytest.approx(0.01 * 1.5)
    assert "planning assumption" in cost["basis"]
    assert assumed["estimated_tokens"]["output"] == 360 * 40  # HYPER_PARAMS max_length
    given = estimate(CONFIG, RUNTIME["flan"], route, folder, shards, EstimateSettings(records_per_second=1))
    assert given["estimated_cost_usd"]["usd"] == pytest.approx(10 * 0.01 * 1.5)


def test_a_million_records_make_at_most_the_sample_of_calls():
    positions = sample_positions(1_000_000, 20)
    assert len(positions) == 20 and min(positions) == 0 and max(positions) == 999_999
    assert sample_positions(3, 20) == {0, 1, 2}


@pytest.mark.parametrize(
    "bad", [{"chars_per_token": 0}, {"output_ratio": 1.5}, {"count_tokens_sample": 0}, {"records_per_second": -1}]
)
def test_settings_out_of_range_are_refused(bad):
    with pytest.raises(ValueError):
        EstimateSettings(**bad)
