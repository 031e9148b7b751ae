"""`batch-pipeline evaluate` end to end through the CLI's own entry point."""

from __future__ import annotations

import json

import pytest
from rouge_score import rouge_scorer as google_rouge

from batch_pipeline_local.cli.main import main

REFERENCE_A = "the river burst its banks on monday .\nhundreds of homes were flooded"
REFERENCE_B = "the club signed a new striker"


@pytest.fixture
def files(tmp_path):
    references = tmp_path / "highlights.jsonl"
    references.write_text(
        "\n".join(
            json.dumps(line)
            for line in [
                {"id": 0, "highlights": REFERENCE_A},
                {"id": 1, "highlights": REFERENCE_B},
                {"id": 2, "highlights": "markets fell sharply"},
            ]
        )
        + "\n"
    )
    sagemaker = tmp_path / "part-00000.jsonl.out"
    sagemaker.write_text("{'id': 0, 'generated_texts': ['The river flooded hundreds of homes on Monday.']}\n")
    bedrock = tmp_path / "job-00000.jsonl.jsonl.out"
    bedrock.write_text(
        json.dumps(
            {
                "recordId": "1",
                "modelInput": {},
                "modelOutput": {
                    "content": [{"type": "text", "text": "A new striker joined the club."}],
                    "usage": {"input_tokens": 40, "output_tokens": 9},
                },
            }
        )
        + "\n"
        + json.dumps({"recordId": "2", "modelInput": {}, "error": {"errorCode": 400, "errorMessage": "Malformed"}})
        + "\n"
    )
    return tmp_path, references, sagemaker, bedrock


def test_json_report_from_two_backend_files(files, capsys):
    tmp_path, references, sagemaker, bedrock = files
    scores_out = tmp_path / "scores.jsonl"

    code = main(
        [
            "evaluate",
            "--predictions",
            str(sagemaker),
            "--predictions",
            str(bedrock),
            "--references",
            str(references),
            "--json",
            "--scores-out",
            str(scores_out),
        ]
    )

    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["records"], report["scored"], report["missing"], report["errors"]) == (3, 2, 0, 1)
    assert (report["input_tokens"], report["output_tokens"]) == (40, 9)
    google = google_rouge.RougeScorer(["rougeLsum"])
    expected = (
        google.score(REFERENCE_A, "The river flooded hundreds of homes on Monday.")["rougeLsum"].fmeasure
        + google.score(REFERENCE_B, "A new striker joined the club.")["rougeLsum"].fmeasure
    ) / 2
    assert report["rouge"]["rougeLsum"]["fmeasure"] == pytest.approx(expected, abs=1e-12)
    written = [json.loads(line) for line in scores_out.read_text().splitlines()]
    assert [row["id"] for row in written] == ["0", "1"]
    assert set(written[0]["scores"]) == {"rouge1", "rouge2", "rougeL", "rougeLsum"}


def test_table_output_names_counts_and_every_rouge_type(files, capsys):
    _, references, sagemaker, bedrock = files
    code = main(
        [
            "evaluate",
            "--predictions",
            str(sagemaker),
            "--predictions",
            str(bedrock),
            "--references",
            str(references),
            "--use-stemmer",
            "--bootstrap",
            "20",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "records 3 | scored 2 | missing 0 | errors 1 (400: 1)" in out
    assert "stemming on" in out and "95% interval (20 resamples)" in out
    for rouge_type in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
        assert any(line.startswith(rouge_type + " ") for line in out.splitlines())


def test_classification_table_and_metric_override(tmp_path, capsys):
    references = tmp_path / "references.jsonl"
    references.write_text('{"id": 1, "label": "pos"}\n{"id": 2, "label": "neg"}\n')
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text('{"id": 1, "prediction": "pos"}\n{"id": 2, "prediction": "pos"}\n')

    assert main(["evaluate", "--predictions", str(predictions), "--references", str(references)]) == 0
    out = capsys.readouterr().out
    assert "accuracy 0.5000" in out and "confusion matrix (rows: true, columns: predicted)" in out

    assert (
        main(
            [
                "evaluate",
                "--predictions",
                str(predictions),
                "--references",
                str(references),
                "--metric",
                "rouge",
                "--json",
            ]
        )
        == 1
    )  # no reference text: nothing to score
    assert json.loads(capsys.readouterr().out)["records"] == 0


def test_unreadable_inputs_are_usage_errors(tmp_path, capsys):
    predictions = tmp_path / "p.jsonl"
    predictions.write_text("")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{broken\n")
    assert main(["evaluate", "--predictions", str(predictions), "--references", str(bad)]) == 2
    assert "references line 1 is not JSON" in capsys.readouterr().err
    assert main(["evaluate", "--predictions", str(tmp_path / "absent.out"), "--references", str(predictions)]) == 2
    assert "absent.out" in capsys.readouterr().err


def test_help_describes_formats_and_exit_codes(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert ".jsonl.out" in out and "missing" in out and "Exit status" in out and "--use-stemmer" in out
