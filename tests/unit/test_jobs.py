import pytest

from batch_pipeline.contracts import JobState
from batch_pipeline.jobs.backends import BatchBackend, SubmitDeferred
from batch_pipeline.jobs.loop import backoff_seconds
from batch_pipeline.storage.layout import RunFolder
from tests.job_steps import check_job, submit_job

RUN = {"run_id": "r-1", "pipeline": "summarize", "output_bucket": "b"}
FOLDER = RunFolder.of(RUN)


@pytest.fixture(autouse=True)
def _poll_env(monkeypatch):
    for name in ("POLL_INITIAL_SECONDS", "POLL_MAX_SECONDS", "POLL_JITTER", "JOB_QUEUE_TIMEOUT_HOURS"):
        monkeypatch.delenv(name, raising=False)


# ---------------------------------------------------------------- backoff


def test_backoff_doubles_from_30_seconds_and_caps_at_600_without_jitter():
    assert [backoff_seconds(a, jitter=0) for a in range(8)] == [30, 60, 120, 240, 480, 600, 600, 600]


def test_backoff_jitter_stays_within_its_fraction_and_is_reproducible_with_a_seed():
    for attempt in range(10):
        full = min(600, 30 * 2**attempt)
        waits = {backoff_seconds(attempt, seed=f"job-{n}") for n in range(50)}
        assert all(round(full * 0.8) <= w <= full for w in waits)
        assert len(waits) > 1  # jobs spread their polls
        assert backoff_seconds(attempt, seed="job-a") == backoff_seconds(attempt, seed="job-a")


def test_backoff_reads_environment_and_survives_huge_attempts(monkeypatch):
    monkeypatch.setenv("POLL_INITIAL_SECONDS", "2")
    monkeypatch.setenv("POLL_MAX_SECONDS", "5")
    monkeypatch.setenv("POLL_JITTER", "0")
    assert [backoff_seconds(a) for a in (0, 1, 2, 10_000)] == [2, 4, 5, 5]
    monkeypatch.setenv("POLL_INITIAL_SECONDS", "0")
    assert backoff_seconds(3) == 0  # local mode: no real waiting
    monkeypatch.setenv("POLL_MAX_SECONDS", "soon")
    with pytest.raises(ValueError, match="POLL_MAX_SECONDS"):
        backoff_seconds(1)


def test_backoff_is_an_integer_for_the_wait_state():
    assert all(isinstance(backoff_seconds(a, seed="x"), int) for a in range(12))


# ---------------------------------------------------------------- a scripted backend


class ScriptedBackend(BatchBackend):
    """Answers status() from a list of backend statuses; records what job control asked."""

    name = "scripted"
    STATES = {
        "InProgress": "running",
        "Stopping": "running",
        "Completed": "succeeded",
        "Failed": "failed",
        "Stopped": "stopped",
        "PartiallyCompleted": "partial",
    }

    def __init__(self, statuses=(), refusals=0, limit=None):
        self.statuses = list(statuses)
        self.refusals = refusals
        self.limit = limit
        self.calls = []

    def job_name(self, folder, job):
        return job.name or f"job-{job.index}"

    def _state(self, job, status, reason=None):
        return JobState(
            name=self.job_name(FOLDER, job),
            arn=f"arn:{self.job_name(FOLDER, job)}",
            status=status,
            state=self.STATES[status],
            failure_reason=reason,
            output_uri="s3://b/raw/",
        )

    def submit(self, folder, job):
        self.calls.append("submit")
        if self.refusals:
            self.refusals -= 1
            raise SubmitDeferred("ThrottlingException: slow down")
        return self._state(job, "InProgress")

    def status(self, folder, job):
        self.calls.append("status")
        status = self.statuses.pop(0)
        reason = "ClientError: out of memory" if status == "Failed" else None
        return self._state(job, status, reason)

    def stop(self, folder, job):
        self.calls.append("stop")
        return self._state(job, "Stopping")

    def raw_outputs(self, folder, job):
        return []

    @property
    def max_runtime_seconds(self):
        return self.limit


def _loop(backend, job, clock, max_steps=20):
    """What the state machine does: submit, then check until done; returns every step's output."""
    steps = [submit_job({"run": RUN, "job": job, "attempt": 0}, backend, FOLDER, now=clock)]
    while not steps[-1]["job"]["done"] and len(steps) < max_steps:
        last = steps[-1]
        steps.append(
            check_job({"run": RUN, "job": last["job"], "attempt": last["attempt"]}, backend, FOLDER, now=clock)
        )
    return steps


