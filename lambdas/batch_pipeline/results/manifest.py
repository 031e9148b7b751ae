"""The run manifest (manifest.json) and its human-readable summary (summary.md).

Status: SUCCEEDED when every valid record has a prediction; PARTIAL when some records failed or a
job ended partially; FAILED when no record succeeded, every job failed, or a workflow step failed.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

from batch_pipeline.config.runtime import RuntimePipeline, RuntimePricing
from batch_pipeline.contracts import Job
from batch_pipeline.results.evaluation.streaming import headline
from batch_pipeline.results.pricing import bedrock_run_cost, sagemaker_run_cost
from batch_pipeline.storage.layout import RunFolder, split_s3_uri

MANIFEST_VERSION = 1


def _now() -> datetime:
    return datetime.now(UTC)


def _timings(run: dict[str, Any], finished: datetime) -> dict[str, Any]:
    started = run.get("started_at")
    timings = {"started_at": started, "finished_at": finished.isoformat(timespec="seconds")}
    if started:
        with contextlib.suppress(ValueError):
            timings["duration_seconds"] = round((finished - datetime.fromisoformat(started)).total_seconds(), 3)
    return timings


def _base(run: dict[str, Any]) -> dict[str, Any]:
    counts = run.get("counts", {})
    return {
        "manifest_version": MANIFEST_VERSION,
        "run_id": run["run_id"],
        "pipeline": run["pipeline"],
        "backend": run.get("backend"),
        "model": run.get("model"),
        "input": run.get("input"),
        "ids_assigned": run.get("ids_assigned", False),
        "local_stand_in": run.get("local_stand_in", False),
        "counts": {
            "total": counts.get("total"),
            "valid": counts.get("valid"),
            "rejected": counts.get("rejected"),
            "processed": 0,
            "succeeded": 0,
            "failed": 0,
        },
    }


def run_status(jobs: list[dict[str, Any]], counts: dict[str, Any]) -> str:
    states = [job.get("state") for job in jobs]
    if counts["succeeded"] == 0 or (states and all(s in ("failed", "stopped") for s in states)):
        return "FAILED"
    if counts["failed"] or any(s != "succeeded" for s in states):
        return "PARTIAL"
    return "SUCCEEDED"


def _summary(job: Job, optional: tuple[str, ...]) -> dict[str, Any]:
    """A job as the manifest lists it: what every job has (None when unknown), and `optional` fields when set."""
    stored = job.stored()
    return {key: stored.get(key) for key in JOB_FIELDS} | {key: stored[key] for key in optional if stored.get(key)}


# What the manifest says of every job.
JOB_FIELDS = ("name", "arn", "status", "state", "failure_reason", "output_uri", "records")


def build_manifest(
    run: dict[str, Any],
    jobs: list[Job],
    collect: dict[str, Any],
    evaluation: dict[str, Any] | None,
    finished: datetime | None = None,
    *,
    folder: RunFolder,
    pipeline: RuntimePipeline | None = None,
    pricing: RuntimePricing | None = None,
) -> dict[str, Any]:
    """The manifest of a run whose jobs ended (whatever their outcome); with the pipeline and its prices, its cost.
    `folder` is the run's folder (the manifest's `outputs`)."""
    manifest = _base(run)
    counts = manifest["counts"]
    for field in ("processed", "succeeded", "failed"):
        counts[field] = int(collect.get(field, 0))
    # Only when there is something to say: the job's route, its retry, its last refusal, when the backend ran it
    # (SageMaker's TransformStartTime / TransformEndTime).
    optional = ("route", "retry", "last_refusal", "invocation_type", "started_at", "ended_at")
    job_summaries = [_summary(job, optional) for job in jobs]
    _add_recovered(job_summaries, collect)
    manifest["jobs"] = job_summaries
    manifest["model_invocations"] = model_invocations(job_summaries, jobs)
    manifest["status"] = run_status(job_summaries, counts)
    failure_reasons = [str(j["failure_reason"]) for j in job_summaries if j.get("failure_reason")]
    if manifest["status"] == "FAILED":
        manifest["error"] = "JobsFailed" if failure_reasons else "NoPredictions"
        manifest["cause"] = "; ".join(failure_reasons) or "no record received a prediction"
    for field in ("input_tokens", "output_tokens"):
        if collect.get(field):  # SageMaker reports no token counts
            manifest.setdefault("tokens", {})[field] = collect[field]
    cost = run_cost(pipeline, pricing, jobs, manifest.get("tokens"))
    if cost is not None:
        manifest["cost"] = cost
    if collect.get("backend_counts"):
        manifest["backend_counts"] = collect["backend_counts"]
    if collect.get("errors_by_reason"):
        manifest["errors_by_reason"] = collect["errors_by_reason"]
    manifest["evaluation"] = headline(evaluation)
    manifest["timings"] = _timings(run, finished or _now())
    manifest["outputs"] = folder.outputs()
    return manifest


def run_cost(
    pipeline: RuntimePipeline | None,
    pricing: RuntimePricing | None,
    jobs: list[Job],
    tokens: dict[str, Any] | None,
) -> dict[str, Any] | None:
    """What the run cost at the catalog's prices: Bedrock from the tokens the model reported, SageMaker from the
    transform jobs' instance time. None when the model has no prices or the run reported nothing to price."""
    if pipeline is None or pricing is None:
        return None
    if pipeline.backend == "bedrock":
        if not tokens:  # no token counts: nothing to price, and 0 would claim the run was free
            return None
        return bedrock_run_cost(
            pricing,
            pipeline.model_key,
            jobs,
            int(tokens.get("input_tokens") or 0),
            int(tokens.get("output_tokens") or 0),
        )
    settings = pipeline.pipeline.sagemaker
    if settings is None:
        return None
    return sagemaker_run_cost(pricing, pipeline.model_key, jobs, settings.instance_type, settings.instance_count)


