"""report.html logic: the streaming aggregates collect gathers, their byte bound, the escaping of record content, the
charts' safety check, and the notification naming the report."""

from __future__ import annotations

import json
import tracemalloc

import pytest

from batch_pipeline.contracts import ReportAggregates
from batch_pipeline.results.notifications import run_message
from batch_pipeline.results.report import (
    ReportTally,
    aggregate,
    charts,
    console_url,
    render_rejection_report,
    render_run_report,
)
from tests.unit.report_html import loading_problems

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
# What the state may spend on report.html's aggregates in the worst case (see test_state_payloads).
REPORT_STATE_BUDGET = 48 * 1024


def rouge_record(index: int, f: float, text: str = "a summary") -> dict:
    scores = {"precision": f, "recall": f, "fmeasure": f}
    return {
        "id": index,
        "prediction": text,
        "reference": "the reference",
        "metrics": {t: scores for t in ("rouge1", "rouge2", "rougeL", "rougeLsum")},
    }


def class_record(index: int, label: str, predicted: str, confidence: float | None) -> dict:
    record = {
        "id": index,
        "prediction": predicted,
        "label": label,
        "metrics": {"label": label, "predicted": predicted, "correct": label == predicted},
    }
    if confidence is not None:
        record |= {"labels": [predicted, "other"], "scores": [confidence, 1 - confidence]}
    return record


def test_the_histogram_has_fixed_bins_and_the_ends_fall_in_the_first_and_last():
    tally = ReportTally()
    tally.add([rouge_record(i, f) for i, f in enumerate([0.0, 0.04, 0.05, 0.5, 0.99, 1.0])])
    counts = tally.summary()["histogram"]["counts"]
    assert len(counts) == aggregate.BINS and sum(counts) == 6
    assert counts[0] == 2 and counts[1] == 1 and counts[10] == 1 and counts[-1] == 2


def test_best_and_worst_ten_by_rouge_l_with_ties_kept_in_input_order():
    tally = ReportTally()
    scores = [(i * 37 % 100) / 100 for i in range(100)]
    tally.add([rouge_record(i, f) for i, f in enumerate(scores)] + [rouge_record(100, 0.0)])
    summary = tally.summary()
    every = scores + [0.0]
    worst = sorted(range(101), key=lambda i: (every[i], i))[:10]
    best = sorted(range(101), key=lambda i: (-every[i], i))[:10]
    assert [e["id"] for e in summary["worst"]] == [str(i) for i in worst]
    assert [e["id"] for e in summary["best"]] == [str(i) for i in best]
    assert summary["worst"][0]["id"] == "0" and summary["worst"][1]["id"] == "100"  # tie at 0.0: input order


def test_a_small_run_lists_each_record_once():
    tally = ReportTally()
    tally.add([rouge_record(i, i / 10) for i in range(6)])
    summary = tally.summary()
    ids = [e["id"] for e in summary["worst"] + summary["best"]]
    assert sorted(ids) == [str(i) for i in range(6)]


def test_classification_ranks_confident_mistakes_worst_and_charts_confidence():
    tally = ReportTally()
    tally.add(
        [
            class_record(0, "a", "b", 0.99),
            class_record(1, "a", "b", 0.51),
            class_record(2, "a", "a", 0.97),
            class_record(3, "a", "a", 0.6),
        ]
        + [class_record(10 + i, "a", "a", 0.8) for i in range(30)]
    )
    summary = tally.summary()
    assert summary["score"] == "confidence" and summary["scored"] == 34
    assert [e["id"] for e in summary["worst"][:3]] == ["0", "1", "3"]
    assert summary["best"][0]["id"] == "2" and summary["best"][0]["correct"] is True
    assert summary["worst"][0]["prediction"] == "b" and summary["worst"][0]["reference"] == "a"


def test_text_answers_without_scores_are_ranked_but_not_charted():
    tally = ReportTally()
    tally.add([class_record(0, "a", "b", None), class_record(1, "a", "a", None)])
    summary = tally.summary()
    assert summary["histogram"] is None and summary["score"] is None
    assert summary["worst"][0]["id"] == "0"


def test_errors_are_counted_by_code_with_a_bounded_number_of_codes():
    tally = ReportTally()
    tally.add(
        [
            {"id": i, "prediction": None, "error": {"code": f"code-{i % 80}", "message": f"failed {i}"}}
            for i in range(400)
        ]
    )
    rows = tally.summary()["errors_by_code"]
    assert len(rows) == aggregate.MAX_CODES + 1
    assert sum(r["records"] for r in rows) == 400 and tally.failed == 400
    other = next(r for r in rows if r["code"] == aggregate.OTHER_CODE)
    assert other["records"] == 30 * 5 and other["example"] is None
    assert next(r for r in rows if r["code"] == "code-0")["example"] == "failed 0"


