"""Collect and score outputs: `{"run", "jobs": [<job references>]}` -> counts, output keys and the evaluation's
headline (batch_pipeline.results.collect: the join, the per-record scores, evaluation.json). The per-job tallies and
the jobs' final states go to <run>/collect.json (details_key) and the whole evaluation to evaluation.json
(evaluation_key), so the state stays the same size whatever the number of jobs or classes.

Collect is the one step of a successful run that lists the run's jobs/ folder (storage.job_store): the manifest step
reads the jobs' final states back from collect.json.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from batch_pipeline import settings
from batch_pipeline.contracts import CollectSummary, RunJobs
from batch_pipeline.jobs.backends import backend_for_run
from batch_pipeline.observability import NAMESPACE, SERVICE, logger, metrics, tracer
from batch_pipeline.results.collect import PER_JOB_FIELDS, collect, state_result
from batch_pipeline.storage import s3io
from batch_pipeline.storage.job_store import resolve_jobs
from batch_pipeline.storage.layout import RunFolder


@logger.inject_lambda_context(correlation_id_path="run.run_id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    given = RunJobs.model_validate(event)  # the contract; the job references go on as the state carries them
    folder = RunFolder.of(given.run)
    s3 = settings.client("s3")
    # The state carries job references; the jobs themselves are in the run's jobs/ folder (job_store).
    result = collect(folder, resolve_jobs(s3, folder, given.jobs), backend_for_run(folder), s3)
    details_key = folder.collect_details_key
    s3io.put_json(s3, folder.bucket, details_key, {key: result[key] for key in PER_JOB_FIELDS})
    evaluation = result["evaluation"]
    counted = ("records", "processed", "succeeded", "failed", "unmatched_outputs", "unreadable_output_lines")
    logger.info(
        "collected",
        extra={key: result[key] for key in counted} | {key: evaluation.get(key) for key in ("metric", "scored")},
    )
    metrics.add_metric(name="RecordsSucceeded", unit=MetricUnit.Count, value=result["succeeded"])
    metrics.add_metric(name="RecordsFailed", unit=MetricUnit.Count, value=result["failed"])
    # The mean F-measures per pipeline, each in its own record: a pipeline dimension on the record counts above would
    # take them off the dashboard's graphs (stacks/monitoring.py), which chart them by service alone.
    for name, values in (evaluation.get("rouge") or {}).items():
        if isinstance(values.get("fmeasure"), float):
            with single_metric(
                name=f"{name}F",
                unit=MetricUnit.NoUnit,
                value=values["fmeasure"],
                namespace=NAMESPACE,
                default_dimensions={"service": SERVICE},
            ) as metric:
                metric.add_dimension(name="pipeline", value=folder.pipeline)
    return CollectSummary.model_validate(state_result(result, details_key)).model_dump()