def _add_recovered(job_summaries: list[dict[str, Any]], collect: dict[str, Any]) -> None:
    """A retry's `recovered`: how many of its answers took the place of an error, as collect counted them."""
    recovered = collect.get("recovered_by_retry") or {}
    for summary in job_summaries:
        if summary.get("retry"):
            summary["retry"] = {**summary["retry"], "recovered": recovered.get(summary["name"], 0)}


def job_invocations(job: Job) -> int:
    """Billed requests of one job, its retry of failed records included: records sent to a batch job,
    InvokeModel requests (botocore's retries included) for an on-demand one; 0 for a job never submitted."""
    retry = job.retry or {}
    return int(job.model_invocations or 0) + int(retry.get("model_invocations") or 0)


def model_invocations(job_summaries: list[dict[str, Any]], jobs: list[Job]) -> dict[str, Any]:
    """Per-job and total billed requests; also written onto each job summary."""
    for summary, job in zip(job_summaries, jobs, strict=True):
        summary["model_invocations"] = job_invocations(job)
    return {
        "total": sum(s["model_invocations"] for s in job_summaries),
        "by_job": {s["name"]: s["model_invocations"] for s in job_summaries},
    }


def failure_manifest(
    run: dict[str, Any],
    failure: dict[str, Any],
    finished: datetime | None = None,
    *,
    folder: RunFolder,
    jobs: list[Job] | None = None,
) -> dict[str, Any]:
    """The manifest of a run stopped by a failed workflow step: every job the run planned, with its last known
    state, its output location and what it was billed for, and how to recover the paid-for outputs."""
    manifest = _base(run)
    manifest["status"] = "FAILED"
    manifest["failed_state"] = failure.get("state")
    manifest["error"] = failure.get("error") or "States.TaskFailed"
    manifest["cause"] = _cause_message(failure.get("cause"))
    # The run did not get to count its records: unknown, not 0 (partial predictions may exist).
    for field in ("processed", "succeeded", "failed"):
        manifest["counts"][field] = None
    job_list = jobs or []
    summaries = [
        _summary(job, ("retry", "stop_reason", "stop_error"))
        # What collect needs to read the job's output again (batch-pipeline recollect).
        | {key: value for key, value in job.stored().items() if key in RECOLLECT_FIELDS and value is not None}
        for job in job_list
    ]
    manifest["jobs"] = summaries
    manifest["model_invocations"] = model_invocations(summaries, job_list)
    manifest["timings"] = _timings(run, finished or _now())
    manifest["outputs"] = folder.outputs()
    manifest["recover"] = recovery(folder, summaries)
    return manifest


RECOLLECT_FIELDS = ("index", "input_uri", "route", "merged_output_key", "done")


