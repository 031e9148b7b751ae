"""End to end in local mode: upload -> intake -> the synthesized state machine -> manifest.

The SageMaker container is the local stand-in engine; markers in a record's text make it fail a
job ([[fail-job]]) or drop one record's output ([[drop-output]])."""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import boto3
import pytest

from batch_pipeline.storage.layout import RunFolder
from batch_pipeline_local.emulator.run import deliver, read_lines, run_file, upload, wait_for_executions
from batch_pipeline_local.emulator.session import local_aws
from batch_pipeline_local.project import Project
from batch_pipeline_local.template import REGION, synthesize_template

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write(tmp_path: Path, name: str, records: list[dict]) -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def run_folder(local, result) -> RunFolder:
    """The run's folder, from the execution input (the run reference every state carries)."""
    return RunFolder.of(json.loads(result.execution["input"])["run"])


def test_summarize_runs_from_upload_to_manifest(local):
    result = run_file(local, EXAMPLES / "summarize.jsonl", "summarize")
    manifest = result.manifest
    assert result.execution["status"] == "SUCCEEDED"
    assert manifest["status"] == "SUCCEEDED"
    assert manifest["counts"] == {
        "total": 20,
        "valid": 20,
        "rejected": 0,
        "processed": 20,
        "succeeded": 20,
        "failed": 0,
    }
    assert manifest["local_stand_in"] is True
    assert manifest["jobs"][0]["name"].startswith("llmbp-")
    assert manifest["input"]["key"] == "summarize/summarize.jsonl" and manifest["input"]["version_id"]
    predictions = read_lines(local.output_bucket, run_folder(local, result).predictions_key)
    assert sorted(p["id"] for p in predictions) == list(range(20))
    assert all(p["prediction"] and p["reference"] for p in predictions)
    assert manifest["evaluation"]["metric"] == "rouge" and manifest["evaluation"]["scored"] == 20
    assert 0 < manifest["evaluation"]["rouge_f"]["rouge1"] <= 1
    assert all("metrics" in p for p in predictions)  # per-record scores


def test_classify_runs_from_upload_to_manifest(local):
    result = run_file(local, EXAMPLES / "classify.jsonl", "classify")
    manifest = result.manifest
    assert manifest["status"] == "SUCCEEDED"
    assert manifest["counts"]["succeeded"] == 20
    predictions = read_lines(local.output_bucket, run_folder(local, result).predictions_key)
    assert len(predictions) == 20
    for p in predictions:
        assert p["prediction"] in p["labels"] and len(p["scores"]) == 5 and p["label"]
    assert manifest["evaluation"]["metric"] == "classification"
    assert 0 <= manifest["evaluation"]["accuracy"] <= 1


def test_a_failed_job_ends_in_a_failed_manifest_with_the_reason(local, tmp_path):
    records = lines_of(EXAMPLES / "summarize.jsonl")[:5]
    records[2]["text_inputs"] += " [[fail-job]]"
    result = run_file(local, write(tmp_path, "failing.jsonl", records), "summarize")
    assert result.execution["status"] == "FAILED"
    assert result.manifest["status"] == "FAILED"
    assert result.manifest["jobs"][0]["status"] == "Failed"
    assert result.manifest["cause"]
    assert result.manifest["counts"]["succeeded"] == 0


def test_a_record_missing_from_the_output_becomes_an_error(local, tmp_path):
    records = lines_of(EXAMPLES / "summarize.jsonl")[:6]
    records[4]["text_inputs"] += " [[drop-output]]"
    result = run_file(local, write(tmp_path, "dropping.jsonl", records), "summarize")
    manifest = result.manifest
    assert manifest["status"] == "PARTIAL"
    assert manifest["counts"]["succeeded"] == 5 and manifest["counts"]["failed"] == 1
    errors = read_lines(local.output_bucket, run_folder(local, result).errors_key)
    assert [e["id"] for e in errors] == [4]
    assert "no output" in json.dumps(errors[0]).lower()


def test_a_duplicate_event_starts_no_second_run(local):
    event = upload(local, EXAMPLES / "classify.jsonl", "classify")
    deliver(local, event)
    deliver(local, json.loads(json.dumps(event)))  # the same S3 event delivered twice
    executions = wait_for_executions(local)
    assert len(executions) == 1 and executions[0]["status"] == "SUCCEEDED"


def test_a_failing_step_ends_in_a_failure_manifest_and_a_failed_execution(local):
    with mock.patch("batch_pipeline.results.collect.run_evaluation", side_effect=RuntimeError("scorer exploded")):
        result = run_file(local, EXAMPLES / "summarize.jsonl", "summarize")
    assert result.execution["status"] == "FAILED"
    manifest = result.manifest
    assert manifest["status"] == "FAILED"
    assert manifest["failed_state"] == "Collect and score outputs"
    assert "scorer exploded" in manifest["cause"]


def test_a_rejected_file_starts_no_run_and_keeps_the_original(local):
    path = EXAMPLES / "summarize-with-bad-lines.jsonl"
    result = run_file(local, path, "summarize")
    assert result.execution is None
    assert result.rejection["accepted"] is False
    assert {e["line"] for e in result.rejection["errors"]} >= {2, 3, 4, 5, 6}
    s3 = boto3.client("s3", region_name=REGION)
    original = s3.get_object(Bucket=local.input_bucket, Key="summarize/summarize-with-bad-lines.jsonl")["Body"].read()
    assert original == path.read_bytes()


@pytest.fixture(scope="module")
def multi_instance_template():
    import copy

    config = Project.find().context()["batch-pipeline"]
    config = copy.deepcopy(config)
    config["pipelines"]["summarize"]["sagemaker"].update(instance_count=3, shards_per_instance=2)
    return synthesize_template({"batch-pipeline": config})


def test_a_multi_instance_plan_writes_balanced_shards_and_joins_every_record(multi_instance_template, tmp_path):
    base = lines_of(EXAMPLES / "summarize.jsonl")
    records = [dict(record, id=index) for index, record in enumerate(base * 3)]
    with local_aws(template=multi_instance_template) as local:
        result = run_file(local, write(tmp_path, "many.jsonl", records), "summarize")
        s3 = boto3.client("s3", region_name=REGION)
        shards = s3.list_objects_v2(Bucket=local.output_bucket, Prefix=run_folder(local, result).shards_prefix)[
            "Contents"
        ]
        predictions = read_lines(local.output_bucket, run_folder(local, result).predictions_key)
    assert len(shards) >= 6
    assert result.manifest["status"] == "SUCCEEDED"
    assert sorted(p["id"] for p in predictions) == list(range(60))


def test_every_outcome_notifies_the_topic(local, tmp_path):
    sqs = boto3.client("sqs", region_name=REGION)
    sns = boto3.client("sns", region_name=REGION)
    queue = sqs.create_queue(QueueName="run-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(
        TopicArn=local.topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"}
    )
    records = lines_of(EXAMPLES / "summarize.jsonl")[:3]
    failing = [dict(records[0], text_inputs=records[0]["text_inputs"] + " [[fail-job]]")]
    run_file(local, write(tmp_path, "good.jsonl", records), "summarize")
    run_file(local, write(tmp_path, "failing.jsonl", failing), "summarize")
    run_file(local, EXAMPLES / "summarize-with-bad-lines.jsonl", "summarize")
    bodies = []
    while True:
        batch = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            break
        bodies += [m["Body"] for m in batch]
    text = "\n".join(bodies)
    assert len(bodies) == 3, bodies
    assert "ended SUCCEEDED" in text and "ended FAILED" in text and "ended rejected" in text
    assert "rouge1" in text and "manifest: s3://" in text
