"""Event-driven completion in local mode: the emulators' job-state events (Bedrock "Batch Inference Job State Change",
SageMaker "SageMaker Transform Job State Change") resume the run through the template's EventBridge rules; a lost
event still completes through the backstop; a handler that raises on an event fails the run's caller."""

from __future__ import annotations

import os
from unittest import mock

import pytest

from batch_pipeline_local.emulator.events import EventDeliveryError
from batch_pipeline_local.emulator.run import run_file
from batch_pipeline_local.emulator.session import local_aws
from batch_pipeline_local.engines.sagemaker_transform import active_sagemaker_engine
from tests.e2e.test_bedrock_runs import transcript
from tests.e2e.test_faults import entered, history
from tests.e2e.test_local_runs import EXAMPLES, lines_of, write


def records(n: int) -> list[dict]:
    return [transcript(i) for i in range(n)]


def resumed_by_event(local) -> list[str]:
    """The job names the event handler was invoked for (by the local EventBridge, from the template's rule)."""
    return [
        i.event["detail"]["batchJobName"]
        for i in local.invocations
        if "JobEvents" in i.function and isinstance(i.event, dict) and i.event.get("source") == "aws.bedrock"
    ]


def test_a_batch_job_resumes_its_run_through_its_end_event(template, tmp_path):
    with local_aws(template=template) as local:
        result = run_file(local, write(tmp_path, "events.jsonl", records(100)), "bedrock-summarize")
        delivered = resumed_by_event(local)
        states = entered(result)
    assert result.manifest["status"] == "SUCCEEDED"
    assert len(delivered) >= 1  # the rule matched the terminal event and ran the handler
    assert "No job event: check the job" not in states  # no backstop was needed


@pytest.mark.not_event_driven("every event is lost: the backstop ends the wait")
def test_a_lost_event_still_completes_through_the_backstop(template, tmp_path):
    # Every event is lost; a 2-second backstop (JOB_BACKSTOP_SECONDS, the template's default is an hour) checks the job.
    # A one-second job clock keeps the job running past the first wait even on a loaded machine: with the default
    # 0.05 s the job could end before "Wait for job to end" began, which then resumes at once and never times out.
    with (
        mock.patch.dict(os.environ, {"JOB_BACKSTOP_SECONDS": "2"}),
        local_aws(template=template, bedrock_options={"lose_events": 10_000, "tick_seconds": 1.0}) as local,
    ):
        result = run_file(local, write(tmp_path, "lost.jsonl", records(100)), "bedrock-summarize")
        delivered = resumed_by_event(local)
        states, events = entered(result), history(result)
    assert result.manifest["status"] == "SUCCEEDED" and result.manifest["counts"]["succeeded"] == 100
    assert delivered == []
    assert "No job event: check the job" in states
    timed_out = [e for e in events if e["type"] == "TaskTimedOut"]
    assert timed_out, "the wait ended by its timeout, not by an event"


@pytest.mark.parametrize(
    ("pipeline", "source"),
    [("summarize", "aws.sagemaker"), ("classify", "aws.sagemaker"), ("bedrock-summarize", "aws.bedrock")],
)
def test_every_pipelines_jobs_resume_their_run_through_their_end_events(template, pipeline, source):
    # The demo's sample files (make demo runs these, the same way).
    with local_aws(template=template) as local:
        result = run_file(local, EXAMPLES / f"{pipeline}.jsonl", pipeline)
        states = entered(result)
        waits = states.count("Wait for job to end")
    jobs = [job["name"] for job in result.manifest["jobs"]]
    assert result.manifest["status"] == "SUCCEEDED" and jobs
    # Each job's wait was resumed once, by its own backend's event, and the backstop never fired.
    assert result.resumed_by_event == {source: jobs}
    assert "No job event: check the job" not in states
    # One wait slept until the event; the next one checked the job and found it ended.
    assert waits == 2 * len(jobs)


def test_a_transform_jobs_events_mirror_describe_transform_job_and_only_ended_ones_are_delivered(template, tmp_path):
    records_ = lines_of(EXAMPLES / "summarize.jsonl")
    records_[1]["text_inputs"] += " [[fail-job]]"
    with local_aws(template=template) as local:
        result = run_file(local, write(tmp_path, "fails.jsonl", records_), "summarize")
        emitted = list(active_sagemaker_engine().events_emitted)
        delivered = [(rule, event["detail"]["TransformJobStatus"]) for rule, event, _ in local.event_bus.delivered]
    (job,) = result.manifest["jobs"]
    assert result.manifest["status"] == "FAILED" and job["status"] == "Failed"
    assert [e["detail"]["TransformJobStatus"] for e in emitted] == ["InProgress", "Failed"]
    started, ended = emitted
    for event in emitted:
        assert event["source"] == "aws.sagemaker" and event["detail-type"] == "SageMaker Transform Job State Change"
        assert event["resources"] == [job["arn"]] and event["detail"]["TransformJobArn"] == job["arn"]
        assert event["detail"]["TransformJobName"] == job["name"] and event["detail"]["ModelName"]
        assert isinstance(event["detail"]["CreationTime"], int)  # epoch milliseconds, as in SageMaker's events
    assert "FailureReason" not in started["detail"] and "TransformEndTime" not in started["detail"]
    assert ended["detail"]["FailureReason"] == job["failure_reason"] and "[[fail-job]]" in job["failure_reason"]
    # The template's rule (ended states of this stack's jobs) decides: InProgress was emitted, not delivered.
    assert [status for _, status in delivered] == ["Failed"]
    assert result.resumed_by_event == {"aws.sagemaker": [job["name"]]}


@pytest.mark.not_event_driven("the event handler raises: the run never resumes")
def test_an_event_handler_that_raises_fails_the_caller_with_its_traceback(template):
    expected = "(?s)SageMaker Transform Job State Change.*Completed.*token store down"
    with (
        local_aws(template=template) as local,
        mock.patch("batch_pipeline.jobs.tokens.load_token", side_effect=RuntimeError("token store down")),
        pytest.raises(EventDeliveryError, match=expected),
    ):
        run_file(local, EXAMPLES / "summarize.jsonl", "summarize", timeout=60)