def test_clip_holds_the_escaped_json_budget_for_any_text():
    for text in ("x" * 5000, "\x01" * 5000, "\U0001f600" * 5000, '"\\' * 3000, HOSTILE * 100):
        clipped = aggregate.clip(text, 480)
        assert len(json.dumps(clipped)) <= 480 and clipped.endswith(aggregate.CLIPPED)
    assert aggregate.clip("short", 480) == "short"
    assert aggregate.clip({"a": [1]}, 480) == '{"a": [1]}'


def test_the_aggregates_of_a_hostile_run_fit_their_state_budget_and_the_contract():
    tally = ReportTally()
    worst_text = "\U0001f600\x01" * 20_000
    records = [rouge_record(worst_text * 2 + str(i), (i % 1000) / 1000, worst_text) for i in range(2000)]
    records += [
        {"id": i, "prediction": None, "error": {"code": worst_text + str(i), "message": worst_text}} for i in range(200)
    ]
    tally.add(records)
    summary = tally.summary()
    assert len(json.dumps(summary).encode()) <= REPORT_STATE_BUDGET  # ASCII-escaped: the largest encoding
    ReportAggregates.model_validate(summary)


def test_memory_stays_flat_as_records_grow():
    def peak(records: int) -> int:
        tally = ReportTally()
        tracemalloc.start()
        for start in range(0, records, 2048):
            tally.add([rouge_record(i, (i * 7919 % 1000) / 1000, "word " * 200) for i in range(start, start + 2048)])
        _, high = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return high

    small, large = peak(4096), peak(40960)
    assert large < small * 1.5, (small, large)


def test_fold_classes_keeps_the_busiest_and_sums_the_rest():
    labels = [f"c{i}" for i in range(30)]
    matrix = [[(i + 1) if i == j else 1 for j in range(30)] for i in range(30)]
    folded_labels, folded = charts.fold_classes(labels, matrix)
    assert len(folded_labels) == charts.MAX_CLASSES and folded_labels[-1] == charts.OTHER_CLASS
    assert sum(map(sum, folded)) == sum(map(sum, matrix))
    assert "c29" in folded_labels and "c0" not in folded_labels


def hostile_manifest() -> dict:
    return {
        "run_id": f"run{HOSTILE}",
        "pipeline": f"p{HOSTILE}",
        "backend": "sagemaker",
        "model": HOSTILE,
        "status": "PARTIAL",
        "input": {"bucket": "in", "key": f"p/{HOSTILE}.jsonl", "version_id": HOSTILE},
        "counts": {"total": 3, "valid": 3, "rejected": 0, "processed": 3, "succeeded": 2, "failed": 1},
        "cause": HOSTILE,
        "error": HOSTILE,
        "tokens": {"input_tokens": 12, "output_tokens": 3},
        "cost": {
            "usd": 0.5,
            "input_usd": 0.3,
            "output_usd": 0.2,
            "route": "batch",
            "model": HOSTILE,
            "prices_as_of": "2026-11-01",
            "source": f"https://aws.amazon.com/{HOSTILE}",
            "basis": HOSTILE,
        },
        "jobs": [{"name": HOSTILE, "state": "partial", "status": HOSTILE, "records": 3, "failure_reason": HOSTILE}],
        "model_invocations": {"total": 3, "by_job": {HOSTILE: 3}},
        "timings": {"started_at": "2026-12-01T00:00:00+00:00", "finished_at": HOSTILE, "duration_seconds": 12.5},
        "outputs": {"report": f"s3://out/runs/p/{HOSTILE}/report.html"},
    }


def test_every_string_a_record_or_model_supplies_is_escaped_in_a_run_report():
    tally = ReportTally()
    tally.add(
        [
            class_record(HOSTILE, HOSTILE, f"{HOSTILE}b", 0.9),
            class_record(2, HOSTILE, HOSTILE, 0.8),
            {"id": HOSTILE, "prediction": None, "error": {"code": HOSTILE, "message": HOSTILE}},
        ]
    )
    evaluation = {
        "metric": "classification",
        "records": 2,
        "scored": 2,
        "errors": 1,
        "missing": 0,
        "accuracy": 0.5,
        "macro_f1": 0.5,
        "multi_label": False,
        "per_class": {HOSTILE: {"precision": 1.0, "recall": 0.5, "f1": 0.66, "support": 2}},
        "confusion_matrix": {"labels": [HOSTILE, f"{HOSTILE}b"], "matrix": [[1, 1], [0, 0]]},
    }
    page = render_run_report(hostile_manifest(), evaluation, tally.summary())
    assert loading_problems(page) == []
    assert "<script" not in page.lower() and "<img" not in page.lower()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert 'data-chart="confusion matrix"' in page and 'data-chart="errors by reason"' in page
    assert "Chart not drawn" not in page


