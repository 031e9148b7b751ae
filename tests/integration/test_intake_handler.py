"""The intake Lambda under moto: real S3 event shapes, a versioned bucket, a real (Pass) state machine."""

from __future__ import annotations

import json

import boto3
import orjson
import pytest
from moto import mock_aws

from batch_pipeline.config.app import load_app_config
from batch_pipeline.config.runtime import dump_runtime_pipelines, runtime_pipelines
from batch_pipeline.intake.service import execution_arn
from tests.fixtures.intake.pipelines import config
from tests.integration.intake_events import REGION, LambdaContext, eventbridge_object_created, s3_notification

INPUT, OUTPUT = "uploads", "results"
PASS_DEFINITION = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})


def lines(*records: dict) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


GOOD = lines(
    *(
        {
            "id": i,
            "text_inputs": f"Briefly summarize: story number {i} " + "word " * (i * 7),
            "reference": f"summary {i}",
        }
        for i in range(1, 11)
    )
)
BAD = lines({"id": 1, "text_inputs": "fine"}, {"id": 2, "text_inputs": "  "}, {"id": 1, "text_inputs": "dup"})


@pytest.fixture
def aws(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=INPUT)
        s3.put_bucket_versioning(Bucket=INPUT, VersioningConfiguration={"Status": "Enabled"})
        s3.create_bucket(Bucket=OUTPUT)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        machine = sfn.create_state_machine(
            name="llm-batch-pipeline", definition=PASS_DEFINITION, roleArn="arn:aws:iam::123456789012:role/workflow"
        )["stateMachineArn"]
        sns = boto3.client("sns", region_name=REGION)
        topic = sns.create_topic(Name="runs")["TopicArn"]
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="notices")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
        pipelines = runtime_pipelines(load_app_config(config()))
        monkeypatch.setenv("PIPELINES", dump_runtime_pipelines(pipelines))
        monkeypatch.setenv("OUTPUT_BUCKET", OUTPUT)
        monkeypatch.setenv("INPUT_BUCKET", INPUT)
        monkeypatch.setenv("STATE_MACHINE_ARN", machine)
        monkeypatch.setenv("TOPIC_ARN", topic)
        from batch_pipeline.handlers import intake

        intake._service.cache_clear()
        yield {"s3": s3, "sfn": sfn, "sqs": sqs, "queue_url": queue_url, "machine": machine, "handler": intake.handler}
        intake._service.cache_clear()


def put(aws, key: str, body: bytes) -> dict:
    aws["s3"].put_object(Bucket=INPUT, Key=key, Body=body)
    return aws["s3"].head_object(Bucket=INPUT, Key=key)


def invoke(aws, event: dict) -> list[dict]:
    return aws["handler"](event, LambdaContext())["results"]


def executions(aws) -> list[dict]:
    return aws["sfn"].list_executions(stateMachineArn=aws["machine"])["executions"]


def notices(aws) -> list[str]:
    messages = aws["sqs"].receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10).get("Messages", [])
    return [m["Body"] for m in messages]


def read(aws, key: str) -> bytes:
    return aws["s3"].get_object(Bucket=OUTPUT, Key=key)["Body"].read()


