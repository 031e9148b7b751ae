"""S3 adapters under moto: streaming reads, multipart shard uploads, and start_execution races."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from batch_pipeline.config.app import load_app_config
from batch_pipeline.config.runtime import runtime_pipelines
from batch_pipeline.intake.service import IntakeService, IntakeSettings, execution_arn
from batch_pipeline.storage.s3io import MIB, S3RunSink, iter_object_chunks
from tests.fixtures.intake.pipelines import config


@pytest.fixture
def s3(monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="results")
        yield client


def test_big_shard_goes_up_as_a_multipart_upload_from_a_file_range(s3, tmp_path):
    path = tmp_path / "spill.jsonl"
    data = bytes(range(256)) * (48 * 1024)  # 12 MiB
    path.write_bytes(b"HEAD" + data + b"TAIL")
    sink = S3RunSink(s3, "results", "runs/p/r/", part_size=5 * MIB, intermediate_tagging="k=v")
    sink.put_file("shards/part-00000.jsonl", str(path), 4, 4 + len(data), intermediate=True)
    stored = s3.get_object(Bucket="results", Key="runs/p/r/shards/part-00000.jsonl")
    assert stored["ETag"].strip('"').endswith("-3")  # 5 + 5 + 2 MiB
    assert stored["Body"].read() == data
    assert s3.get_object_tagging(Bucket="results", Key="runs/p/r/shards/part-00000.jsonl")["TagSet"] == [
        {"Key": "k", "Value": "v"}
    ]
    assert path.exists()


def test_object_is_streamed_in_chunks(s3):
    s3.put_object(Bucket="results", Key="in.jsonl", Body=b"x" * (3 * MIB + 5))
    chunks = list(iter_object_chunks(s3, "results", "in.jsonl", chunk_size=MIB))
    assert [len(c) for c in chunks] == [MIB, MIB, MIB, 5]


class _RacingStepFunctions:
    """Says no execution exists, then refuses the start: another invocation won the race."""

    def describe_execution(self, executionArn):
        raise ClientError({"Error": {"Code": "ExecutionDoesNotExist", "Message": "no"}}, "DescribeExecution")

    def start_execution(self, **request):
        raise ClientError({"Error": {"Code": "ExecutionAlreadyExists", "Message": "exists"}}, "StartExecution")


def test_execution_already_exists_is_a_duplicate_not_an_error(s3):
    s3.create_bucket(Bucket="uploads")
    s3.put_object(Bucket="uploads", Key="t2t/a.jsonl", Body=b'{"id": 1, "text_inputs": "a"}\n')
    machine = "arn:aws:states:us-east-1:123456789012:stateMachine:flow"
    settings = IntakeSettings(runtime_pipelines(load_app_config(config())), "results", machine)
    result = IntakeService(s3, _RacingStepFunctions(), None, settings).process("uploads", "t2t/a.jsonl")
    assert result["status"] == "duplicate"
    assert result["execution_arn"] == execution_arn(machine, result["run_id"])
    assert execution_arn(machine, "run-1") == "arn:aws:states:us-east-1:123456789012:execution:flow:run-1"
