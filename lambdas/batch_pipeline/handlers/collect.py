"""Collect outputs: `{"run", "jobs": [<the Map's final iteration states>]}` -> counts and output keys; the per-job
tallies go to <run>/collect.json (details_key), so the state stays the same size whatever the number of jobs.

See batch_pipeline.results.collect for the join and the files written.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from batch_pipeline import settings
from batch_pipeline.contracts import CollectSummary
from batch_pipeline.jobs.backends import backend_for_run
from batch_pipeline.observability import logger, metrics, tracer
from batch_pipeline.results.collect import COLLECT_DETAILS_FILE, PER_JOB_FIELDS, collect, state_result
from batch_pipeline.storage import s3io
from batch_pipeline.storage.job_store import resolve_jobs
from batch_pipeline.storage.runs import run_bucket, run_prefix


@logger.inject_lambda_context(correlation_id_path="run.run_id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    run = event["run"]
    s3 = settings.client("s3")
    # The state carries job references; the jobs themselves are in the run's jobs/ folder (job_store).
    result = collect(run, resolve_jobs(s3, run, event.get("jobs")), backend_for_run(run), s3)
    logger.info(
        "collected",
        extra={
            key: result[key]
            for key in ("records", "processed", "succeeded", "failed", "unmatched_outputs", "unreadable_output_lines")
        },
    )
    metrics.add_metric(name="RecordsSucceeded", unit=MetricUnit.Count, value=result["succeeded"])
    metrics.add_metric(name="RecordsFailed", unit=MetricUnit.Count, value=result["failed"])
    details_key = f"{run_prefix(run)}{COLLECT_DETAILS_FILE}"
    s3io.put_json(s3, run_bucket(run), details_key, {key: result[key] for key in PER_JOB_FIELDS})
    return CollectSummary.model_validate(state_result(result, details_key)).model_dump()
