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
from batch_pipeline.contracts import Job, JobControlEvent, JobRef, JobState, JobStep, RunRef
from batch_pipeline.jobs.backends import BatchBackend, SubmitDeferred
from batch_pipeline.jobs.tokens import backstop_seconds, leave_token, resume
from batch_pipeline.storage.job_store import delete_token, resolve_job, resolve_jobs, save_job
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


def _step(
    run: RunRef, job: Job, attempt: int, backend: BatchBackend | None = None, folder: RunFolder | None = None
) -> JobStep:
    if job.done and backend is not None and folder is not None:
        # A backend may follow an ended job with another phase (a retry of failed records); the loop runs it.
        job = backend.finish(folder, job)
    wait = 0 if job.done else backoff_seconds(attempt, seed=job.name)
    return JobStep(run=run, job=job, attempt=attempt + 1, wait_seconds=wait, backstop_seconds=backstop_seconds())


def submit_job(
    step: JobStep, backend: BatchBackend, folder: RunFolder, now: Callable[[], float] = time.time
) -> JobStep:
    """Start the job (or find the one a previous try started); a deferral leaves it queued."""
    job = step.job
    name = backend.job_name(folder, job)
    if job.name is None:
        job = job.changed(name=name)
    if job.queued_at is None:
        job = job.changed(queued_at=now())
    try:
        reported = backend.submit(folder, job)
    except SubmitDeferred as deferred:
        queued_for = now() - float(job.queued_at or 0)
        # How long a job may stay queued behind a quota before the run gives up on it.
        limit = settings.current().job_queue_timeout_hours * 3600
        if queued_for >= limit:
            reason = f"not submitted after {queued_for / 3600:.1f} h in the queue; last refusal: {deferred}"
            refused = job.with_state(
                JobState(name=name, arn=None, status="NotSubmitted", state="failed", failure_reason=reason)
            )
        else:
            refused = job.with_state(JobState(name=name, arn=None, status="NotSubmitted", state="queued"))
            refused = refused.changed(last_refusal=str(deferred))
        return _step(step.run, refused, step.attempt)
    if job.submitted_at is None:
        job = job.changed(submitted_at=now())
    job = job.without("last_refusal")
    if reported.model_invocations is None:
        # Billed requests: a batch job is billed per record sent; an on-demand job reports its own InvokeModel count.
        reported = reported.model_copy(update={"model_invocations": job.records})
    return _step(step.run, job.with_state(reported), step.attempt, backend, folder)


def check_job(step: JobStep, backend: BatchBackend, folder: RunFolder, now: Callable[[], float] = time.time) -> JobStep:
    """The job's state now; submits a queued job again; stops a job that outran its time limit."""
    job = step.job
    if job.done:
        # Already ended (an on-demand job ends inside its submit step and never has an ARN; a replayed or
        # retried check): asking again would resubmit work that was paid for.
        return _step(step.run, job, step.attempt)
    if job.state == "queued":
        # Only a job the backend refused is submitted again; a missing ARN alone says nothing.
        return submit_job(step, backend, folder, now)
    reported = backend.status(folder, job)
    limit = backend.max_runtime_seconds
    started = job.submitted_at
    if limit is not None and started is not None and not reported.done and now() - float(started) > limit:
        reason = f"stopped by job control after exceeding the pipeline's {limit // 3600} h runtime limit"
        if reported.status != "Stopping":
            reported = backend.stop(folder, job)
        job = job.changed(stop_reason=reason)
    if reported.done and job.stop_reason and not reported.failure_reason:
        reported = reported.model_copy(update={"failure_reason": job.stop_reason})
    return _step(step.run, job.with_state(reported), step.attempt, backend, folder)


def run_step(event: JobControlEvent, backend: BatchBackend, folder: RunFolder, s3: Any, sfn: Any) -> JobStep:
    """One job-control step ("submit", "status" or "wait") as the Map iteration runs it: the job a reference names is
    read from the run's jobs/ folder, and its latest state written back before the step returns (or, for "wait",
    before the token is handed back, so whatever runs next reads the job as this step left it)."""
    job = resolve_job(s3, folder, event.job)
    step = JobStep(run=event.run, job=job, attempt=event.attempt)
    if event.action == "submit":
        return _saved(s3, folder, submit_job(step, backend, folder))
    if event.action == "status":
        return _saved(s3, folder, check_job(step, backend, folder))
    task_token = event.task_token
    if task_token is None:
        raise ValueError("the wait step needs the task token of its iteration ($$.Task.Token)")
    # The job whose token this wait leaves; none for a queued job, which has no backend job yet, so no event can come
    # for it before the check submits it.
    waited_on = job.name if job.state != "queued" else None
    if waited_on:
        leave_token(s3, folder.bucket, task_token, step)  # before the check: an event during it finds the token
    checked = _saved(s3, folder, check_job(step, backend, folder))
    if checked.job.done or checked.job.state == "queued":
        # Ended (or refused for now and must be submitted again after a backoff wait): resume the iteration now.
        resume(sfn, task_token, checked.payload())
        if waited_on:
            # Consumed: the iteration goes on without waiting on that job again (a retry of failed records is a job
            # of its own name, and token). Tokens a failed run leaves behind expire (stacks/storage.py).
            delete_token(s3, folder.bucket, waited_on)
    else:
        leave_token(s3, folder.bucket, task_token, checked)  # the job as now checked, for the event to resume with
    return checked


def _saved(s3: Any, folder: RunFolder, step: JobStep) -> JobStep:
    save_job(s3, folder, step.job)
    return step


def stop_run(folder: RunFolder, jobs: list[JobRef] | None, backend: BatchBackend, s3: Any) -> list[Job]:
    """A failed run's last word on its jobs (read from its jobs/ folder when `jobs` are references): every job not
    known to be done is looked up on the backend by its name and stopped if it still runs, so nothing keeps billing
    after the run gave up, and written back with its last state. Returns every job with its last known state and
    output location; a job the backend does not know was never submitted. A lookup or stop that fails is reported
    on the job (`stop_error`), never raised: the failure manifest must still be written."""
    ended = [_stopped(folder, job, backend) for job in resolve_jobs(s3, folder, jobs)]
    for job in ended:
        save_job(s3, folder, job)
    return ended


def _stopped(folder: RunFolder, job: Job, backend: BatchBackend) -> Job:
    name = job.name or backend.job_name(folder, job)
    job = job.changed(name=name)
    if job.done:
        return job
    try:
        found = backend.find(folder, job)
        if found is None:  # never submitted
            return job.with_state(
                JobState(name=name, arn=None, status="NotSubmitted", state="queued", output_uri=job.output_uri)
            )
        if not found.done:
            found = backend.stop(folder, job.with_state(found))
            job = job.changed(stop_reason="stopped by job control: the run failed")
        if job.model_invocations is None:
            job = job.changed(model_invocations=job.records)
        return job.with_state(found)
    except Exception as error:  # reported in the manifest, see above
        return job.changed(stop_error=f"{type(error).__name__}: {error}")
