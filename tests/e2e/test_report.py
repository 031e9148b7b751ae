"""report.html through local mode: written by the manifest step for every run (SageMaker summarize and classify,
Bedrock), by intake beside a rejected file, uploaded as HTML, self-contained, escaping what records carry; and
`--out` copies the run folder so the documented `evaluate` example works on its real files."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from batch_pipeline.results.report import CONTENT_TYPE
from batch_pipeline_local.cli.main import main
from batch_pipeline_local.emulator.export import export_run, prepare_demo_folder
from batch_pipeline_local.emulator.run import run_file
from batch_pipeline_local.template import REGION
from tests.unit.report_html import links, loading_problems

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def _object(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    got = boto3.client("s3", region_name=REGION).get_object(Bucket=bucket, Key=key)
    return got["ContentType"], got["Body"].read().decode("utf-8")


def assert_self_contained(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert loading_problems(page) == []
    # The only links are to the S3 console, for a person to click.
    assert all(link.startswith("https://us-east-1.console.aws.amazon.com/s3/") for link in links(page)), links(page)


@pytest.mark.parametrize(
    "name, pipeline, expected, sections",
    [
        ("summarize.jsonl", "summarize", "SUCCEEDED", ["rougeL F1 histogram", "Worst 10"]),
        ("classify.jsonl", "classify", "SUCCEEDED", ["confusion matrix", "confidence histogram", "Per class"]),
        ("bedrock-summarize.jsonl", "bedrock-summarize", "SUCCEEDED", ["Tokens and cost", "rougeL F1 histogram"]),
    ],
)
def test_every_run_folder_has_its_html_report(local, name, pipeline, expected, sections):
    result = run_file(local, EXAMPLES / name, pipeline)
    assert result.status == expected
    manifest = result.manifest
    assert manifest["outputs"]["report"].endswith(f"{manifest['run_id']}/report.html")
    content_type, page = _object(manifest["outputs"]["report"])
    assert content_type == CONTENT_TYPE == "text/html; charset=utf-8"
    assert_self_contained(page)
    assert f"Run {manifest['run_id']}" in page and f'class="badge {expected}"' in page
    for section in sections:
        assert section in page, section
    assert "local stand-in engine" in page
    if manifest.get("tokens"):
        assert f"{manifest['tokens']['input_tokens']:,}" in page


def test_a_rejected_file_has_its_html_report_beside_its_copy_and_json_report(local):
    result = run_file(local, EXAMPLES / "summarize-with-bad-lines.jsonl", "summarize")
    assert result.status == "REJECTED"
    html_uri = result.rejection["report_uri"].removesuffix(".report.json") + ".report.html"
    content_type, page = _object(html_uri)
    assert content_type == CONTENT_TYPE
    assert_self_contained(page)
    assert 'data-chart="bad lines by reason"' in page and "No job was started." in page
    for code, count in result.rejection["counts_by_reason"].items():
        assert f"<code>{code}</code>" in page and count >= 1


def test_what_records_carry_is_escaped_in_the_report(local, tmp_path):
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    lines = [
        {"id": f"r{i}<b>", "text_inputs": f"{hostile} Sentence {i}. More text.", "reference": f"{hostile} ref {i}"}
        for i in range(3)
    ]
    path = tmp_path / "hostile.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = run_file(local, path, "summarize")
    assert result.status == "SUCCEEDED"
    _, page = _object(result.manifest["outputs"]["report"])
    assert_self_contained(page)
    # The stand-in's prediction is the input's first sentence: the hostile markup is in predictions and references.
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page and "r0&lt;b&gt;" in page
    assert "<script" not in page.lower() and "<img" not in page.lower()


def test_out_copies_the_run_folder_and_the_readme_evaluate_example_works_on_it(local, tmp_path, capsys):
    result = run_file(local, EXAMPLES / "summarize.jsonl", "summarize")
    report = export_run(result, tmp_path)
    folder = tmp_path / result.manifest["run_id"]
    assert report == folder / "report.html"
    for name in (
        "manifest.json",
        "predictions/predictions.jsonl",
        "references.jsonl",
        "evaluation.json",
        "summary.md",
        "intake.json",
    ):
        assert (folder / name).is_file(), name
    assert any((folder / "raw").rglob("*.out")) and any((folder / "shards").iterdir())
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                "--predictions",
                str(folder / "predictions" / "predictions.jsonl"),
                "--references",
                str(folder / "references.jsonl"),
                "--json",
            ]
        )
        == 0
    )
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["rouge"]["rougeL"]["fmeasure"] == pytest.approx(result.manifest["evaluation"]["rouge_f"]["rougeL"])


def test_out_of_a_rejected_file_holds_its_copy_and_both_reports(local, tmp_path):
    result = run_file(local, EXAMPLES / "summarize-with-bad-lines.jsonl", "summarize")
    report = export_run(result, tmp_path)
    assert report is not None and report.name == "summarize-with-bad-lines.jsonl.report.html"
    assert sorted(p.name for p in report.parent.iterdir()) == [
        "summarize-with-bad-lines.jsonl",
        "summarize-with-bad-lines.jsonl.report.html",
        "summarize-with-bad-lines.jsonl.report.json",
    ]


def test_the_demo_folder_is_emptied_only_when_a_demo_made_it(tmp_path):
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        prepare_demo_folder(mine)
    assert (mine / "keep.txt").read_text() == "mine"
    demo = tmp_path / "demo-out"
    prepare_demo_folder(demo)
    (demo / "old-run").mkdir()
    prepare_demo_folder(demo)
    assert [p.name for p in demo.iterdir()] == [".batch-pipeline-demo"]
