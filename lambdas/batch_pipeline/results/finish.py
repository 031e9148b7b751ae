"""Finishing a run (the `Write manifest` step): manifest.json, summary.md and report.html in the run folder, and the
run's row in the manifests table (batch_pipeline.storage.layout.RunFolder.manifest_row_key), for a run whose jobs
ended or for one a workflow step failed.

report.html is for people: a page that cannot be rendered is left out (and out of the manifest's outputs), never
costing the run its manifest or changing its outcome.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from batch_pipeline.config.runtime import RuntimePipeline, RuntimePricing
from batch_pipeline.contracts import Job, Manifest, ReportAggregates
from batch_pipeline.results.manifest import build_manifest, failure_manifest, render_summary
from batch_pipeline.results.report import put_report, render_run_report
from batch_pipeline.storage import s3io
from batch_pipeline.storage.layout import RunFolder


@dataclass
class Finished:
    manifest: dict[str, Any]
    # Why report.html was not written (the manifest and summary.md were), or None.
    report_error: Exception | None = None


def finish_run(
    s3: Any,
    folder: RunFolder,
    run: dict[str, Any],
    jobs: list[Job],
    *,
    collect: dict[str, Any] | None = None,
    evaluation: dict[str, Any] | None = None,
    failure: dict[str, Any] | None = None,
    recollected: dict[str, Any] | None = None,
    pipeline: RuntimePipeline | None = None,
    pricing: RuntimePricing | None = None,
) -> Finished:
    """Write the run's result files. `failure` (a workflow step failed) gives the failure manifest; otherwise
    `collect` is collect's state with its per-job tallies and job states read back (results.collect.with_details);
    `jobs` are the run's jobs (the failure path's from jobs/, the success path's from collect.json). `pipeline` and
    `pricing` give the manifest its cost (None for a pipeline no longer configured: the manifest has no cost)."""
    if failure is not None:
        manifest = failure_manifest(run, failure, folder=folder, jobs=jobs)
    else:
        manifest = build_manifest(
            run, jobs, collect or {}, evaluation, folder=folder, pipeline=pipeline, pricing=pricing
        )
    Manifest.model_validate(manifest)
    if recollected:
        manifest["recollected"] = recollected  # batch-pipeline recollect: what the first attempt said
    # What collect gathered for the page in its one pass (contracts.ReportAggregates).
    report = (collect or {}).get("report")
    aggregates = ReportAggregates.model_validate(report).model_dump() if report else None
    page, report_error = report_page(manifest, evaluation, aggregates)
    bucket = folder.bucket
    s3io.put_json(s3, bucket, folder.manifest_key, manifest, indent=2)
    # The manifests table's row (stacks/analytics.py): the same manifest as one line, the form the JSON SerDe reads.
    s3io.put_bytes(s3, bucket, folder.manifest_row_key, json.dumps(manifest).encode() + b"\n", s3io.JSON)
    s3io.put_bytes(s3, bucket, folder.summary_key, render_summary(manifest).encode(), "text/markdown; charset=utf-8")
    if page is not None:
        put_report(s3, bucket, folder.report_key, page)
    return Finished(manifest, report_error)


def report_page(
    manifest: dict[str, Any], evaluation: dict[str, Any] | None, aggregates: dict[str, Any] | None
) -> tuple[str | None, Exception | None]:
    """report.html for the run, or (None, why) and no `report` in the manifest's outputs if it cannot be rendered."""
    try:
        return render_run_report(manifest, evaluation, aggregates), None
    except Exception as error:  # any failure of the page: see the module docstring
        manifest.get("outputs", {}).pop("report", None)
        return None, error


def state_summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """manifest.json as the state carries it: without what grows with the number of jobs. The state machine reads
    status, error and cause; the notification reads counts, evaluation and outputs."""
    summary = {key: value for key, value in manifest.items() if key not in ("jobs", "model_invocations")}
    summary["jobs_count"] = len(manifest.get("jobs", []))
    summary["model_invocations"] = {"total": manifest.get("model_invocations", {}).get("total", 0)}
    if "recover" in summary:
        summary["recover"] = {k: v for k, v in summary["recover"].items() if k != "outputs_kept"}
    return summary
