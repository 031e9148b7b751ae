"""Job control for one Map iteration: `{"action": "submit"|"status"|"wait", "run", "job", "attempt"}`; and, on a
failed run, `{"action": "stop_all", "run", "jobs"}` (stop what still runs, report every job's last state).

Returns `{"run", "job", "attempt", "wait_seconds", "backstop_seconds"}` (see batch_pipeline.jobs.loop). `job` may be a
reference (`{"index"}`): the job is then read from the run's jobs/ folder, and every step writes the job's latest
state back there (batch_pipeline.storage.job_store), so the Map's results and the later states carry references only.

"wait" is the `.waitForTaskToken` step: it leaves the task token where the job-state event handler finds it from the
job name, then checks the job once; a job that already ended resumes its own iteration at once (so an event that
came before the token was stored is not needed) and its token object is deleted: no event needs it any more.
Otherwise the iteration sleeps until the job's EventBridge event (handlers/job_events.py) or the backstop timeout
wakes it.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from batch_pipeline import settings
from batch_pipeline.contracts import JobControlEvent, JobState, JobStep, StopJobsEvent
from batch_pipeline.jobs import loop
from batch_pipeline.jobs.backends import backend_for_run, error_code
from batch_pipeline.observability import logger, metrics, tracer
from batch_pipeline.storage.job_store import delete_token, is_reference, load_job, resolve_jobs, save_job, save_token
from batch_pipeline.storage.layout import RunFolder

ACTIONS = {"submit": loop.submit_job, "status": loop.check_job, "wait": loop.check_job, "stop_all": loop.stop_run_jobs}
# A token that was already used or whose wait timed out (the backstop fired first): nothing is waiting on it.
SPENT_TOKEN_ERRORS = ("TaskTimedOut", "InvalidToken", "TaskDoesNotExist")


@logger.inject_lambda_context(correlation_id_path="run.run_id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    action = event.get("action")
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; expected one of {sorted(ACTIONS)}")
    s3 = settings.client("s3")
    if action == "stop_all":
        stop = StopJobsEvent.model_validate(event)
        return _stop_all(event, s3, RunFolder.of(stop.run))
    parsed = JobControlEvent.model_validate(event)  # the contract; the dicts go on, with the fields a backend adds
    folder = RunFolder.of(parsed.run)
    run = event["run"]
    job = load_job(s3, folder, event["job"]["index"]) if is_reference(event["job"]) else event["job"]
    event = {**event, "job": job}
    # The job whose token this wait leaves; none for a queued job, which has no backend job yet.
    waited_on = job["name"] if action == "wait" and job.get("state") != "queued" else None
    if waited_on:
        # Before the check, so an event for a job that ends during it still finds the token (no event can come for
        # a queued job before the check submits it).
        _leave_token(s3, folder, event["task_token"], {"run": run, "job": job, "attempt": event.get("attempt", 0)})
    result = ACTIONS[action](event, backend_for_run(folder), folder)
    if action == "wait" and not result["job"]["done"] and result["job"]["state"] != "queued":
        _leave_token(s3, folder, event["task_token"], result)
    JobStep(
        run=result["run"],
        job=JobState.model_validate(result["job"]),
        attempt=result["attempt"],
        wait_seconds=result["wait_seconds"],
        backstop_seconds=result["backstop_seconds"],
    )
    save_job(s3, folder, result["job"])
    job = result["job"]
    logger.info(
        "job state",
        extra={
            "action": action,
            "job_name": job["name"],
            "status": job["status"],
            "state": job["state"],
            "attempt": result["attempt"],
            "failure_reason": job.get("failure_reason"),
        },
    )
    if job["state"] == "queued":
        metrics.add_metric(name="JobSubmissionsDeferred", unit=MetricUnit.Count, value=1)
    elif action == "submit":
        metrics.add_metric(name="JobSubmissions", unit=MetricUnit.Count, value=1)
    else:
        metrics.add_metric(name="JobStatusChecks", unit=MetricUnit.Count, value=1)
    if job["done"]:
        metrics.add_metric(name=f"Jobs{job['state'].capitalize()}", unit=MetricUnit.Count, value=1)
    if action == "wait" and (job["done"] or job["state"] == "queued"):
        # Ended (or refused for now and must be submitted again after a poll wait): resume the iteration now.
        resume(event["task_token"], result)
        if waited_on:
            # Consumed: the iteration goes on without waiting on that job again (a retry of failed records is a job
            # of its own name, and token). Tokens a failed run leaves behind expire (stacks/storage.py).
            delete_token(s3, folder.bucket, waited_on)
    return result


def _leave_token(s3: Any, folder: RunFolder, task_token: str, step: dict[str, Any]) -> None:
    """The token and the iteration's state the event handler resumes it with (the next wait checks the job)."""
    step = {key: step[key] for key in ("run", "job", "attempt") if key in step}
    save_token(
        s3,
        folder.bucket,
        step["job"]["name"],
        task_token,
        {**step, "backstop_seconds": loop.backstop_seconds()},
    )


def resume(task_token: str, output: dict[str, Any]) -> bool:
    """SendTaskSuccess; False when nothing waits on the token any more (used, or its wait timed out)."""
    try:
        settings.client("stepfunctions").send_task_success(taskToken=task_token, output=json.dumps(output))
    except Exception as error:  # only the spent-token errors are expected; the rest re-raise
        if error_code(error) in SPENT_TOKEN_ERRORS:
            logger.info("task token already spent", extra={"error": error_code(error)})
            return False
        raise
    return True


def _stop_all(event: dict[str, Any], s3: Any, folder: RunFolder) -> dict[str, Any]:
    jobs = resolve_jobs(s3, folder, event.get("jobs"))
    result = loop.stop_run_jobs({**event, "jobs": jobs}, backend_for_run(folder), folder)
    for job in result["jobs"]:
        if "index" in job:
            save_job(s3, folder, job)
    stopped = [job["name"] for job in result["jobs"] if job.get("stop_reason")]
    logger.info("stopped the failed run's jobs", extra={"stopped": stopped, "jobs": len(result["jobs"])})
    metrics.add_metric(name="JobsStoppedOnFailure", unit=MetricUnit.Count, value=len(stopped))
    # References only: the failure manifest reads the jobs back from the run's jobs/ folder.
    return {"jobs": [{"index": job["index"]} if "index" in job else job for job in result["jobs"]]}
