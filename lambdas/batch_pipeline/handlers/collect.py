"""Collect outputs: `{"run", "jobs": [<the Map's final iteration states>]}` -> counts and output keys; the per-job
tallies and the jobs' final states go to <run>/collect.json (details_key), so the state stays the same size whatever
the number of jobs.

Collect is the one step of a successful run that lists the run's jobs/ folder (storage.job_store): the manifest step
reads the jobs' final states back from collect.json. See batch_pipeline.results.collect for the join and the files
written.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from batch_pipeline import settings
from batch_pipeline.contracts import CollectSummary, RunRef
from batch_pipeline.jobs.backends import backend_for_run
from batch_pipeline.observability import logger, metrics, tracer
from batch_pipeline.results.collect import PER_JOB_FIELDS, collect, state_result
from batch_pipeline.storage import s3io
from batch_pipeline.storage.job_store import resolve_jobs
from batch_pipeline.storage.layout import RunFolder


@logger.inject_lambda_context(correlation_id_path="run.run_id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    folder = RunFolder.of(RunRef.model_validate(event["run"]))
    s3 = settings.client("s3")
    # The state carries job references; the jobs themselves are in the run's jobs/ folder (job_store).
    result = collect(folder, resolve_jobs(s3, folder, event.get("jobs")), backend_for_run(folder), s3)
    logger.info(
        "collected",
        extra={
            key: result[key]
            for key in ("records", "processed", "succeeded", "failed", "unmatched_outputs", "unreadable_output_lines")
        },
    )
    metrics.add_metric(name="RecordsSucceeded", unit=MetricUnit.Count, value=result["succeeded"])
    metrics.add_metric(name="RecordsFailed", unit=MetricUnit.Count, value=result["failed"])
    details_key = folder.collect_details_key
    s3io.put_json(s3, folder.bucket, details_key, {key: result[key] for key in PER_JOB_FIELDS})
    return CollectSummary.model_validate(state_result(result, details_key)).model_dump()
