"""batch-pipeline recollect against AWS: the stack's functions are found by handler and invoked, errors surface."""

from __future__ import annotations

import io
import json

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from batch_pipeline.config.app import ConfigError
from batch_pipeline_local.cli.recollect import RecollectError, aws_invoker, run_folder


class FakeSession:
    def __init__(self):
        self.clients = {
            name: boto3.client(name, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
            for name in ("cloudformation", "lambda")
        }
        self.stubs = {name: Stubber(client) for name, client in self.clients.items()}

    def client(self, name):
        return self.clients[name]


def body(payload) -> StreamingBody:
    raw = json.dumps(payload).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


def test_the_deployed_function_running_a_handler_is_invoked_and_its_error_is_reported():
    session = FakeSession()
    cfn, lam = session.stubs["cloudformation"], session.stubs["lambda"]
    cfn.add_response(
        "list_stack_resources",
        {
            "StackResourceSummaries": [
                {
                    "LogicalResourceId": "Collect",
                    "PhysicalResourceId": "stack-Collect-1",
                    "ResourceType": "AWS::Lambda::Function",
                    "LastUpdatedTimestamp": "2026-01-01T00:00:00Z",
                    "ResourceStatus": "CREATE_COMPLETE",
                },
                {
                    "LogicalResourceId": "Topic",
                    "PhysicalResourceId": "arn:topic",
                    "ResourceType": "AWS::SNS::Topic",
                    "LastUpdatedTimestamp": "2026-01-01T00:00:00Z",
                    "ResourceStatus": "CREATE_COMPLETE",
                },
            ]
        },
        {"StackName": "LlmBatchPipeline"},
    )
    lam.add_response(
        "get_function_configuration",
        {"Handler": "batch_pipeline.handlers.collect.handler"},
        {"FunctionName": "stack-Collect-1"},
    )
    lam.add_response(
        "invoke",
        {"StatusCode": 200, "Payload": body({"processed": 3})},
        {"FunctionName": "stack-Collect-1", "Payload": json.dumps({"run": {}}).encode()},
    )
    lam.add_response(
        "invoke",
        {
            "StatusCode": 200,
            "FunctionError": "Unhandled",
            "Payload": body({"errorType": "KeyError", "errorMessage": "shards"}),
        },
        {"FunctionName": "stack-Collect-1", "Payload": json.dumps({"run": {}}).encode()},
    )
    with cfn, lam:
        invoke = aws_invoker("LlmBatchPipeline", session)
        assert invoke("batch_pipeline.handlers.collect.handler", {"run": {}}) == {"processed": 3}
        with pytest.raises(RecollectError, match="KeyError: shards"):
            invoke("batch_pipeline.handlers.collect.handler", {"run": {}})
        with pytest.raises(ConfigError, match="no function running"):
            invoke("batch_pipeline.handlers.nowhere.handler", {})


@pytest.mark.parametrize("uri", ["runs/p/r/", "s3://bucket", "s3:///runs/"])
def test_run_prefix_must_be_an_s3_run_folder(uri):
    with pytest.raises(ConfigError, match="RUN_PREFIX"):
        run_folder(uri)


def test_run_folder_gets_its_trailing_slash():
    assert run_folder("s3://b/runs/p/r") == ("b", "runs/p/r/")