def run_from_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """The run reference (the execution input the steps read) rebuilt from a manifest, for recollect."""
    bucket, prefix = split_s3_uri(manifest["outputs"]["run_folder"])
    counts = manifest.get("counts") or {}
    return {
        "run_id": manifest["run_id"],
        "pipeline": manifest["pipeline"],
        "backend": manifest.get("backend"),
        "model": manifest.get("model"),
        "output_bucket": bucket,
        "run_prefix": prefix,
        "input": manifest.get("input"),
        "counts": {key: counts.get(key) for key in ("total", "valid", "rejected")},
        "ids_assigned": manifest.get("ids_assigned", False),
        "started_at": (manifest.get("timings") or {}).get("started_at"),
    }


def recovery(folder: RunFolder, jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """How to finish a failed run from what it already paid for, without sending a record again."""
    with_output = [job["name"] for job in jobs if job.get("state") in ("succeeded", "partial", "failed", "stopped")]
    if not with_output:
        return {"outputs_kept": [], "how": "no job produced output; fix the cause and upload the file again"}
    return {
        "outputs_kept": with_output,
        "command": f"batch-pipeline recollect {folder.folder_uri}",
        "how": "the jobs' raw outputs are kept under raw/; recollect re-runs collect (and its scoring), the manifest "
        "and the notification from them (no model is called again)",
    }


def _cause_message(cause: str | None) -> str:
    """A Lambda failure's Cause is a JSON error object; keep its message and type readable."""
    if not cause:
        return "no cause reported"
    try:
        parsed = json.loads(cause)
    except ValueError:
        return cause
    if isinstance(parsed, dict) and "errorMessage" in parsed:
        return f"{parsed.get('errorType', 'Error')}: {parsed['errorMessage']}"
    return cause


def render_summary(manifest: dict[str, Any]) -> str:
    """summary.md: counts, metrics, timings and links, for a person."""
    counts = manifest["counts"]
    lines = [
        f"# Run {manifest['run_id']}: {manifest['status']}",
        "",
        f"Pipeline `{manifest['pipeline']}` on {manifest.get('backend') or 'unknown backend'}"
        + (" (local stand-in engine, not a model)" if manifest.get("local_stand_in") else ""),
    ]
    source = manifest.get("input") or {}
    if source:
        lines.append(f"Input `s3://{source.get('bucket')}/{source.get('key')}` version `{source.get('version_id')}`")
    lines += ["", "| records | count |", "| --- | ---: |"]
    lines += [f"| {name} | {value if value is not None else '-'} |" for name, value in counts.items()]
    if manifest.get("failed_state") or manifest.get("cause"):
        lines += [
            "",
            f"**Failure**: {manifest.get('failed_state') or 'jobs'}: {manifest.get('error')}: {manifest.get('cause')}",
        ]
    recover = manifest.get("recover") or {}
    if recover.get("command"):
        lines += ["", f"**Recover** without paying again: `{recover['command']}` ({recover['how']})"]
    headline = manifest.get("evaluation")
    if headline:
        lines += ["", f"## Evaluation ({headline['metric']})", ""]
        for name, value in (headline.get("rouge_f") or {}).items():
            lines.append(f"- {name} F1: {value:.4f}" if isinstance(value, float) else f"- {name} F1: -")
        for name in ("accuracy", "macro_f1"):
            if isinstance(headline.get(name), float):
                lines.append(f"- {name}: {headline[name]:.4f}")
    tokens = manifest.get("tokens")
    if tokens:
        lines += ["", f"Tokens: {tokens.get('input_tokens')} in, {tokens.get('output_tokens')} out"]
    cost = manifest.get("cost")
    if cost:
        lines += [
            "",
            f"Cost: {cost['usd']:.6f} USD ({cost['route']}, model {cost['model']}): "
            f"{cost['basis']}. Prices as of {cost['prices_as_of']}, {cost['source']}",
        ]
    if manifest.get("jobs"):
        lines += ["", "## Jobs", ""]
        lines += [
            f"- `{j['name']}`: {j.get('status')}" + (f" ({j['failure_reason']})" if j.get("failure_reason") else "")
            for j in manifest["jobs"]
        ]
    timings = manifest.get("timings", {})
    lines += [
        "",
        f"Started {timings.get('started_at')}, finished {timings.get('finished_at')}"
        + (f", {timings['duration_seconds']} s" if "duration_seconds" in timings else ""),
        "",
        "## Files",
        "",
    ]
    lines += [f"- {name}: {uri}" for name, uri in manifest.get("outputs", {}).items()]
    return "\n".join(lines) + "\n"
