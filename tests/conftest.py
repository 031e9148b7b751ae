"""Hermetic by default: fake credentials, a fixed region, no Node end-of-life banner; run in the project folder."""

import os
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_METRICS_NAMESPACE": "LlmBatchPipelineTests",
    }
)
os.environ.pop("AWS_PROFILE", None)
# The CLI and local mode find the project (cdk.json) from the current folder, as when a user runs them; the tests
# run in this checkout's folder wherever pytest was started.
os.chdir(Path(__file__).resolve().parents[1])


@pytest.fixture
def s3(request):
    """moto S3 with the test module's BUCKET created: the one set-up the S3 adapter tests share."""
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=request.module.BUCKET)
        yield client
