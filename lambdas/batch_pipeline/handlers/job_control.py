"""Job control: one step of a Map iteration, `{"action": "submit"|"status"|"wait", "run", "job", "attempt"}` ->
`{"run", "job", "attempt", "wait_seconds", "backstop_seconds"}` (batch_pipeline.jobs.loop.run_step; "wait" is the
task-token wait, batch_pipeline.jobs.tokens); and, on a failed run, `{"action": "stop_all", "run", "jobs"}` -> the
jobs as references, each stopped if it still ran (batch_pipeline.jobs.loop.stop_run).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from batch_pipeline import settings
from batch_pipeline.contracts import JobControlEvent, JobState, JobStep, StopJobsEvent
from batch_pipeline.jobs import loop
from batch_pipeline.jobs.backends import backend_for_run
from batch_pipeline.observability import logger, metrics, tracer
from batch_pipeline.storage.layout import RunFolder

ACTIONS = ("submit", "status", "wait", "stop_all")


@logger.inject_lambda_context(correlation_id_path="run.run_id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    action = event.get("action")
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; expected one of {sorted(ACTIONS)}")
    if action == "stop_all":
        return _stop_all(event)
    parsed = JobControlEvent.model_validate(event)  # the contract; the dicts go on, with the fields a backend adds
    folder = RunFolder.of(parsed.run)
    # Only the wait step hands a task token back.
    sfn = settings.client("stepfunctions") if action == "wait" else None
    result = loop.run_step(event, backend_for_run(folder), folder, settings.client("s3"), sfn)
    JobStep(
        run=result["run"],
        job=JobState.model_validate(result["job"]),
        attempt=result["attempt"],
        wait_seconds=result["wait_seconds"],
        backstop_seconds=result["backstop_seconds"],
    )
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
    return result


def _stop_all(event: dict[str, Any]) -> dict[str, Any]:
    folder = RunFolder.of(StopJobsEvent.model_validate(event).run)
    jobs = loop.stop_run(folder, event.get("jobs"), backend_for_run(folder), settings.client("s3"))
    stopped = [job["name"] for job in jobs if job.get("stop_reason")]
    logger.info("stopped the failed run's jobs", extra={"stopped": stopped, "jobs": len(jobs)})
    metrics.add_metric(name="JobsStoppedOnFailure", unit=MetricUnit.Count, value=len(stopped))
    # References only: the failure manifest reads the jobs back from the run's jobs/ folder.
    return {"jobs": [{"index": job["index"]} if "index" in job else job for job in jobs]}
