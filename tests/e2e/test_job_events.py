"""Event-driven completion in local mode: the Bedrock emulator's job-state events resume the run through the
template's EventBridge rule; a lost event still completes through the backstop."""

from __future__ import annotations

import os
from unittest import mock

from batch_pipeline_local.runner import local_aws, run_file
from tests.e2e.test_bedrock_runs import transcript
from tests.e2e.test_faults import entered, history
from tests.e2e.test_local_runs import write


def records(n: int) -> list[dict]:
    return [transcript(i) for i in range(n)]


def resumed_by_event(local) -> list[str]:
    """The job names the event handler was invoked for (by the local EventBridge, from the template's rule)."""
    return [i.event["detail"]["batchJobName"] for i in local.invocations
            if "JobEvents" in i.function and isinstance(i.event, dict) and i.event.get("source") == "aws.bedrock"]


def test_a_batch_job_resumes_its_run_through_its_end_event(template, tmp_path):
    with local_aws(template=template) as local:
        result = run_file(local, write(tmp_path, "events.jsonl", records(100)), "bedrock-summarize")
        delivered = resumed_by_event(local)
        states = entered(result)
    assert result.manifest["status"] == "SUCCEEDED"
    assert len(delivered) >= 1  # the rule matched the terminal event and ran the handler
    assert "No job event: check the job" not in states  # no backstop was needed


def test_a_lost_event_still_completes_through_the_backstop(template, tmp_path):
    # Every event is lost; a 2-second backstop (JOB_BACKSTOP_SECONDS, the template's default is an hour) checks the job.
    # A one-second job clock keeps the job running past the first wait even on a loaded machine: with the default
    # 0.05 s the job could end before "Wait for job to end" began, which then resumes at once and never times out.
    with mock.patch.dict(os.environ, {"JOB_BACKSTOP_SECONDS": "2"}), \
            local_aws(template=template, bedrock_options={"lose_events": 10_000, "tick_seconds": 1.0}) as local:
        result = run_file(local, write(tmp_path, "lost.jsonl", records(100)), "bedrock-summarize")
        delivered = resumed_by_event(local)
        states, events = entered(result), history(result)
    assert result.manifest["status"] == "SUCCEEDED" and result.manifest["counts"]["succeeded"] == 100
    assert delivered == []
    assert "No job event: check the job" in states
    timed_out = [e for e in events if e["type"] == "TaskTimedOut"]
    assert timed_out, "the wait ended by its timeout, not by an event"
