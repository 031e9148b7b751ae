"""Job control: one step of a Map iteration, `{"action": "submit"|"status"|"wait", "run", "job", "attempt"}` ->
`{"run", "job", "attempt", "wait_seconds", "backstop_seconds"}` (batch_pipeline.jobs.loop.run_step; "wait" is the
task-token wait, batch_pipeline.jobs.tokens); and, on a failed run, `{"action": "stop_all", "run", "jobs"}` -> the
jobs as references, each stopped if it still ran (batch_pipeline.jobs.loop.stop_run).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from batch_pipeline import settings
from batch_pipeline.contracts import JobControlEvent, StopJobsEvent
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
        return _stop_all(StopJobsEvent.model_validate(event))
    parsed = JobControlEvent.model_validate(event)
    folder = RunFolder.of(parsed.run)
    # Only the wait step hands a task token back.
    sfn = settings.client("stepfunctions") if parsed.action == "wait" else None
    step = loop.run_step(parsed, backend_for_run(folder), folder, settings.client("s3"), sfn)
    job = step.job
    logger.info(
        "job state",
        extra={
            "action": parsed.action,
            "job_name": job.name,
            "status": job.status,
            "state": job.state,
            "attempt": step.attempt,
            "failure_reason": job.failure_reason,
        },
    )
    if job.state == "queued":
        metrics.add_metric(name="JobSubmissionsDeferred", unit=MetricUnit.Count, value=1)
    elif parsed.action == "submit":
        metrics.add_metric(name="JobSubmissions", unit=MetricUnit.Count, value=1)
    else:
        metrics.add_metric(name="JobStatusChecks", unit=MetricUnit.Count, value=1)
    if job.done and job.state is not None:
        metrics.add_metric(name=f"Jobs{job.state.capitalize()}", unit=MetricUnit.Count, value=1)
    # The iteration's state as it came, with the job as this step left it: `Job finished?` reads $.job.done/state.
    return step.payload()


def _stop_all(event: StopJobsEvent) -> dict[str, Any]:
    folder = RunFolder.of(event.run)
    jobs = loop.stop_run(folder, event.jobs, backend_for_run(folder), settings.client("s3"))
    stopped = [job.name for job in jobs if job.stop_reason]
    logger.info("stopped the failed run's jobs", extra={"stopped": stopped, "jobs": len(jobs)})
    metrics.add_metric(name="JobsStoppedOnFailure", unit=MetricUnit.Count, value=len(stopped))
    # References only: the failure manifest reads the jobs back from the run's jobs/ folder.
    return {"jobs": [{"index": job.index} for job in jobs]}
