"""Job control for one Map iteration: `{"action": "submit"|"status", "run", "job", "attempt"}`; and, on a
failed run, `{"action": "stop_all", "run", "jobs"}` (stop what still runs, report every job's last state).

Returns `{"run", "job", "attempt", "wait_seconds"}` (see batch_pipeline.jobs); the state machine waits
`$.wait_seconds` and checks again while `$.job.done` is false.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from batch_pipeline import jobs
from batch_pipeline.backends import backend_for_run
from batch_pipeline.contracts import JobControlEvent, JobState, JobStep, StopJobsEvent
from batch_pipeline.observability import logger, metrics, tracer

ACTIONS = {"submit": jobs.submit_job, "status": jobs.check_job, "stop_all": jobs.stop_run_jobs}


@logger.inject_lambda_context(correlation_id_path="run.run_id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: Any) -> dict:
    action = event.get("action")
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; expected one of {sorted(ACTIONS)}")
    if action == "stop_all":
        StopJobsEvent.model_validate(event)
        return _stop_all(event)
    JobControlEvent.model_validate(event)  # the contract; the dicts go on, with the fields a backend adds
    result = ACTIONS[action](event, backend_for_run(event["run"]))
    JobStep(run=result["run"], job=JobState.model_validate(result["job"]), attempt=result["attempt"],
            wait_seconds=result["wait_seconds"])
    job = result["job"]
    logger.info(
        "job state",
        extra={"action": action, "job_name": job["name"], "status": job["status"], "state": job["state"],
               "attempt": result["attempt"], "wait_seconds": result["wait_seconds"],
               "failure_reason": job.get("failure_reason")},
    )
    if job["state"] == "queued":
        metrics.add_metric(name="JobSubmissionsDeferred", unit=MetricUnit.Count, value=1)
    elif action == "submit":
        metrics.add_metric(name="JobSubmissions", unit=MetricUnit.Count, value=1)
    else:
        metrics.add_metric(name="JobStatusChecks", unit=MetricUnit.Count, value=1)
    if job["done"]:
        metrics.add_metric(name=f"Jobs{job['state'].capitalize()}", unit=MetricUnit.Count, value=1)
    return result


def _stop_all(event: dict) -> dict:
    result = jobs.stop_run_jobs(event, backend_for_run(event["run"]))
    stopped = [job["name"] for job in result["jobs"] if job.get("stop_reason")]
    logger.info("stopped the failed run's jobs", extra={"stopped": stopped, "jobs": len(result["jobs"])})
    metrics.add_metric(name="JobsStoppedOnFailure", unit=MetricUnit.Count, value=len(stopped))
    return result
