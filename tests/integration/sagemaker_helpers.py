"""Shared set-up for the SageMaker backend, engine and collect tests: a run folder in moto S3 with
shards in intake's format (model-ready JSON lines with `id`), references, and runtime pipelines."""

from __future__ import annotations

import json
from dataclasses import dataclass

from batch_pipeline.config.runtime import RuntimePipeline
from batch_pipeline.storage.layout import RunFolder
from batch_pipeline_local.project import load_pipeline

BUCKET = "llmbp-output-test"
RUN_ID = "articles-0123456789abcdef"


def pipeline(name: str, model_name: str | None = None) -> RuntimePipeline:
    """A cdk.json pipeline as the stack hands it to the Lambdas (with the CfnModel name filled in)."""
    loaded = load_pipeline(name)
    return loaded.model_copy(update={"sagemaker_model_name": model_name or f"llmbp-{loaded.model_key}"})


def make_run(pipeline_name: str, run_id: str = RUN_ID) -> dict:
    return {"run_id": run_id, "pipeline": pipeline_name, "output_bucket": BUCKET}


def make_folder(pipeline_name: str, run_id: str = RUN_ID) -> RunFolder:
    return RunFolder.of(make_run(pipeline_name, run_id))


def prefix(run: dict | RunFolder) -> str:
    """The run folder's prefix, for a run reference or (inside a test's own backend) the RunFolder it is handed."""
    return (run if isinstance(run, RunFolder) else RunFolder.of(run)).prefix


def put_lines(s3, key: str, records: list[dict]) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body="".join(json.dumps(r) + "\n" for r in records).encode())


def read_lines(s3, key: str) -> list[dict]:
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def article(i: int, marker: str = "") -> dict:
    return {
        "id": i,
        "text_inputs": f"Briefly summarize this text: Article {i} opens with its lead sentence. "
        f"It then adds detail number {i}. A third sentence closes it.{marker}",
    }


# The stand-in scores by label-word overlap, so each text names its class (it is not a model).
TWEETS = [
    ("Sort out my finances and pay off the credit card", "finance"),
    ("Go to the gym and stay healthy every day", "health"),
    ("Get a promotion and grow my career", "career"),
    ("Keep a budget so my finances improve", "finance"),
    ("Run a marathon for my health", "health"),
    ("Find a new job with a better career path", "career"),
]
LABELS = ["career", "health", "finance"]


def tweet(i: int, marker: str = "") -> dict:
    text, _ = TWEETS[i % len(TWEETS)]
    return {"id": f"t{i}", "sequences": f"{text} {i}{marker}", "candidate_labels": LABELS, "multi_class": False}


def write_shards(s3, run: dict, shards: list[list[dict]]) -> list[str]:
    keys = []
    for index, records in enumerate(shards):
        key = f"{prefix(run)}shards/part-{index:05d}.jsonl"
        put_lines(s3, key, records)
        keys.append(key)
    return keys


@dataclass
class LambdaContext:
    """The attributes Powertools reads from a Lambda context."""

    function_name: str = "test-function"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
