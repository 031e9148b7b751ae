"""Write manifest: `{"run", "jobs", "collect"}` for a run whose jobs ended, or `{"run", "failure", "jobs"}` for one a
step failed -> the manifest without its job list (batch_pipeline.results.finish writes manifest.json, summary.md,
report.html and the run's row in the manifests table).

A finished run's jobs come from collect's collect.json (read once, with the per-job tallies), so the run's jobs/
folder is listed once on the success path, by collect; a failed run's come from jobs/ (storage.job_store)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from batch_pipeline import settings
from batch_pipeline.config.app import ConfigError
from batch_pipeline.config.runtime import RuntimePipeline
from batch_pipeline.contracts import CollectSummary, Failure, Job, RunJobs, RunOutcome
from batch_pipeline.observability import local_stand_in, logger, metrics, tracer
from batch_pipeline.results.collect import with_details
from batch_pipeline.results.finish import finish_run, state_summary
from batch_pipeline.storage import s3io
from batch_pipeline.storage.job_store import resolve_jobs
from batch_pipeline.storage.layout import RunFolder


@logger.inject_lambda_context(correlation_id_path="run.run_id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    given = RunJobs.model_validate(event)
    folder = RunFolder.of(given.run)
    run = dict(given.run.model_dump(exclude_none=True), local_stand_in=local_stand_in())
    s3 = settings.client("s3")
    if "failure" in event:
        # The state carries job references; the jobs themselves are in the run's jobs/ folder (job_store).
        finished = finish_run(
            s3,
            folder,
            run,
            resolve_jobs(s3, folder, given.jobs),
            failure=Failure.model_validate(event["failure"]).model_dump(),
        )
    else:
        CollectSummary.model_validate(event["collect"])  # the contract; the dict goes on, as collect returned it
        collect = event["collect"]
        if collect.get("details_key"):  # the per-job tallies and job states collect kept out of the state
            collect = with_details(collect, s3io.read_json(s3, folder.bucket, collect["details_key"]))
        if "job_states" not in collect:
            raise ValueError("collect's result names no job states (collect.json at its details_key holds them)")
        evaluation = None
        if collect.get("evaluation_key"):  # the evaluation collect wrote beside the headline the state carries
            evaluation = s3io.read_json(s3, folder.bucket, collect["evaluation_key"])
        pipeline = _pipeline(folder.pipeline)
        finished = finish_run(
            s3,
            folder,
            run,
            [Job.model_validate(job) for job in collect["job_states"]],
            collect=collect,
            evaluation=evaluation,
            recollected=event.get("recollected"),
            pipeline=pipeline,
            pricing=settings.current().prices.get(pipeline.model_key) if pipeline else None,
        )
    manifest = finished.manifest
    if finished.report_error is not None:
        logger.error(
            "report.html could not be rendered; the manifest and summary.md are written without it",
            exc_info=finished.report_error,
        )
        metrics.add_metric(name="ReportsFailed", unit="Count", value=1)
    metrics.add_dimension(name="pipeline", value=folder.pipeline)
    metrics.add_metric(name="RunsFinished", unit="Count", value=1)
    metrics.add_metric(name=f"Runs{manifest['status'].title()}", unit="Count", value=1)
    # Record counts are emitted once, by collect.
    if "duration_seconds" in manifest.get("timings", {}):
        metrics.add_metric(name="RunDuration", unit="Seconds", value=manifest["timings"]["duration_seconds"])
    logger.info("run finished", extra={"status": manifest["status"], "counts": manifest["counts"]})
    # The job list stays in manifest.json: carried in the state it would grow with the run toward the 256 KB quota.
    outcome = state_summary(manifest)
    RunOutcome.model_validate(outcome)  # the contract Notify and the state machine read
    return outcome


def _pipeline(name: str) -> RuntimePipeline | None:
    """The run's pipeline (PIPELINES); None for a pipeline no longer configured (a recollected old run): the manifest
    is then written without a cost rather than not at all."""
    try:
        return settings.current().pipeline(name)
    except ConfigError as error:
        logger.warning("unknown pipeline; the manifest has no cost", extra={"reason": str(error)})
        return None
