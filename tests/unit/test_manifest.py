"""Manifest status, counts, failure manifests and the summary a person reads."""

from __future__ import annotations

from datetime import UTC, datetime

from batch_pipeline.contracts import Job
from batch_pipeline.results.manifest import build_manifest, failure_manifest, render_summary, run_status
from batch_pipeline.results.notifications import run_message
from batch_pipeline.storage.layout import RunFolder

RUN = {
    "run_id": "articles-0123456789abcdef",
    "pipeline": "summarize",
    "backend": "sagemaker",
    "output_bucket": "out",
    "run_prefix": "runs/summarize/articles-0123456789abcdef/",
    "input": {"bucket": "in", "key": "summarize/articles.jsonl", "version_id": "v1"},
    "counts": {"total": 10, "valid": 9, "rejected": 1},
    "started_at": "2026-11-21T10:00:00+00:00",
}
FINISHED = datetime(2026, 11, 21, 10, 1, 30, tzinfo=UTC)


def job(state="succeeded", status="Completed", reason=None):
    return Job(
        index=0,
        name="llmbp-a-0",
        arn="arn:job",
        status=status,
        state=state,
        done=True,
        failure_reason=reason,
        output_uri="s3://out/raw/",
        records=9,
    )


def test_all_records_answered_is_succeeded_with_counts_timings_and_locations():
    collect = {"processed": 9, "succeeded": 9, "failed": 0, "input_tokens": 0, "output_tokens": 0}
    evaluation = {
        "metric": "rouge",
        "records": 9,
        "scored": 9,
        "missing": 0,
        "errors": 0,
        "rouge": {"rouge1": {"precision": 0.5, "recall": 0.4, "fmeasure": 0.45}},
    }
    manifest = build_manifest(RUN, [job()], collect, evaluation, FINISHED, folder=RunFolder.of(RUN))
    assert manifest["status"] == "SUCCEEDED"
    assert manifest["counts"] == {"total": 10, "valid": 9, "rejected": 1, "processed": 9, "succeeded": 9, "failed": 0}
    assert manifest["timings"]["duration_seconds"] == 90.0
    assert manifest["outputs"]["predictions"] == (
        "s3://out/runs/summarize/articles-0123456789abcdef/predictions/predictions.jsonl"
    )
    assert manifest["jobs"][0]["name"] == "llmbp-a-0"
    assert manifest["evaluation"]["rouge_f"] == {"rouge1": 0.45}
    assert "tokens" not in manifest  # zero counts from a backend that reports none are not shown


def test_some_failed_records_make_a_partial_run():
    assert run_status([{"state": "succeeded"}], {"succeeded": 8, "failed": 1}) == "PARTIAL"
    assert run_status([{"state": "partial"}], {"succeeded": 9, "failed": 0}) == "PARTIAL"


def test_failed_job_makes_a_failed_run_that_names_the_reason():
    collect = {"processed": 0, "succeeded": 0, "failed": 9}
    manifest = build_manifest(
        RUN, [job("failed", "Failed", "ClientError: out of memory")], collect, None, FINISHED, folder=RunFolder.of(RUN)
    )
    assert manifest["status"] == "FAILED"
    assert manifest["error"] == "JobsFailed"
    assert "out of memory" in manifest["cause"]


def test_step_failure_manifest_names_state_error_and_readable_cause():
    failure = {
        "state": "Collect and score outputs",
        "error": "KeyError",
        "cause": '{"errorType": "KeyError", "errorMessage": "shards", "stackTrace": []}',
    }
    manifest = failure_manifest(RUN, failure, FINISHED, folder=RunFolder.of(RUN))
    assert manifest["status"] == "FAILED"
    assert manifest["failed_state"] == "Collect and score outputs"
    assert manifest["cause"] == "KeyError: shards"
    assert "Collect and score outputs" in render_summary(manifest)


def test_summary_and_notification_carry_status_metrics_and_links():
    collect = {"processed": 9, "succeeded": 9, "failed": 0, "input_tokens": 120, "output_tokens": 30}
    evaluation = {"metric": "rouge", "rouge": {"rouge1": {"fmeasure": 0.45}, "rougeL": {"fmeasure": 0.4}}}
    manifest = build_manifest(
        dict(RUN, local_stand_in=True),
        [job()],
        collect,
        evaluation,
        FINISHED,
        folder=RunFolder.of(dict(RUN, local_stand_in=True)),
    )
    summary = render_summary(manifest)
    assert "# Run articles-0123456789abcdef: SUCCEEDED" in summary
    assert "rouge1 F1: 0.4500" in summary and "local stand-in" in summary and "120 in, 30 out" in summary
    subject, text, attributes = run_message(manifest)
    assert subject.startswith("llm-batch-pipeline summarize: SUCCEEDED") and len(subject) <= 100
    assert "rouge1 0.4500" in text and manifest["outputs"]["manifest"] in text
    assert attributes == {"status": "SUCCEEDED", "pipeline": "summarize"}
