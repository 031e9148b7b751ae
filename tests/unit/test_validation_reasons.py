"""Right reasons, not wrong ones: ids too large for the backend, references that never reach the model, multi-label
labels, and labels outside candidate_labels (a warning, not a rejection). Each case failed on the old code."""

from __future__ import annotations

import orjson
import pytest

from batch_pipeline.intake.formats import INT_ID_MAX, INT_ID_MIN
from batch_pipeline.intake.stream import run_intake
from batch_pipeline.intake.validation import MAX_LINE_BYTES, MIB
from tests.fixtures.intake.pipelines import runtime


def intake(pipeline: str, data: bytes, **changes):
    return run_intake(
        [data[i : i + MIB] for i in range(0, len(data), MIB)] or [b""], runtime(pipeline, **changes)
    ).report


@pytest.mark.parametrize("literal", [str(INT_ID_MAX + 1), str(INT_ID_MIN - 1), "1" * 30, str(2**64), "-" + "9" * 25])
@pytest.mark.parametrize(
    "pipeline, template",
    [
        ("t2t", b'{"id": %s, "text_inputs": "x"}\n'),
        ("zs", b'{"id": %s, "sequences": "s", "candidate_labels": ["a"]}\n'),
        (
            "claude",
            b'{"recordId": %s, "modelInput": {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 10, '
            b'"messages": [{"role": "user", "content": "hi"}]}}\n',
        ),
        ("nova", b'{"id": %s, "prompt": "x"}\n'),
    ],
)
def test_an_integer_id_too_large_for_the_backend_says_so(pipeline, template, literal):
    [error] = intake(pipeline, template % literal.encode())["errors"]
    assert error["code"] == "invalid_id" and "too large" in error["reason"] and "64 bits" in error["reason"]


@pytest.mark.parametrize("value", [INT_ID_MAX, INT_ID_MIN, 0])
def test_integer_ids_at_the_64_bit_limits_are_accepted(value):
    assert intake("t2t", b'{"id": %d, "text_inputs": "x"}\n' % value)["accepted"]


@pytest.mark.parametrize(
    "pipeline, record",
    [
        ("t2t", {"id": 1, "text_inputs": "short", "reference": "r" * (5 * MIB)}),  # SageMaker limit here: 1 MiB
        (
            "claude",
            {
                "recordId": "r1",
                "modelInput": {
                    "anthropic_version": "bedrock-2023-05-31",
                    "max_tokens": 10,
                    "messages": [{"role": "user", "content": "hi"}],
                },
                "reference": "r" * (2 * MIB),
            },
        ),  # Bedrock limit here: 1 KB
        ("nova", {"id": 1, "prompt": "short", "reference": "r" * (2 * MIB)}),
    ],
)
def test_a_large_reference_does_not_count_against_the_model_record_limit(pipeline, record):
    report = intake(pipeline, orjson.dumps(record) + b"\n")
    assert report["accepted"], report["errors"]
    assert report["records_with_references"] == 1


def test_a_line_beyond_the_intake_line_cap_names_that_cap_not_the_model_limit():
    data = orjson.dumps({"id": 1, "text_inputs": "short", "reference": "r" * MAX_LINE_BYTES}) + b"\n"
    [error] = intake("t2t", data)["errors"]
    assert error["code"] == "line_too_long" and "references included" in error["reason"]


def test_the_model_ready_part_still_counts():
    data = orjson.dumps({"id": 1, "text_inputs": "w" * (2 * MIB), "reference": "short"}) + b"\n"
    [error] = intake("t2t", data)["errors"]
    assert error["code"] == "record_too_large"


def zs(label, multi_class=True, labels=("sports", "politics", "work")):
    return (
        orjson.dumps(
            {
                "id": 1,
                "sequences": "The vote and the match",
                "candidate_labels": list(labels),
                "multi_class": multi_class,
                "label": label,
            }
        )
        + b"\n"
    )


def test_multi_class_accepts_a_list_label():
    report = intake("zs", zs(["sports", "politics"]))
    assert report["accepted"] and report["warnings"] == []


@pytest.mark.parametrize(
    "label, multi_class, field",
    [
        (["sports"], False, "label"),  # one label per record without multi_class
        ([], True, "label"),
        (["sports", 3], True, "label[1]"),
        (["sports", " "], True, "label[1]"),
    ],
)
def test_bad_list_labels_are_rejected_naming_the_rule(label, multi_class, field):
    [error] = intake("zs", zs(label, multi_class))["errors"]
    assert (error["code"], error["field"]) == ("wrong_type", field)


@pytest.mark.parametrize(
    "pipeline, data",
    [
        ("zs", zs("cooking", multi_class=False)),
        ("zs", zs(["sports", "cooking"])),
        ("zs-prompt", b'{"id": 1, "prompt": "A late goal", "label": "cooking"}\n'),
    ],
)
def test_a_label_outside_candidate_labels_is_a_warning_not_a_rejection(pipeline, data):
    report = intake(pipeline, data)
    assert report["accepted"] and report["errors"] == []
    [warning] = report["warnings"]
    assert "not among their candidate_labels" in warning and "lines 1" in warning


def test_the_label_warning_names_a_bounded_number_of_lines():
    data = b"".join(orjson.dumps({"id": i, "prompt": "p", "label": "cooking"}) + b"\n" for i in range(50))
    [warning] = intake("zs-prompt", data)["warnings"]
    assert warning.startswith("50 records") and "lines 1, 2, 3, 4, 5, ...)" in warning


@pytest.mark.parametrize("depth", [1024, 1025, 5000, 200_000])
def test_nesting_beyond_the_parsers_own_limit_is_still_named_nesting(depth):
    line = b'{"id": 2, "text_inputs": "t", "x": ' + b"[" * depth + b"]" * depth + b"}\n"
    report = intake("t2t", b'{"id": 1, "text_inputs": "fine"}\n' + line)
    [error] = report["errors"]
    assert (error["line"], error["code"]) == (2, "nested_too_deep")
