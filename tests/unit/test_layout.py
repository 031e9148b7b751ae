"""The output bucket's layout, spelled out once here as the docs and the Athena tables expect it."""

from __future__ import annotations

import pytest

from batch_pipeline.contracts import RunRef
from batch_pipeline.storage import layout
from batch_pipeline.storage.layout import RejectedFile, RunFolder

RUN = {"run_id": "calls-0123456789abcdef", "pipeline": "summarize", "output_bucket": "out"}


def test_every_key_of_a_run_folder():
    folder = RunFolder.of(RUN)
    run = "runs/summarize/calls-0123456789abcdef/"
    assert folder.prefix == run and folder.folder_uri == f"s3://out/{run}"
    assert folder.intake_report_key == run + "intake.json"
    assert folder.references_key == run + "references.jsonl"
    assert folder.shard_key("job-00000.jsonl") == run + "shards/job-00000.jsonl"
    assert layout.id_index_key(folder.shard_key("job-00000.jsonl")) == run + "ids/job-00000.jsonl"
    assert folder.job_key(3) == run + "jobs/3.json"
    assert folder.raw_job_uri("llmbp-x-0") == f"s3://out/{run}raw/llmbp-x-0/"
    assert folder.predictions_key == run + "predictions/predictions.jsonl"
    assert folder.errors_key == run + "errors/errors.jsonl"
    assert folder.collect_details_key == run + "collect.json"
    assert [folder.evaluation_key, folder.manifest_key, folder.summary_key, folder.report_key] == [
        run + name for name in ("evaluation.json", "manifest.json", "summary.md", "report.html")
    ]
    assert folder.manifest_row_key == "runs/summarize/manifests/calls-0123456789abcdef.json"
    assert layout.token_key("llmbp-x-0") == "job-tokens/llmbp-x-0.json"
    assert layout.on_demand_part_key(layout.on_demand_folder(run + "raw/j"), 2) == (
        run + "raw/j/on-demand/parts/part-00002.jsonl"
    )
    assert layout.retry_input_key(run + "shards/job-00000.jsonl") == run + "shards/job-00000-retry.jsonl"
    assert set(folder.outputs()) == {
        "run_folder",
        "shards",
        "raw",
        "predictions",
        "errors",
        "evaluation",
        "manifest",
        "summary",
        "report",
    }


def test_a_run_reference_names_its_own_bucket_and_prefix_or_gets_the_defaults(monkeypatch):
    named = RunFolder.of(RunRef.model_validate({**RUN, "output_bucket": "b", "run_prefix": "custom/place"}))
    assert (named.bucket, named.prefix) == ("b", "custom/place/")
    monkeypatch.setenv("OUTPUT_BUCKET", "from-env")
    unnamed = RunFolder.of({"run_id": "r", "pipeline": "p"})
    assert (unnamed.bucket, unnamed.prefix) == ("from-env", "runs/p/r/")
    monkeypatch.delenv("OUTPUT_BUCKET")
    with pytest.raises(KeyError, match="OUTPUT_BUCKET"):
        RunFolder.of({"run_id": "r", "pipeline": "p"})


def test_a_plan_naming_another_bucket_is_refused_and_its_own_output_uri_kept():
    folder = RunFolder.of(RUN)
    with pytest.raises(ValueError, match="outside the run bucket"):
        folder.key_of("s3://someone-else/x.jsonl")
    assert folder.job_output_uri("s3://out/elsewhere/j", "j") == "s3://out/elsewhere/j/"
    assert folder.job_output_uri(None, "j") == folder.raw_job_uri("j")
    with pytest.raises(ValueError, match="outside the run bucket"):
        folder.job_output_uri("s3://other/j/", "j")


def test_a_rejected_file_keeps_its_copy_report_and_page_side_by_side():
    rejected = RejectedFile.of("out", "summarize", "calls-0123456789abcdef", "calls.jsonl")
    assert rejected.copy_key == "rejected/summarize/calls-0123456789abcdef/calls.jsonl"
    assert rejected.report_key == rejected.copy_key + ".report.json"
    assert rejected.page_key == rejected.copy_key + ".report.html"
    assert rejected.uri(rejected.copy_key) == "s3://out/" + rejected.copy_key
