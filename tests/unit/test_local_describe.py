"""`batch-pipeline local run` summary lines: what a reader sees of a run without opening the manifest."""

from __future__ import annotations

from batch_pipeline_local.cli.local import describe
from batch_pipeline_local.emulator.run import RunResult


def _manifest(**extra) -> dict:
    return {
        "status": "PARTIAL",
        "counts": {"total": 12, "succeeded": 11, "failed": 1},
        "outputs": {"manifest": "s3://out/runs/p/r/manifest.json"},
        **extra,
    }


def test_bedrock_run_shows_job_mode_retry_tokens_and_bedrocks_counts():
    manifest = _manifest(
        jobs=[{"name": "llmbp-a-0", "route": "on-demand", "retry": {"records": 2, "recovered": 1}}],
        tokens={"input_tokens": 955, "output_tokens": 67},
        backend_counts={"totalRecordCount": 12, "errorRecordCount": 1},
    )
    text = describe(RunResult("p", "p/a.jsonl", None, manifest, None, 1.0))
    assert "jobs: llmbp-a-0 (on-demand) (retried 2, recovered 1)" in text
    assert "tokens: 955 in, 67 out" in text
    assert "backend counts: totalRecordCount 12, errorRecordCount 1" in text
    assert "local stand-in engine (not a model)" in text


def test_sagemaker_run_has_no_token_or_backend_lines():
    text = describe(RunResult("p", "p/a.jsonl", None, _manifest(jobs=[{"name": "llmbp-b-0"}]), None, 1.0))
    assert "jobs: llmbp-b-0" in text and "tokens" not in text and "backend counts" not in text


def test_a_rejection_names_each_bad_line():
    report = {
        "counts": {"total": 3, "valid": 2, "rejected": 1},
        "report_uri": "s3://out/rejected/x.report.json",
        "errors": [{"line": 2, "field": "id", "reason": "duplicate id 1: first used on line 1"}],
    }
    text = describe(RunResult("p", "p/a.jsonl", None, None, report, 1.0))
    assert "REJECTED (1 of 3 records rejected)" in text and "line 2: id: duplicate id 1" in text
