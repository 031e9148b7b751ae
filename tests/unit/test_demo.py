"""`batch-pipeline demo`: which samples it runs, when it fails, and the committed Bedrock sample."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

from batch_pipeline_local.cli import demo

REPO = Path(__file__).resolve().parents[2]


def _result(key: str, status: str, rejection: dict | None = None) -> SimpleNamespace:
    manifest = (
        None
        if rejection
        else {
            "status": status,
            "counts": {"total": 3, "succeeded": 3, "failed": 0},
            "outputs": {"manifest": f"s3://out/{key}/manifest.json"},
        }
    )
    return SimpleNamespace(
        key=key, pipeline=key.split("/")[0], status=status, manifest=manifest, rejection=rejection, seconds=0.4
    )


def test_every_sample_file_the_demo_runs_is_committed():
    for name, _, _ in demo.DEMO_RUNS:
        assert (REPO / "examples" / name).is_file(), name


def test_a_sample_whose_pipeline_is_not_configured_is_skipped_and_a_missing_file_is_a_problem(tmp_path):
    (tmp_path / "summarize.jsonl").write_text("{}\n")
    runs, skipped, problems = demo.plan_runs({"summarize", "classify"}, tmp_path)
    assert [(path.name, pipeline) for path, pipeline, _ in runs] == [("summarize.jsonl", "summarize")]
    assert skipped == [
        "skipped examples/bedrock-summarize.jsonl: pipeline 'bedrock-summarize' is not configured in cdk.json"
    ]
    assert problems == ["examples/classify.jsonl is missing", "examples/summarize-with-bad-lines.jsonl is missing"]


def test_a_run_that_ends_otherwise_than_expected_fails_the_demo():
    rows = [
        demo._row(_result("summarize/summarize.jsonl", "SUCCEEDED"), "SUCCEEDED"),
        demo._row(_result("bedrock-summarize/b.jsonl", "FAILED"), "SUCCEEDED"),
        demo._row(
            _result(
                "summarize/bad.jsonl",
                "REJECTED",
                {"counts": {"total": 6, "valid": 1, "rejected": 5}, "report_uri": "s3://r"},
            ),
            "REJECTED",
        ),
    ]
    assert demo.unexpected(rows) == ["bedrock-summarize/b.jsonl ended FAILED, expected SUCCEEDED"]
    assert rows[2]["metric"] == "5 bad lines" and rows[2]["where"] == "s3://r"
    assert all(row["engine"] == "local stand-in engine (not a model)" for row in rows)
    table = "\n".join(demo.format_table(rows))
    assert "summarize/summarize.jsonl" in table and "REJECTED" in table


def test_the_bedrock_sample_is_what_its_script_writes_and_big_enough_for_a_batch_job():
    spec = importlib.util.spec_from_file_location(
        "make_bedrock_summarize", REPO / "examples" / "make_bedrock_summarize.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    text = (REPO / "examples" / "bedrock-summarize.jsonl").read_text(encoding="utf-8")
    assert text == script.render(), "run examples/make_bedrock_summarize.py"
    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) >= 100  # Bedrock's minimum records per batch job
    assert len({line["recordId"] for line in lines}) == len(lines)
    assert all(line["reference"] and line["modelInput"]["messages"] for line in lines)
