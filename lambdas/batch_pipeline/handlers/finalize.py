"""Write manifest: manifest.json and summary.md for a finished run, or for one a step failed, and the run's row
in the manifests table (batch_pipeline.layout.manifest_row_key)."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from batch_pipeline import environment, s3io
from batch_pipeline.backends.runs import run_bucket, run_prefix
from batch_pipeline.contracts import Failure, Manifest, RunRef
from batch_pipeline.job_store import resolve_jobs
from batch_pipeline.layout import manifest_row_key
from batch_pipeline.manifest import build_manifest, failure_manifest, render_summary
from batch_pipeline.observability import local_stand_in, logger, metrics, tracer


@logger.inject_lambda_context(correlation_id_path="run.run_id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    run = dict(RunRef.model_validate(event["run"]).model_dump(exclude_none=True), local_stand_in=local_stand_in())
    # The state carries job references; the jobs themselves are in the run's jobs/ folder (job_store).
    s3 = environment.client("s3")
    jobs = resolve_jobs(s3, run, event.get("jobs"))
    if "failure" in event:
        manifest = failure_manifest(run, Failure.model_validate(event["failure"]).model_dump(), jobs=jobs)
    else:
        manifest = build_manifest(run, jobs, event.get("collect", {}), event.get("evaluation"))
    Manifest.model_validate(manifest)
    if event.get("recollected"):
        manifest["recollected"] = event["recollected"]  # batch-pipeline recollect: what the first attempt said
    bucket, prefix = run_bucket(run), run_prefix(run)
    s3io.put_json(s3, bucket, f"{prefix}manifest.json", manifest, indent=2)
    # The manifests table's row (stacks/analytics.py): the same manifest as one line, the form the JSON SerDe reads.
    s3io.put_bytes(s3, bucket, manifest_row_key(run["pipeline"], run["run_id"]), json.dumps(manifest).encode() + b"\n",
                   s3io.JSON)
    s3io.put_bytes(s3, bucket, f"{prefix}summary.md", render_summary(manifest).encode(), "text/markdown; charset=utf-8")
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
