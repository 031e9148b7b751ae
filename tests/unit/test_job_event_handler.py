"""The job-state event handler: terminal events resume the waiting run once; everything else is ignored."""

from __future__ import annotations

import json
from unittest import mock

import pytest
from botocore.exceptions import ClientError

from batch_pipeline.handlers import job_events
from batch_pipeline.storage.job_store import save_token
from batch_pipeline_local.emulator.events import UnsupportedPattern, matches

BUCKET = "out"
STEP = {
    "run": {"run_id": "r", "pipeline": "p", "output_bucket": BUCKET, "run_prefix": "runs/p/r/"},
    "job": {"index": 0, "name": "llmbp-r-0", "state": "running", "done": False},
    "attempt": 2,
    "backstop_seconds": 3600,
}


def bedrock_event(name: str, status: str) -> dict:
    # The envelope and detail fields of Bedrock's "Batch Inference Job State Change" sample event
    # (https://docs.aws.amazon.com/bedrock/latest/userguide/monitoring-eventbridge-how-it-works.html).
    return {
        "version": "0",
        "id": "e",
        "detail-type": "Batch Inference Job State Change",
        "source": "aws.bedrock",
        "account": "123456789012",
        "time": "2026-12-01T22:00:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/{name}"],
        "detail": {
            "version": "0.0",
            "batchJobName": name,
            "status": status,
            "batchJobArn": "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/x",
        },
    }


def sagemaker_event(name: str, status: str) -> dict:
    return {
        "version": "0",
        "id": "e",
        "detail-type": "SageMaker Transform Job State Change",
        "source": "aws.sagemaker",
        "detail": {"TransformJobName": name, "TransformJobStatus": status},
    }


class StepFunctions:
    """SendTaskSuccess as Step Functions answers it: the first call resumes, any later one finds the token spent."""

    def __init__(self):
        self.sent: list[dict] = []

    def send_task_success(self, *, taskToken, output):
        if any(call["taskToken"] == taskToken for call in self.sent):
            raise ClientError({"Error": {"Code": "TaskTimedOut", "Message": "Task Timed Out"}}, "SendTaskSuccess")
        self.sent.append({"taskToken": taskToken, "output": json.loads(output)})


@pytest.fixture
def sfn():
    fake = StepFunctions()
    with mock.patch("batch_pipeline.settings.client", return_value=fake):
        yield fake


@pytest.mark.parametrize("event", [bedrock_event("llmbp-r-0", "Completed"), sagemaker_event("llmbp-r-0", "Failed")])
def test_a_terminal_event_resumes_the_waiting_iteration_with_its_own_state(s3, sfn, event):
    save_token(s3, BUCKET, "llmbp-r-0", "token-1", STEP)
    assert job_events.handle(event, s3, BUCKET)["outcome"] == "resumed"
    (sent,) = sfn.sent
    assert sent["taskToken"] == "token-1"
    # The iteration's state, unchanged but for the wake-up note: its next wait checks the job itself.
    assert {k: v for k, v in sent["output"].items() if k != "woken_by"} == STEP


@pytest.mark.parametrize("status", ["Submitted", "Validating", "Scheduled", "InProgress", "Stopping"])
def test_a_non_terminal_event_is_ignored(s3, sfn, status):
    save_token(s3, BUCKET, "llmbp-r-0", "token-1", STEP)
    assert job_events.handle(bedrock_event("llmbp-r-0", status), s3, BUCKET)["outcome"] == "ignored"
    assert sfn.sent == []


def test_an_event_for_a_job_no_run_waits_on_is_ignored(s3, sfn):
    assert job_events.handle(bedrock_event("someone-elses-job", "Completed"), s3, BUCKET)["reason"] == "no waiting run"
    assert job_events.handle({"source": "aws.s3", "detail-type": "Object Created"}, s3, BUCKET)["outcome"] == "ignored"
    assert sfn.sent == []


def test_a_duplicate_event_finds_the_token_spent_and_does_not_fail(s3, sfn):
    save_token(s3, BUCKET, "llmbp-r-0", "token-1", STEP)
    event = bedrock_event("llmbp-r-0", "Completed")
    assert job_events.handle(event, s3, BUCKET)["outcome"] == "resumed"
    assert job_events.handle(event, s3, BUCKET)["outcome"] == "spent"
    assert len(sfn.sent) == 1


def test_any_other_send_error_is_raised_so_eventbridge_retries(s3):
    save_token(s3, BUCKET, "llmbp-r-0", "token-1", STEP)
    failing = mock.Mock()
    failing.send_task_success.side_effect = ClientError(
        {"Error": {"Code": "ThrottlingException", "Message": "slow"}}, "SendTaskSuccess"
    )
    with mock.patch("batch_pipeline.settings.client", return_value=failing), pytest.raises(ClientError):
        job_events.handle(bedrock_event("llmbp-r-0", "Completed"), s3, BUCKET)


# ---- the local EventBridge matcher (batch_pipeline_local.emulator.events), against the pattern subset the rules use

PATTERN = {
    "source": ["aws.bedrock"],
    "detail-type": ["Batch Inference Job State Change"],
    "detail": {"batchJobName": [{"prefix": "llmbp-"}], "status": ["Completed", "Failed"]},
}


def test_the_local_matcher_follows_eventbridge_for_values_prefixes_and_nesting():
    assert matches(PATTERN, bedrock_event("llmbp-r-0", "Completed"))
    assert not matches(PATTERN, bedrock_event("other-r-0", "Completed"))  # prefix
    assert not matches(PATTERN, bedrock_event("llmbp-r-0", "InProgress"))  # value list
    assert not matches(PATTERN, sagemaker_event("llmbp-r-0", "Completed"))  # source
    assert matches({"resources": ["arn:x"]}, {"resources": ["arn:y", "arn:x"]})  # any element of an array


def test_the_local_matcher_refuses_operators_it_cannot_judge():
    with pytest.raises(UnsupportedPattern):
        matches({"detail": {"status": [{"anything-but": "Completed"}]}}, bedrock_event("llmbp-r-0", "Completed"))
