"""Write manifest: manifest.json and summary.md for a finished run, or for one a step failed."""

from __future__ import annotations

import json
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from batch_pipeline.backends.runs import run_bucket, run_prefix
from batch_pipeline.contracts import Failure, Manifest, RunRef
from batch_pipeline.job_store import resolve_jobs
from batch_pipeline.manifest import build_manifest, failure_manifest, render_summary
from batch_pipeline.observability import local_stand_in, logger, metrics, tracer

_s3 = boto3.client("s3")


@logger.inject_lambda_context(correlation_id_path="run.run_id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    run = dict(RunRef.model_validate(event["run"]).model_dump(exclude_none=True), local_stand_in=local_stand_in())
    # The state carries job references; the jobs themselves are in the run's jobs/ folder (job_store).
    jobs = resolve_jobs(_s3, run, event.get("jobs"))
    if "failure" in event:
        manifest = failure_manifest(run, Failure.model_validate(event["failure"]).model_dump(), jobs=jobs)
    else:
        manifest = build_manifest(run, jobs, event.get("collect", {}), event.get("evaluation"))
    Manifest.model_validate(manifest)
    if event.get("recollected"):
        manifest["recollected"] = event["recollected"]  # batch-pipeline recollect: what the first attempt said
    bucket, prefix = run_bucket(run), run_prefix(run)
    _s3.put_object(Bucket=bucket, Key=f"{prefix}manifest.json", ContentType="application/json",
                   Body=json.dumps(manifest, indent=2).encode())
    _s3.put_object(Bucket=bucket, Key=f"{prefix}summary.md", ContentType="text/markdown; charset=utf-8",
                   Body=render_summary(manifest).encode())
    metrics.add_dimension(name="pipeline", value=run["pipeline"])
    metrics.add_metric(name="RunsFinished", unit="Count", value=1)
    metrics.add_metric(name=f"Runs{manifest['status'].title()}", unit="Count", value=1)
    # Record counts are emitted once, by collect.
    if "duration_seconds" in manifest.get("timings", {}):
        metrics.add_metric(name="RunDuration", unit="Seconds", value=manifest["timings"]["duration_seconds"])
    logger.info("run finished", extra={"status": manifest["status"], "counts": manifest["counts"]})
    # The state machine reads status, error and cause; the notification reads counts, evaluation and outputs. The
    # job list stays in manifest.json: carried in the state it would grow with the run toward the 256 KB quota.
    return state_summary(manifest)


def state_summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """manifest.json without what grows with the number of jobs."""
    summary = {key: value for key, value in manifest.items() if key not in ("jobs", "model_invocations")}
    summary["jobs_count"] = len(manifest.get("jobs", []))
    summary["model_invocations"] = {"total": manifest.get("model_invocations", {}).get("total", 0)}
    if "recover" in summary:
        summary["recover"] = {k: v for k, v in summary["recover"].items() if k != "outputs_kept"}
    return summary
