"""The job side of the state contract: one JobState (what a backend reports), one Job (what job control keeps), and
the JSON the state machine and the run's jobs/ folder see unchanged by the typing."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from batch_pipeline.contracts import ENDED, JOB_STATES, Job, JobState

PLANNED = {
    "index": 0,
    "name": "llmbp-r-0",
    "input_uri": "s3://b/runs/p/r/shards/job-00000.jsonl",
    "output_uri": "s3://b/runs/p/r/raw/llmbp-r-0/",
    "records": 12,
    "bytes": 3400,
    "shard_keys": ["runs/p/r/shards/job-00000.jsonl"],
    "route": "batch",
}


def test_a_planned_job_round_trips_as_it_was_written():
    job = Job.model_validate(PLANNED)
    assert job.stored() == PLANNED  # no field the planner did not write appears in jobs/<index>.json
    assert job.state is None and job.done is False


def test_done_is_the_ended_states_and_nothing_else():
    assert set(ENDED) < set(JOB_STATES) and set(JOB_STATES) - set(ENDED) == {"queued", "running"}
    for state in JOB_STATES:
        assert JobState(name="j", arn=None, status="S", state=state).done is (state in ENDED)


def test_a_report_replaces_what_it_says_and_keeps_the_rest():
    running = Job.model_validate(PLANNED).with_state(
        JobState(
            name="llmbp-r-0",
            arn="arn:job",
            status="InProgress",
            state="running",
            output_uri="s3://b/runs/p/r/raw/llmbp-r-0/",
            record_counts={"processedRecordCount": 3},
        )
    )
    running = running.changed(submitted_at=10.0, model_invocations=12)
    ended = running.with_state(JobState(name="llmbp-r-0", arn="arn:job", status="Completed", state="succeeded"))
    stored = ended.stored()
    assert stored["done"] is True and stored["state"] == "succeeded" and stored["status"] == "Completed"
    # What the new report does not say stays: the earlier counts, job control's bookkeeping, the plan.
    assert stored["record_counts"] == {"processedRecordCount": 3} and stored["model_invocations"] == 12
    assert stored["submitted_at"] == 10.0 and stored["records"] == 12
    # What a report always says, it says even when None (as a backend's normalised state always did).
    assert stored["output_uri"] is None and stored["failure_reason"] is None


def test_an_unknown_state_or_a_nameless_report_is_refused():
    with pytest.raises(ValidationError):
        JobState(name="j", arn=None, status="Weird", state="paused")
    with pytest.raises(ValidationError):
        JobState(name="", arn=None, status="Completed", state="succeeded")
    with pytest.raises(ValidationError):
        Job.model_validate(PLANNED | {"route": "on_demand"})  # one route vocabulary: "batch" | "on-demand"
