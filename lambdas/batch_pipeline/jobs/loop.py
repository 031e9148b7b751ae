"""The Map iteration's job loop: submit, wait with backoff, check, until the job ends.

Step Functions has no `.sync` integration for Bedrock batch jobs, so both backends use this one loop
(DESIGN, "Backend facts"). Each step takes `{"run", "job", "attempt"}` and returns
`{"run": run, "job": <job spec merged with the normalised state>, "attempt": attempt + 1, "wait_seconds": N}`;
the state machine waits `$.wait_seconds` and calls check again while `$.job.done` is false. `run` is passed
through because the task's result replaces the whole iteration state (ResultPath "$"); the backend is handed the
run's folder (storage.layout.RunFolder), which job control builds once from it.

A submission the backend refuses for now (quota, throttling) leaves the job "queued" with no arn;
the next check submits again, so many uploads queue behind a shared quota instead of failing. Only a
"queued" job is ever submitted again, and a job that is done is never looked at again: each job is
submitted once, and each record is sent to a model once per attempt, whatever path reaches the step.

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
    reproducible; job control seeds with the job name, so parallel jobs spread their polls while a
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


def backstop_seconds() -> int:
    """How long a waiting iteration sleeps on its task token before it checks the job itself (the backstop for a
    lost job-state event); JOB_BACKSTOP_SECONDS (local mode rehearses a lost event with a short one)."""
    return max(1, int(settings.current().job_backstop_seconds))


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


def stop_run_jobs(event: dict[str, Any], backend: BatchBackend, folder: RunFolder) -> dict[str, Any]:
    """A failed run's last word on its jobs: every job not known to be done is looked up on the backend by its
    name and stopped if it still runs, so nothing keeps billing after the run gave up. Returns every job with its
    last known state and output location; a job the backend does not know was never submitted. A lookup or stop
    that fails is reported on the job (`stop_error`), never raised: the failure manifest must still be written."""
    ended = []
    for entry in event.get("jobs") or []:
        job = dict(entry.get("job", entry))  # Map results are iteration states; plan items are jobs
        job.setdefault("name", backend.job_name(folder, job))
        if not job.get("done"):
            try:
                state = backend.find(folder, job)
                if state is None:
                    state = job_state(
                        name=job["name"],
                        arn=None,
                        status="NotSubmitted",
                        state="queued",
                        output_uri=job.get("output_uri"),
                    )
                elif not state["done"]:
                    state = backend.stop(folder, {**job, **state})
                    job["stop_reason"] = "stopped by job control: the run failed"
                    if "model_invocations" not in job:
                        job["model_invocations"] = int(job.get("records") or 0)
                elif "model_invocations" not in job:
                    job["model_invocations"] = int(job.get("records") or 0)
                job.update(state)
            except Exception as error:  # reported in the manifest, see above
                job["stop_error"] = f"{type(error).__name__}: {error}"
        ended.append(job)
    return {"jobs": ended}