def test_accepted_upload_writes_the_run_folder_and_starts_one_execution(aws):
    head = put(aws, "t2t/cnn sample.jsonl", GOOD)
    [result] = invoke(aws, s3_notification(INPUT, "t2t/cnn sample.jsonl", head))

    assert result["status"] == "started"
    run_id = result["run_id"]
    assert run_id.startswith("cnn-sample-")
    [execution] = executions(aws)
    assert execution["name"] == run_id
    assert execution["executionArn"] == execution_arn(aws["machine"], run_id)
    execution_input = json.loads(aws["sfn"].describe_execution(executionArn=execution["executionArn"])["input"])
    assert set(execution_input) == {"run", "plan"}
    run_input = execution_input["run"]
    prefix = f"runs/t2t/{run_id}/"
    assert run_input["run_prefix"] == prefix
    assert run_input["input"] == {
        "bucket": INPUT,
        "key": "t2t/cnn sample.jsonl",
        "version_id": head["VersionId"],
        "etag": head["ETag"].strip('"'),
        "size": len(GOOD),
    }
    assert run_input["counts"] == {"total": 10, "valid": 10, "rejected": 0}
    assert run_input["output_bucket"] == OUTPUT and run_input["backend"] == "sagemaker"
    assert run_input["ids_assigned"] is False
    assert len(json.dumps(execution_input)) < 32 * 1024
    # The plan travels in the execution input as references; the planned job itself is in the run's jobs/ folder.
    assert execution_input["plan"] == {"backend": "sagemaker", "count": 1, "jobs": [{"index": 0}]}
    job = json.loads(read(aws, prefix + "jobs/0.json"))
    assert job["input_uri"] == f"s3://{OUTPUT}/{prefix}shards/" and job["records"] == 10
    assert job["shard_keys"] == [prefix + "shards/part-00000.jsonl", prefix + "shards/part-00001.jsonl"]

    report = json.loads(read(aws, prefix + "intake.json"))
    assert report["accepted"] is True and report["run_id"] == run_id
    # The test pipeline has 2 instances: at least one shard each, and together exactly the valid records.
    assert [s["key"] for s in report["shards"]] == [
        prefix + "shards/part-00000.jsonl",
        prefix + "shards/part-00001.jsonl",
    ]
    shard_lines = [line for s in report["shards"] for line in read(aws, s["key"]).splitlines()]
    assert sorted(orjson.loads(line)["id"] for line in shard_lines) == list(range(1, 11))
    assert all("reference" not in orjson.loads(line) for line in shard_lines)
    references = [orjson.loads(line) for line in read(aws, prefix + "references.jsonl").splitlines()]
    assert {r["id"]: r["reference"] for r in references} == {i: f"summary {i}" for i in range(1, 11)}
    tags = aws["s3"].get_object_tagging(Bucket=OUTPUT, Key=prefix + "shards/part-00000.jsonl")["TagSet"]
    assert {"Key": "batch-pipeline:intermediate", "Value": "true"} in tags
    assert notices(aws) == []


def test_the_same_event_twice_starts_one_run(aws):
    head = put(aws, "t2t/twice.jsonl", GOOD)
    event = s3_notification(INPUT, "t2t/twice.jsonl", head)
    [first] = invoke(aws, event)
    [second] = invoke(aws, event)
    assert first["status"] == "started"
    assert second["status"] == "duplicate" and second["run_id"] == first["run_id"]
    assert len(executions(aws)) == 1


def test_eventbridge_event_and_s3_notification_for_one_upload_start_one_run(aws):
    head = put(aws, "t2t/both.jsonl", GOOD)
    [first] = invoke(aws, eventbridge_object_created(INPUT, "t2t/both.jsonl", head))
    [second] = invoke(aws, s3_notification(INPUT, "t2t/both.jsonl", head))
    assert (first["status"], second["status"]) == ("started", "duplicate")
    assert len(executions(aws)) == 1


def test_a_new_version_of_the_same_key_is_a_new_run(aws):
    first = invoke(aws, s3_notification(INPUT, "t2t/daily.jsonl", put(aws, "t2t/daily.jsonl", GOOD)))[0]
    second = invoke(aws, s3_notification(INPUT, "t2t/daily.jsonl", put(aws, "t2t/daily.jsonl", GOOD)))[0]
    assert first["status"] == second["status"] == "started"
    assert first["run_id"] != second["run_id"]
    assert len(executions(aws)) == 2


def test_rejected_upload_is_quarantined_with_its_report_and_starts_nothing(aws):
    head = put(aws, "t2t/bad file.jsonl", BAD)
    [result] = invoke(aws, s3_notification(INPUT, "t2t/bad file.jsonl", head))

    assert result["status"] == "rejected"
    prefix = f"rejected/t2t/{result['run_id']}/"
    assert read(aws, prefix + "bad file.jsonl") == BAD
    report = json.loads(read(aws, prefix + "bad file.jsonl.report.json"))
    assert report["accepted"] is False
    assert [(e["line"], e["code"]) for e in report["errors"]] == [(2, "blank_text"), (3, "duplicate_id")]
    assert report["counts_by_reason"] == {"blank_text": 1, "duplicate_id": 1}
    assert report["counts"] == {"total": 3, "valid": 1, "rejected": 2, "skipped": 0}
    assert report["input"]["version_id"] == head["VersionId"]
    # The original is untouched, no run folder, no execution; one notification naming the lines.
    original = aws["s3"].get_object(Bucket=INPUT, Key="t2t/bad file.jsonl")
    assert original["VersionId"] == head["VersionId"] and original["Body"].read() == BAD
    assert aws["s3"].list_objects_v2(Bucket=OUTPUT, Prefix="runs/")["KeyCount"] == 0
    assert executions(aws) == []
    [notice] = notices(aws)
    assert "rejected" in notice and "line 2" in notice and "line 3" in notice

    # A replayed event neither copies nor notifies again.
    [again] = invoke(aws, s3_notification(INPUT, "t2t/bad file.jsonl", head))
    assert again["status"] == "duplicate"
    assert notices(aws) == []


