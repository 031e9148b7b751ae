"""Write manifest: manifest.json, summary.md and report.html for a finished run, or for one a step failed, and the
run's row in the manifests table (batch_pipeline.storage.layout.RunFolder.manifest_row_key).

A finished run's jobs come from collect's collect.json (read once, with the per-job tallies), so the run's jobs/
folder is listed once on the success path, by collect; a failed run's come from jobs/ (storage.job_store)."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from batch_pipeline import settings
from batch_pipeline.config.app import ConfigError
from batch_pipeline.config.runtime import RuntimePipeline, RuntimePricing, parse_runtime_prices
from batch_pipeline.contracts import CollectSummary, Failure, Manifest, RunRef
from batch_pipeline.observability import local_stand_in, logger, metrics, tracer
from batch_pipeline.results.collect import with_details
from batch_pipeline.results.manifest import build_manifest, failure_manifest, render_summary
from batch_pipeline.results.report import put_report, render_run_report
from batch_pipeline.storage import s3io
from batch_pipeline.storage.job_store import resolve_jobs
from batch_pipeline.storage.layout import RunFolder


@logger.inject_lambda_context(correlation_id_path="run.run_id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    ref = RunRef.model_validate(event["run"])
    folder = RunFolder.of(ref)
    run = dict(ref.model_dump(exclude_none=True), local_stand_in=local_stand_in())
    s3 = settings.client("s3")
    collect = CollectSummary.model_validate(event["collect"]) if event.get("collect") else None
    if "failure" in event:
        # The state carries job references; the jobs themselves are in the run's jobs/ folder (job_store).
        jobs = resolve_jobs(s3, folder, event.get("jobs"))
        failure = Failure.model_validate(event["failure"]).model_dump()
        manifest = failure_manifest(run, failure, folder=folder, jobs=jobs)
    else:
        collected = event.get("collect", {})
        if collected.get("details_key"):  # the per-job tallies and job states collect kept out of the state
            collected = with_details(collected, s3io.read_json(s3, folder.bucket, collected["details_key"]))
        if "job_states" not in collected:
            raise ValueError("collect's result names no job states (collect.json at its details_key holds them)")
        jobs = collected["job_states"]
        pipeline = _pipeline(folder.pipeline)
        manifest = build_manifest(
            run,
            jobs,
            collected,
            event.get("evaluation"),
            folder=folder,
            pipeline=pipeline,
            pricing=_prices().get(pipeline.model_key) if pipeline else None,
        )
    Manifest.model_validate(manifest)
    if event.get("recollected"):
        manifest["recollected"] = event["recollected"]  # batch-pipeline recollect: what the first attempt said
    bucket = folder.bucket
    aggregates = collect.report.model_dump() if collect is not None and collect.report is not None else None
    page = report_page(manifest, event.get("evaluation"), aggregates)
    s3io.put_json(s3, bucket, folder.manifest_key, manifest, indent=2)
    # The manifests table's row (stacks/analytics.py): the same manifest as one line, the form the JSON SerDe reads.
    s3io.put_bytes(s3, bucket, folder.manifest_row_key, json.dumps(manifest).encode() + b"\n", s3io.JSON)
    s3io.put_bytes(s3, bucket, folder.summary_key, render_summary(manifest).encode(), "text/markdown; charset=utf-8")
    if page is not None:
        put_report(s3, bucket, folder.report_key, page)
    metrics.add_dimension(name="pipeline", value=folder.pipeline)
    metrics.add_metric(name="RunsFinished", unit="Count", value=1)
    metrics.add_metric(name=f"Runs{manifest['status'].title()}", unit="Count", value=1)
    # Record counts are emitted once, by collect.
    if "duration_seconds" in manifest.get("timings", {}):
        metrics.add_metric(name="RunDuration", unit="Seconds", value=manifest["timings"]["duration_seconds"])
    logger.info("run finished", extra={"status": manifest["status"], "counts": manifest["counts"]})
    # The state machine reads status, error and cause; the notification reads counts, evaluation and outputs. The
    # job list stays in manifest.json: carried in the state it would grow with the run toward the 256 KB quota.
    return state_summary(manifest)


def _pipeline(name: str) -> RuntimePipeline | None:
    """The run's pipeline (PIPELINES); None for a pipeline no longer configured (a recollected old run): the manifest
    is then written without a cost rather than not at all."""
    try:
        return settings.current().pipeline(name)
    except ConfigError as error:
        logger.warning("unknown pipeline; the manifest has no cost", extra={"reason": str(error)})
        return None


def _prices() -> dict[str, RuntimePricing]:
    """The catalog's prices by model (PRICES, set by the stack from cdk.json)."""
    return _parsed_prices(settings.current().prices_json or "{}")


@cache
def _parsed_prices(text: str) -> dict[str, RuntimePricing]:
    return parse_runtime_prices(text)  # once per container (per value, for local mode's in-process runs)


def report_page(
    manifest: dict[str, Any], evaluation: dict[str, Any] | None, aggregates: dict[str, Any] | None
) -> str | None:
    """report.html for the run, or None (and no `report` in the manifest's outputs) if it cannot be rendered:
    the page is for people, and must never cost the run its manifest or change its outcome."""
    try:
        return render_run_report(manifest, evaluation, aggregates)
    except Exception:
        logger.exception("report.html could not be rendered; the manifest and summary.md are written without it")
        metrics.add_metric(name="ReportsFailed", unit="Count", value=1)
        manifest.get("outputs", {}).pop("report", None)
        return None


def state_summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """manifest.json without what grows with the number of jobs."""
    summary = {key: value for key, value in manifest.items() if key not in ("jobs", "model_invocations")}
    summary["jobs_count"] = len(manifest.get("jobs", []))
    summary["model_invocations"] = {"total": manifest.get("model_invocations", {}).get("total", 0)}
    if "recover" in summary:
        summary["recover"] = {k: v for k, v in summary["recover"].items() if k != "outputs_kept"}
    return summary
