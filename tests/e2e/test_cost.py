"""Cost before and after, end to end: `plan --json` estimates every default pipeline, and a local run's manifest and
summary.md carry the cost computed from what the run reported."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import orjson
import pytest

from batch_pipeline_local.cli.main import main
from batch_pipeline_local.emulator.run import run_file
from batch_pipeline_local.template import REGION

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CONFIG = json.loads((ROOT / "cdk.json").read_text())["context"]["batch-pipeline"]


def example_for(input_format: str, tmp_path: Path) -> Path:
    """A file in the pipeline's own input format: the repository's examples, or a few portable lines."""
    examples = {
        "jumpstart-text2text": "summarize.jsonl",
        "zero-shot": "classify.jsonl",
        "bedrock": "bedrock-summarize.jsonl",
    }
    if input_format in examples:
        return EXAMPLES / examples[input_format]
    path = tmp_path / f"{input_format}.jsonl"
    if input_format == "prompt":
        records = [{"id": i, "prompt": f"Summarize in one line: the meeting {i} moved the launch."} for i in range(20)]
    else:  # messages
        records = [
            {"id": i, "messages": [{"role": "user", "content": [{"text": f"Summarize call {i}."}]}]} for i in range(20)
        ]
    path.write_bytes(b"".join(orjson.dumps(record) + b"\n" for record in records))
    return path


@pytest.mark.parametrize("pipeline", sorted(CONFIG["pipelines"]))
def test_plan_json_estimates_tokens_and_cost_for_each_default_pipeline(pipeline, tmp_path, capsys):
    path = example_for(CONFIG["pipelines"][pipeline]["input_format"], tmp_path)
    assert main(["plan", str(path), "--pipeline", pipeline, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    tokens, cost = document["estimated_tokens"], document["estimated_cost_usd"]
    assert tokens["input"] > 0 and tokens["method"] in ("count_tokens", "heuristic")
    assert tokens["output"] is not None and tokens["output"] >= 0
    assert cost["usd"] > 0
    assert cost["route"] in ("batch", "on-demand")
    assert cost["model"] == CONFIG["pipelines"][pipeline]["model"]
    assert cost["prices_as_of"] and cost["source"].startswith("https://")
    assert document["assumptions"] and all(isinstance(line, str) for line in document["assumptions"])


def test_plan_prints_the_estimate_with_its_assumptions(capsys):
    assert (
        main(
            [
                "plan",
                str(EXAMPLES / "bedrock-summarize.jsonl"),
                "--pipeline",
                "bedrock-summarize",
                "--output-ratio",
                "0.25",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "Estimate before the run:" in out and "estimated cost" in out and "on-demand would be" in out
    assert "Assumptions:" in out and "x 0.25 expected ratio" in out and "characters per token" in out


def _check_cost_shape(cost: dict) -> None:
    assert set(cost) >= {
        "usd",
        "input_usd",
        "output_usd",
        "instance_usd",
        "route",
        "model",
        "prices_as_of",
        "source",
        "basis",
    }
    assert cost["usd"] >= 0 and cost["source"].startswith("https://")


@pytest.mark.parametrize(("pipeline", "example"), [("summarize", "summarize.jsonl"), ("classify", "classify.jsonl")])
def test_a_sagemaker_run_reports_its_instance_time_cost(local, pipeline, example):
    result = run_file(local, EXAMPLES / example, pipeline)
    cost = result.manifest["cost"]
    _check_cost_shape(cost)
    assert cost["route"] == "batch" and cost["model"] == CONFIG["pipelines"][pipeline]["model"]
    assert cost["instance_usd"] is not None and cost["input_usd"] == cost["output_usd"] == 0  # instance time, no tokens
    assert "TransformEndTime - TransformStartTime" in cost["basis"]
    job = result.manifest["jobs"][0]
    assert job["started_at"] and job["ended_at"]  # from DescribeTransformJob, through job control
    bucket, key = result.manifest["outputs"]["summary"].removeprefix("s3://").split("/", 1)
    summary = boto3.client("s3", region_name=REGION).get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    assert "Cost:" in summary and cost["source"] in summary


def test_a_bedrock_run_reports_the_cost_of_its_tokens_at_the_batch_price(local):
    result = run_file(local, EXAMPLES / "bedrock-summarize.jsonl", "bedrock-summarize")
    manifest = result.manifest
    cost, tokens = manifest["cost"], manifest["tokens"]
    _check_cost_shape(cost)
    price = CONFIG["models"]["nova-lite"]["pricing"]["batch"]
    assert cost["route"] == "batch"
    assert cost["usd"] == pytest.approx(
        tokens["input_tokens"] / 1000 * price["input_per_1k"] + tokens["output_tokens"] / 1000 * price["output_per_1k"],
        abs=2e-6,
    )
    assert cost["prices_as_of"] == CONFIG["models"]["nova-lite"]["pricing"]["as_of"]
