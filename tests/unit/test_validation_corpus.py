"""Every bad-input kind in tests/fixtures/intake/bad is rejected with its reason and line; every good file passes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batch_pipeline.intake.stream import run_intake
from tests.fixtures.intake.pipelines import runtime

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "intake"
BAD = json.loads((CORPUS / "bad" / "expected.json").read_text())
GOOD = json.loads((CORPUS / "good" / "expected.json").read_text())


def chunked(data: bytes, size: int):
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_the_corpus_covers_at_least_25_kinds_of_bad_input():
    assert len(BAD) >= 25
    assert len({case["code"] for case in BAD.values()}) >= 20


@pytest.mark.parametrize("name", sorted(BAD))
@pytest.mark.parametrize("chunk_size", [1, 7, 1 << 20])
def test_bad_file_is_rejected_with_line_and_reason(name, chunk_size):
    case = BAD[name]
    data = (CORPUS / "bad" / name).read_bytes()
    result = run_intake(chunked(data, chunk_size), runtime(case["pipeline"]))
    report = result.report
    assert report["accepted"] is False
    assert report["reason"]
    first = report["errors"][0]
    assert (first["line"], first["code"], first["field"]) == (case["line"], case["code"], case["field"]), first
    assert first["reason"]
    if "first_line" in case:
        assert first["first_line"] == case["first_line"]
        assert f"line {case['first_line']}" in first["reason"]
    assert report["counts_by_reason"][case["code"]] >= 1
    assert result.plan is None


@pytest.mark.parametrize("name", sorted(GOOD))
def test_good_file_is_accepted(name):
    case = GOOD[name]
    data = (CORPUS / "good" / name).read_bytes()
    report = run_intake(chunked(data, 5), runtime(case["pipeline"])).report
    assert report["accepted"] is True, report["errors"]
    assert report["counts"]["valid"] == case["valid"]
    assert report["counts"]["rejected"] == case.get("rejected", 0)
    assert report["counts"]["skipped"] == case.get("skipped", 0)
    assert report["counts"]["total"] == case["valid"] + case.get("rejected", 0)
    assert report["records_with_references"] == case.get("records_with_references", 0)
    assert report["ids_assigned"] is case.get("ids_assigned", False)
    assert report["totals"]["blank_lines"] == case.get("blank_lines", 0)
    assert report["totals"]["bytes"] == len(data)
    assert len(report["warnings"]) == case.get("warnings", 0), report["warnings"]
