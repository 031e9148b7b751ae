"""Token objects live as long as a wait needs them: job control's wait writes `job-tokens/<job name>.json` for the
job-state event handler, and deletes it once the job it waited on ended; the lifecycle rule (stacks/storage.py,
tests/infrastructure/test_job_token_lifecycle.py) expires what a failed run leaves behind."""

from __future__ import annotations

import json

import pytest

from batch_pipeline.contracts import Job, JobState
from batch_pipeline.handlers import job_control
from batch_pipeline.jobs.backends import BatchBackend
from batch_pipeline.storage.job_store import load_token, save_job
from batch_pipeline.storage.layout import RunFolder, token_key
from tests.integration.sagemaker_helpers import LambdaContext

BUCKET = "out"
RUN = {"run_id": "r-1", "pipeline": "p", "output_bucket": BUCKET, "run_prefix": "runs/p/r-1/"}
FOLDER = RunFolder.of(RUN)
NAME = "llmbp-r-1-0"


class Scripted(BatchBackend):
    """Answers each status check with the next scripted status; `retry` makes an ended job start a retry of its
    failed records (a queued job of its own name), as Bedrock's retry_failed_records does."""

    name = "scripted"

    def __init__(self, statuses: list[str], retry: bool = False) -> None:
        self.statuses, self.retry = list(statuses), retry

    def job_name(self, folder, job):
        return job.name or NAME

    def submit(self, folder, job):
        raise AssertionError("not submitted in these tests")

    def status(self, folder, job):
        status = self.statuses.pop(0)
        state = {"InProgress": "running", "Completed": "succeeded"}[status]
        return JobState(name=job.name, arn=f"arn:{job.name}", status=status, state=state)

    def stop(self, folder, job):
        raise AssertionError("not stopped in these tests")

    def raw_outputs(self, folder, job):
        return []

    def finish(self, folder, job):
        if not self.retry:
            return job
        return job.with_state(JobState(name=f"{NAME}r", arn=None, status="NotSubmitted", state="queued"))


class StepFunctions:
    def __init__(self) -> None:
        self.resumed: list[str] = []

    def send_task_success(self, *, taskToken, output):
        json.loads(output)
        self.resumed.append(taskToken)


@pytest.fixture
def wait(s3, monkeypatch):
    """Run job control's wait step for the run's job 0 against `backend`; returns the step's result."""
    sfn = StepFunctions()
    monkeypatch.setattr("batch_pipeline.settings.client", lambda service: {"s3": s3, "stepfunctions": sfn}[service])
    monkeypatch.setenv("POLL_JITTER", "0")
    deleted: list[str] = []
    real_delete = s3.delete_object

    def counting_delete(**kwargs):
        deleted.append(kwargs["Key"])
        return real_delete(**kwargs)

    monkeypatch.setattr(s3, "delete_object", counting_delete)

    def run(backend: BatchBackend, token: str) -> dict:
        monkeypatch.setattr(job_control, "backend_for_run", lambda folder: backend)
        event = {"action": "wait", "run": RUN, "job": {"index": 0}, "attempt": 1, "task_token": token}
        return job_control.handler(event, LambdaContext())

    run.sfn, run.deleted = sfn, deleted  # type: ignore[attr-defined]
    return run


def running_job(s3) -> None:
    save_job(s3, FOLDER, Job(index=0, name=NAME, arn=f"arn:{NAME}", state="running", done=False))


def test_a_waiting_job_keeps_its_token_and_an_ended_one_has_it_deleted(s3, wait):
    running_job(s3)
    still = wait(Scripted(["InProgress"]), "token-1")
    assert not still["job"]["done"] and wait.sfn.resumed == []
    assert load_token(s3, BUCKET, NAME)["task_token"] == "token-1"  # where the event handler looks
    ended = wait(Scripted(["Completed"]), "token-2")
    assert ended["job"]["done"] and wait.sfn.resumed == ["token-2"]
    assert load_token(s3, BUCKET, NAME) is None
    assert wait.deleted == [token_key(NAME)]


def test_a_job_followed_by_a_retry_has_its_own_token_deleted_and_the_retry_none_yet(s3, wait):
    running_job(s3)
    retry = wait(Scripted(["Completed"], retry=True), "token-1")
    assert retry["job"]["state"] == "queued" and retry["job"]["name"] == f"{NAME}r" and wait.sfn.resumed == ["token-1"]
    assert load_token(s3, BUCKET, NAME) is None and load_token(s3, BUCKET, f"{NAME}r") is None
    assert wait.deleted == [token_key(NAME)]


def test_a_queued_job_leaves_no_token_and_deletes_none(s3, wait):
    save_job(s3, FOLDER, Job(index=0, name=NAME, arn=None, state="queued", done=False))

    class Refusing(Scripted):
        def submit(self, folder, job):
            from batch_pipeline.jobs.backends import SubmitDeferred

            raise SubmitDeferred("ThrottlingException: later")

    step = wait(Refusing([]), "token-1")
    assert step["job"]["state"] == "queued" and wait.sfn.resumed == ["token-1"]
    assert wait.deleted == [] and load_token(s3, BUCKET, NAME) is None


def test_without_the_delete_an_ended_jobs_token_would_stay(s3, wait, monkeypatch):
    """Planted defect: the wait step no longer deletes; the first test's check then fails."""
    monkeypatch.setattr("batch_pipeline.jobs.loop.delete_token", lambda *args: None)
    running_job(s3)
    wait(Scripted(["Completed"]), "token-1")
    assert load_token(s3, BUCKET, NAME) is not None
