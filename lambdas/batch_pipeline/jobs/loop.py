"""The Map iteration's job loop: submit the job once, then wait for its end, then (for a backend that asks for
it) run a follow-up phase such as a retry of failed records, until the job is done.

Step Functions has no `.sync` integration for Bedrock batch jobs, so both backends run this one loop (DESIGN,
"Backend facts"): `Submit job` calls `submit_job`; `Wait for job to end` is a `.waitForTaskToken` step that checks
the job once (`check_job`) and then sleeps until the backend's job-state event or the backstop timeout wakes it
(batch_pipeline.jobs.tokens). Each step takes `{"run", "job", "attempt"}` and returns
`{"run", "job": <the job merged with its normalised state>, "attempt": attempt + 1, "wait_seconds",
"backstop_seconds"}`; the state machine's `Job finished?` reads `$.job.done` and `$.job.state`. `run` is passed
through because the task's result replaces the whole iteration state (ResultPath "$"); the backend is handed the
run's folder (storage.layout.RunFolder), which job control builds once from it. `run_step` is one such step as the
job-control function runs it: the job read from and written back to the run's jobs/ folder.

A submission the backend refuses for now (quota, throttling) leaves the job "queued" with no arn; the iteration
waits `wait_seconds` (jittered exponential backoff) and the next check submits again, so many uploads queue behind
a shared quota instead of failing. Only a "queued" job is ever submitted again, and a job that is done is never
looked at again: each job is submitted once, and each record is sent to a model once per attempt, whatever path
reaches the step.

Each submitted job carries `model_invocations`, the requests it is billed for: records sent for a batch
job, InvokeModel requests for an on-demand one (the manifest adds them up).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from batch_pipeline import settings
from batch_pipeline.jobs.backends import BatchBackend, SubmitDeferred, job_state
from batch_pipeline.jobs.tokens import backstop_seconds, leave_token, resume
from batch_pipeline.storage.job_store import delete_token, is_reference, load_job, resolve_jobs, save_job
from batch_pipeline.storage.layout import RunFolder


def backoff_seconds(
    attempt: int,
    *,
    base: float | None = None,
    cap: float | None = None,
    jitter: float | None = None,
    seed: str | int | None = None,
) -> int:
    """base * 2**attempt, capped, then shortened by up to `jitter` (a fraction) at random.

    Whole seconds, because a Wait state's SecondsPath must be an integer. With a seed the jitter is
    reproducible; job control seeds with the job name, so parallel queued jobs spread their retries while a
    retried Lambda answers the same wait. Defaults come from POLL_INITIAL_SECONDS (30),
    POLL_MAX_SECONDS (600) and POLL_JITTER (0.2)."""
    current = settings.current()
    base = current.poll_initial_seconds if base is None else base
    cap = current.poll_max_seconds if cap is None else cap
    jitter = current.poll_jitter if jitter is None else jitter
    jitter = min(max(jitter, 0.0), 1.0)
    # The exponent is bounded so a loop that ran for days cannot overflow a float.
    delay = min(cap, base * 2 ** min(max(attempt, 0), 32))
    rng = random.Random(f"{seed}:{attempt}") if seed is not None else random.Random()
    return max(0, int(round(delay * (1 - jitter * rng.random()))))


def _merge(job: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    return {**job, **state}


def _step(
    run: dict[str, Any],
    job: dict[str, Any],
    attempt: int,
    backend: BatchBackend | None = None,
    folder: RunFolder | None = None,
) -> dict[str, Any]:
    if job["done"] and backend is not None and folder is not None:
        # A backend may follow an ended job with another phase (a retry of failed records); the loop runs it.
        job = backend.finish(folder, job)
    wait = 0 if job["done"] else backoff_seconds(attempt, seed=job.get("name"))
    return {
        "run": run,
        "job": job,
        "attempt": attempt + 1,
        "wait_seconds": wait,
        "backstop_seconds": backstop_seconds(),
    }


def submit_job(
    event: dict[str, Any], backend: BatchBackend, folder: RunFolder, now: Callable[[], float] = time.time
) -> dict[str, Any]:
    """Start the job (or find the one a previous try started); a deferral leaves it queued."""
    run, job, attempt = event["run"], dict(event["job"]), int(event.get("attempt", 0))
    name = backend.job_name(folder, job)
    job.setdefault("name", name)
    if "queued_at" not in job:
        job["queued_at"] = now()
    try:
        state = backend.submit(folder, job)
    except SubmitDeferred as deferred:
        queued_for = now() - float(job["queued_at"])
        # How long a job may stay queued behind a quota before the run gives up on it.
        limit = settings.current().job_queue_timeout_hours * 3600
        if queued_for >= limit:
            state = job_state(
                name=name,
                arn=None,
                status="NotSubmitted",
                state="failed",
                failure_reason=f"not submitted after {queued_for / 3600:.1f} h in the queue; last refusal: {deferred}",
            )
        else:
            state = job_state(name=name, arn=None, status="NotSubmitted", state="queued")
            state["last_refusal"] = str(deferred)
        return _step(run, _merge(job, state), attempt)
    if "submitted_at" not in job:
        job["submitted_at"] = now()
    job.pop("last_refusal", None)
    # Billed requests: a batch job is billed per record sent; an on-demand job reports its own InvokeModel count.
    state.setdefault("model_invocations", int(job.get("records") or 0))
    return _step(run, _merge(job, state), attempt, backend, folder)


def check_job(
    event: dict[str, Any], backend: BatchBackend, folder: RunFolder, now: Callable[[], float] = time.time
) -> dict[str, Any]:
    """The job's state now; submits a queued job again; stops a job that outran its time limit."""
    run, job, attempt = event["run"], dict(event["job"]), int(event.get("attempt", 0))
    if job.get("done"):
        # Already ended (an on-demand job ends inside its submit step and never has an ARN; a replayed or
        # retried check): asking again would resubmit work that was paid for.
        return _step(run, job, attempt)
    if job.get("state") == "queued":
        # Only a job the backend refused is submitted again; a missing ARN alone says nothing.
        return submit_job({"run": run, "job": job, "attempt": attempt}, backend, folder, now)
    state = backend.status(folder, job)
    limit = backend.max_runtime_seconds
    started = job.get("submitted_at")
    if limit is not None and started is not None and not state["done"] and now() - float(started) > limit:
        reason = f"stopped by job control after exceeding the pipeline's {limit // 3600} h runtime limit"
        if state["status"] != "Stopping":
            state = backend.stop(folder, job)
        job["stop_reason"] = reason
    if state["done"] and job.get("stop_reason") and not state.get("failure_reason"):
        state["failure_reason"] = job["stop_reason"]
    return _step(run, _merge(job, state), attempt, backend, folder)