def test_gzip_upload_is_rejected_with_a_reason_not_a_crash(aws):
    import gzip

    head = put(aws, "t2t/packed.jsonl", gzip.compress(GOOD))
    [result] = invoke(aws, s3_notification(INPUT, "t2t/packed.jsonl", head))
    assert result["status"] == "rejected"
    assert "gzip" in result["reason"]


def test_unknown_pipeline_is_reported_not_crashed(aws):
    head = put(aws, "nosuch/file.jsonl", GOOD)
    [result] = invoke(aws, s3_notification(INPUT, "nosuch/file.jsonl", head))
    assert result["status"] == "unknown_pipeline"
    assert "'nosuch'" in result["reason"] and "t2t" in result["reason"]
    assert executions(aws) == []
    [notice] = notices(aws)
    assert "nosuch/file.jsonl" in notice


def test_other_event_names_are_ignored(aws):
    head = put(aws, "t2t/x.jsonl", GOOD)
    assert invoke(aws, s3_notification(INPUT, "t2t/x.jsonl", head, event_name="ObjectRemoved:Delete")) == []
    assert executions(aws) == []


def test_bedrock_upload_writes_one_file_per_job(aws):
    body = lines(
        *(
            {
                "recordId": f"CALL{i:07d}",
                "modelInput": {
                    "anthropic_version": "bedrock-2023-05-31",
                    "max_tokens": 50,
                    "messages": [{"role": "user", "content": f"Summarize call {i}"}],
                },
            }
            for i in range(10)
        )
    )
    head = put(aws, "claude/calls.jsonl", body)
    [result] = invoke(aws, s3_notification(INPUT, "claude/calls.jsonl", head))
    assert result["status"] == "started"
    report = json.loads(read(aws, f"runs/claude/{result['run_id']}/intake.json"))
    # 10 records, 2..4 per job: three jobs of 3-4 records, none under the minimum.
    assert [s["records"] for s in report["shards"]] == [3, 4, 3]
    assert [s["name"] for s in report["shards"]] == ["job-00000.jsonl", "job-00001.jsonl", "job-00002.jsonl"]
    assert report["route"] == "batch"
    first = orjson.loads(read(aws, report["shards"][0]["key"]).splitlines()[0])
    assert set(first) == {"recordId", "modelInput"}
    [execution] = executions(aws)
    plan = json.loads(aws["sfn"].describe_execution(executionArn=execution["executionArn"])["input"])["plan"]
    assert plan == {"backend": "bedrock", "count": 3, "jobs": [{"index": 0}, {"index": 1}, {"index": 2}]}
    jobs = [json.loads(read(aws, f"runs/claude/{result['run_id']}/jobs/{i}.json")) for i in range(3)]
    assert [(job["records"], job["route"]) for job in jobs] == [(3, "batch"), (4, "batch"), (3, "batch")]
    assert [job["shard_keys"] for job in jobs] == [[s["key"]] for s in report["shards"]]


def test_hostile_rejection_writes_a_bounded_report_and_notification(aws):
    """A 300 KB value, a 400 KB id used twice, a deeply nested line and a long file name: rejected, not crashed."""
    big_id = "i" * 400_000
    body = (
        lines(
            {"id": big_id, "text_inputs": "a"},
            {"id": big_id, "text_inputs": "b"},
            {"id": 3, "text_inputs": "c", "z" * 300_000: 1},
        )
        + b'{"id": 4, "text_inputs": "d", "x": '
        + b"[" * 1000
        + b"]" * 1000
        + b"}\n"
    )
    key = "t2t/" + "n" * 1100 + ".jsonl"
    head = put(aws, key, body)
    [result] = invoke(aws, s3_notification(INPUT, key, head))
    assert result["status"] == "rejected"
    report_key = result["report_key"]
    assert len(report_key.encode()) <= 1024
    report = json.loads(read(aws, report_key))
    assert [(e["line"], e["code"]) for e in report["errors"]] == [
        (2, "duplicate_id"),
        (3, "unknown_field"),
        (4, "nested_too_deep"),
    ]
    assert len(json.dumps(report["errors"])) < 5_000
    copy_key = report_key[: -len(".report.json")]
    assert read(aws, copy_key) == body and report["rejected_copy"].endswith(copy_key)
    [notice] = notices(aws)
    assert len(notice.encode()) < 262_144 and "line 4" in notice