def test_a_rejection_report_escapes_file_names_lines_and_reasons():
    report = {
        "pipeline": "summarize",
        "input_format": "jumpstart-text2text",
        "policy": "reject",
        "input": {"bucket": "in", "key": f"summarize/{HOSTILE}.jsonl"},
        "reason": HOSTILE,
        "counts": {"total": 3, "valid": 1, "rejected": 2, "skipped": 0},
        "totals": {"lines": 3, "blank_lines": 0},
        "counts_by_reason": {HOSTILE: 2},
        "errors_reported": 2,
        "errors": [{"line": 1, "field": HOSTILE, "code": HOSTILE, "reason": HOSTILE}] * 2,
        "warnings": [HOSTILE],
    }
    page = render_rejection_report(report, rejected_copy=f"s3://out/rejected/{HOSTILE}", report_json="s3://out/r.json")
    assert loading_problems(page) == []
    assert "<script" not in page.lower() and "&lt;script&gt;" in page
    assert 'data-chart="bad lines by reason"' in page and "Chart not drawn" not in page


def test_the_page_check_finds_what_would_load():
    """The checks above can fail: each planted resource is found."""
    planted = [
        '<script src="https://cdn.example/pygal.js"></script>',
        "<style>@import url(x.css);</style>",
        '<img src="https://x/y.png">',
        '<div style="background:url(https://x/y)">',
        '<svg onload="f()">',
        '<link rel="stylesheet" href="https://fonts.example/css">',
        "<style>@font-face{src:url(f.woff)}</style>",
    ]
    for snippet in planted:
        assert loading_problems(f"<html><body>{snippet}</body></html>"), snippet


@pytest.mark.parametrize(
    "svg",
    [
        '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        '<svg xmlns="http://www.w3.org/2000/svg"><image href="https://x/y.png"/></svg>',
        '<svg xmlns="http://www.w3.org/2000/svg"><rect onclick="f()"/></svg>',
        '<svg xmlns="http://www.w3.org/2000/svg"><style>@import "https://x/y.css";</style></svg>',
    ],
)
def test_a_chart_that_carries_markup_is_refused(svg):
    with pytest.raises(charts.ChartError):
        charts.safe_svg(svg)


def test_a_rendered_chart_passes_its_own_check_and_escapes_labels():
    svg = charts.heatmap([HOSTILE, "b"], [[1, 2], [3, 4]])
    assert svg.startswith("<svg") and "<script" not in svg and "&lt;script&gt;" in svg
    assert loading_problems(f"<html><body>{svg}</body></html>") == []


def test_the_notification_names_the_report_and_its_console_page(monkeypatch):
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    manifest = {
        "run_id": "r1",
        "pipeline": "p",
        "status": "SUCCEEDED",
        "counts": {"total": 1},
        "outputs": {"manifest": "s3://b/runs/p/r1/manifest.json", "report": "s3://b/runs/p/r1/report.html"},
    }
    _, body, _ = run_message(manifest)
    assert "Report (open in a browser): s3://b/runs/p/r1/report.html" in body
    assert (
        "https://eu-west-1.console.aws.amazon.com/s3/object/b?region=eu-west-1&prefix=runs%2Fp%2Fr1%2Freport.html"
        in body
    )
    rejected = {
        "run_id": "r2",
        "pipeline": "p",
        "status": "rejected",
        "counts": {},
        "outputs": {
            "report": "s3://b/rejected/p/r2/f.jsonl.report.json",
            "report_html": "s3://b/rejected/p/r2/f.jsonl.report.html",
        },
    }
    _, body, _ = run_message(rejected)
    assert "Report (open in a browser): s3://b/rejected/p/r2/f.jsonl.report.html" in body
    assert "report: s3://b/rejected/p/r2/f.jsonl.report.json" in body


def test_console_links_only_where_the_console_is_the_commercial_one():
    assert console_url("s3://b/runs/", "us-east-1") == (
        "https://us-east-1.console.aws.amazon.com/s3/buckets/b?region=us-east-1&prefix=runs%2F"
    )
    assert console_url("s3://b/k", "cn-north-1") is None and console_url("s3://b/k", "us-gov-west-1") is None


def test_a_report_that_cannot_render_never_costs_the_run_its_manifest(monkeypatch):
    from batch_pipeline.results import finish

    def broken(*args: object) -> str:
        raise RuntimeError("renderer down")

    monkeypatch.setattr(finish, "render_run_report", broken)
    manifest = {"outputs": {"manifest": "s3://b/m.json", "report": "s3://b/report.html"}}
    page, error = finish.report_page(manifest, None, None)
    assert page is None and str(error) == "renderer down"
    assert manifest["outputs"] == {"manifest": "s3://b/m.json"}  # the manifest names no report it does not have