def test_loop_polls_until_completed_with_growing_waits_and_keeps_the_job_spec(monkeypatch):
    monkeypatch.setenv("POLL_JITTER", "0")
    backend = ScriptedBackend(["InProgress", "InProgress", "Completed"])
    steps = _loop(backend, {"index": 0, "records": 12, "shard_keys": ["k"]}, clock=lambda: 100.0)
    assert [s["job"]["status"] for s in steps] == ["InProgress", "InProgress", "InProgress", "Completed"]
    assert [s["wait_seconds"] for s in steps] == [30, 60, 120, 0]
    assert [s["attempt"] for s in steps] == [1, 2, 3, 4]
    final = steps[-1]
    assert final["run"] == RUN
    assert final["job"]["records"] == 12 and final["job"]["shard_keys"] == ["k"]
    assert final["job"]["state"] == "succeeded" and final["job"]["done"]
    assert backend.calls == ["submit", "status", "status", "status"]


def test_failed_job_carries_its_failure_reason():
    steps = _loop(ScriptedBackend(["InProgress", "Failed"]), {"index": 1}, clock=lambda: 0.0)
    assert steps[-1]["job"]["state"] == "failed"
    assert steps[-1]["job"]["failure_reason"] == "ClientError: out of memory"


def test_stopping_is_not_done_until_stopped():
    steps = _loop(ScriptedBackend(["Stopping", "Stopped"]), {"index": 0}, clock=lambda: 0.0)
    assert [(s["job"]["status"], s["job"]["done"]) for s in steps[1:]] == [("Stopping", False), ("Stopped", True)]


def test_refused_submissions_queue_and_are_retried_by_the_check_step():
    backend = ScriptedBackend(["Completed"], refusals=2)
    steps = _loop(backend, {"index": 0}, clock=lambda: 0.0)
    assert [s["job"]["state"] for s in steps] == ["queued", "queued", "running", "succeeded"]
    assert steps[0]["job"]["arn"] is None and steps[0]["wait_seconds"] > 0
    assert backend.calls == ["submit", "submit", "submit", "status"]


def test_a_job_queued_past_the_limit_fails_instead_of_hanging(monkeypatch):
    monkeypatch.setenv("JOB_QUEUE_TIMEOUT_HOURS", "1")
    times = iter([0.0, 0.0, 0.0, 1800.0, 3601.0])
    steps = _loop(ScriptedBackend(refusals=10), {"index": 0}, clock=lambda: next(times))
    final = steps[-1]["job"]
    assert [s["job"]["state"] for s in steps] == ["queued", "queued", "queued", "failed"]
    assert final["state"] == "failed" and final["done"] and final["status"] == "NotSubmitted"
    assert "ThrottlingException" in final["failure_reason"] and "1.0 h" in final["failure_reason"]


def test_a_job_running_past_its_runtime_limit_is_stopped_and_says_why():
    backend = ScriptedBackend(["InProgress", "InProgress", "Stopped"], limit=3600)
    times = iter([0.0, 0.0, 10.0, 4000.0, 4100.0])
    steps = _loop(backend, {"index": 0}, clock=lambda: next(times))
    assert backend.calls == ["submit", "status", "status", "stop", "status"]
    final = steps[-1]["job"]
    assert final["state"] == "stopped" and final["done"]
    assert "runtime limit" in final["failure_reason"]


def test_job_state_refuses_unknown_states():
    with pytest.raises(ValueError):
        JobState(name="n", arn=None, status="X", state="exploded")


def test_a_done_job_without_an_arn_is_never_submitted_again():
    """An on-demand job ends inside its submit step and has no ARN; a check (replayed, retried, or reached
    through any path) must not run its records again."""
    backend = ScriptedBackend()
    done = {
        "index": 0,
        "name": "job-0",
        "arn": None,
        "status": "Completed",
        "state": "succeeded",
        "done": True,
        "model_invocations": 12,
    }
    step = check_job({"run": RUN, "job": done, "attempt": 1}, backend, FOLDER, now=lambda: 0.0)
    assert backend.calls == []
    assert step["job"] == done and step["wait_seconds"] == 0


def test_only_a_queued_job_is_resubmitted_and_a_running_one_without_an_arn_is_looked_up():
    backend = ScriptedBackend(["Completed"])
    running = {"index": 0, "name": "job-0", "arn": None, "status": "Submitted", "state": "running", "done": False}
    check_job({"run": RUN, "job": running, "attempt": 1}, backend, FOLDER, now=lambda: 0.0)
    assert backend.calls == ["status"]


def test_a_submitted_batch_job_is_billed_for_the_records_it_was_sent():
    step = submit_job(
        {"run": RUN, "job": {"index": 0, "records": 120}, "attempt": 0}, ScriptedBackend(), FOLDER, now=lambda: 0.0
    )
    assert step["job"]["model_invocations"] == 120