def run_step(event: dict[str, Any], backend: BatchBackend, folder: RunFolder, s3: Any, sfn: Any) -> dict[str, Any]:
    """One job-control step ("submit", "status" or "wait") as the Map iteration runs it: the job a reference names is
    read from the run's jobs/ folder, and its latest state written back before the step returns (or, for "wait",
    before the token is handed back, so whatever runs next reads the job as this step left it)."""
    action = event["action"]
    job = load_job(s3, folder, event["job"]["index"]) if is_reference(event["job"]) else event["job"]
    event = {**event, "job": job}
    if action == "submit":
        return _saved(s3, folder, submit_job(event, backend, folder))
    if action == "status":
        return _saved(s3, folder, check_job(event, backend, folder))
    task_token = event["task_token"]
    # The job whose token this wait leaves; none for a queued job, which has no backend job yet, so no event can come
    # for it before the check submits it.
    waited_on = job["name"] if job.get("state") != "queued" else None
    if waited_on:
        leave_token(s3, folder.bucket, task_token, event)  # before the check: an event during it finds the token
    step = _saved(s3, folder, check_job(event, backend, folder))
    if step["job"]["done"] or step["job"]["state"] == "queued":
        # Ended (or refused for now and must be submitted again after a backoff wait): resume the iteration now.
        resume(sfn, task_token, step)
        if waited_on:
            # Consumed: the iteration goes on without waiting on that job again (a retry of failed records is a job
            # of its own name, and token). Tokens a failed run leaves behind expire (stacks/storage.py).
            delete_token(s3, folder.bucket, waited_on)
    else:
        leave_token(s3, folder.bucket, task_token, step)  # the job as now checked, for the event to resume with
    return step


def _saved(s3: Any, folder: RunFolder, step: dict[str, Any]) -> dict[str, Any]:
    save_job(s3, folder, step["job"])
    return step


def stop_run(
    folder: RunFolder, jobs: list[dict[str, Any]] | None, backend: BatchBackend, s3: Any
) -> list[dict[str, Any]]:
    """A failed run's last word on its jobs (read from its jobs/ folder when `jobs` are references): every job not
    known to be done is looked up on the backend by its name and stopped if it still runs, so nothing keeps billing
    after the run gave up, and written back with its last state. Returns every job with its last known state and
    output location; a job the backend does not know was never submitted. A lookup or stop that fails is reported
    on the job (`stop_error`), never raised: the failure manifest must still be written."""
    ended = [_stopped(folder, job, backend) for job in resolve_jobs(s3, folder, jobs)]
    for job in ended:
        if "index" in job:
            save_job(s3, folder, job)
    return ended


def _stopped(folder: RunFolder, job: dict[str, Any], backend: BatchBackend) -> dict[str, Any]:
    job = dict(job)
    job.setdefault("name", backend.job_name(folder, job))
    if job.get("done"):
        return job
    try:
        state = backend.find(folder, job)
        if state is None:
            state = job_state(
                name=job["name"], arn=None, status="NotSubmitted", state="queued", output_uri=job.get("output_uri")
            )
        elif not state["done"]:
            state = backend.stop(folder, {**job, **state})
            job["stop_reason"] = "stopped by job control: the run failed"
            job.setdefault("model_invocations", int(job.get("records") or 0))
        else:
            job.setdefault("model_invocations", int(job.get("records") or 0))
        job.update(state)
    except Exception as error:  # reported in the manifest, see above
        job["stop_error"] = f"{type(error).__name__}: {error}"
    return job
