"""Hostile input at the limits: deep nesting never crashes, and every reason stays bounded."""

from __future__ import annotations

import orjson
import pytest

from batch_pipeline.intake.service import NOTIFY_BODY_LIMIT, bounded_bytes
from batch_pipeline.intake.stream import run_intake
from batch_pipeline.intake.validation import MAX_NESTING, REASON_LIMIT, bounded, nesting_exceeds
from batch_pipeline.storage.layout import S3_KEY_LIMIT, rejected_name
from tests.fixtures.intake.pipelines import runtime


def nested(depth: int, leaf: object = "x") -> object:
    """A list `depth` levels deep, built without recursion (as a parser would see it)."""
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def raw_nested(prefix: bytes, depth: int, suffix: bytes) -> bytes:
    return prefix + b"[" * depth + b'"x"' + b"]" * depth + suffix + b"\n"


@pytest.mark.parametrize("depth", [MAX_NESTING - 1, MAX_NESTING, MAX_NESTING + 1, 300, 1000])
def test_nesting_bound_is_exact_and_iterative(depth):
    record = {"a": nested(depth)}  # the object itself is level 1
    assert nesting_exceeds(record) is (depth + 1 > MAX_NESTING)


@pytest.mark.parametrize(
    "pipeline, line",
    [
        ("zs", raw_nested(b'{"id": 1, "sequences": "s", "candidate_labels": ', 1000, b"}")),
        ("claude", raw_nested(b'{"modelInput": {"messages": ', 300, b"}}")),
        ("claude", raw_nested(b'{"recordId": "r", "modelInput": ', 300, b"}")),
        ("t2t", raw_nested(b'{"id": 1, "text_inputs": "t", "reference": ', 200, b"}")),
        ("t2t", raw_nested(b'{"id": 1, "text_inputs": "t", "unknown": ', 500, b"}")),
    ],
)
def test_deep_nesting_anywhere_is_rejected_with_its_line_not_a_crash(pipeline, line):
    good = {
        "zs": b'{"id": 7, "sequences": "s", "candidate_labels": ["a"]}\n',
        "t2t": b'{"id": 7, "text_inputs": "f"}\n',
    }.get(pipeline, b"")
    report = run_intake([good + line], runtime(pipeline)).report
    [error] = report["errors"]
    assert error["code"] == "nested_too_deep" and error["line"] == (2 if good else 1)
    assert str(MAX_NESTING) in error["reason"]


def test_nesting_at_the_bound_is_not_rejected_for_depth():
    line = raw_nested(b'{"id": 1, "text_inputs": "t", "extra": ', MAX_NESTING - 1, b"}")
    [error] = run_intake([line], runtime("t2t")).report["errors"]
    assert error["code"] == "unknown_field"


def test_bounded_marks_what_it_cut():
    assert bounded("short") == "short"
    cut = bounded("x" * 300_000)
    assert len(cut) == REASON_LIMIT and "truncated, " in cut


def test_a_300_kb_value_gives_a_bounded_reason():
    line = orjson.dumps({"id": 1, "sequences": "s", "candidate_labels": ["a", {"k": "y" * 300_000}]})
    report = run_intake([line + b"\n"], runtime("zs")).report
    [error] = report["errors"]
    assert len(error["reason"]) <= REASON_LIMIT and "truncated" in error["reason"]
    assert len(orjson.dumps(report)) < 10_000


def test_a_400_kb_id_used_twice_gives_a_bounded_duplicate_reason():
    record = {"id": "i" * 400_000, "text_inputs": "t"}
    report = run_intake([orjson.dumps(record) + b"\n" + orjson.dumps(record) + b"\n"], runtime("t2t")).report
    [error] = report["errors"]
    assert error["code"] == "duplicate_id" and error["line"] == 2 and error["first_line"] == 1
    assert len(error["reason"]) <= REASON_LIMIT


def test_a_400_kb_unknown_key_gives_a_bounded_field_and_reason():
    report = run_intake([orjson.dumps({"id": 1, "text_inputs": "t", "k" * 400_000: 1}) + b"\n"], runtime("t2t")).report
    [error] = report["errors"]
    assert len(error["field"]) <= 200 and len(error["reason"]) <= REASON_LIMIT


def test_bounded_bytes_counts_utf8_bytes_and_never_splits_a_character():
    text = "é" * 200_000  # 400,000 bytes
    cut = bounded_bytes(text, NOTIFY_BODY_LIMIT)
    assert len(cut.encode("utf-8")) <= NOTIFY_BODY_LIMIT and "truncated" in cut
    assert bounded_bytes("ok", 10) == "ok"


@pytest.mark.parametrize("name", ["a" * 1200 + ".jsonl", "é" * 700 + ".jsonl", "short.jsonl"])
def test_rejected_copy_names_fit_the_s3_key_limit_and_stay_unique(name):
    prefix = "rejected/t2t/" + "r" * 60 + "/"
    chosen = rejected_name(prefix, name)
    assert len((prefix + chosen + ".report.json").encode("utf-8")) <= S3_KEY_LIMIT
    if len(name.encode()) < 900:
        assert chosen == name
    else:
        assert rejected_name(prefix, name[:-7] + "b.jsonl") != chosen  # differs only past the cut: still unique


GOOD_LINES = b'{"id": 1, "text_inputs": "a"}\n{"id": 2, "text_inputs": "b"}\n'


def _compressed():
    import bz2
    import gzip
    import io
    import lzma
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.jsonl", GOOD_LINES)
    zstd = b"\x28\xb5\x2f\xfd" + b"\x00" * 16  # the Zstandard frame magic (RFC 8878) and a frame we never read
    return [
        ("gzip", gzip.compress(GOOD_LINES, mtime=0)),
        ("zip", buffer.getvalue()),
        ("zstd", zstd),
        ("bzip2", bz2.compress(GOOD_LINES)),
        ("xz", lzma.compress(GOOD_LINES)),
    ]


@pytest.mark.parametrize("kind, data", _compressed())
def test_compressed_files_are_named_by_their_magic_bytes(kind, data):
    report = run_intake([data], runtime("t2t")).report
    assert report["accepted"] is False and report["reason"].startswith(f"compressed file ({kind})")


@pytest.mark.parametrize(
    "encoding, expected",
    [
        ("utf-16-le", "UTF-16"),
        ("utf-16-be", "UTF-16"),
        ("utf-16", "UTF-16"),
        ("utf-32-le", "UTF-32"),
        ("utf-32-be", "UTF-32"),
        ("utf-32", "UTF-32"),
    ],
)
def test_utf16_and_utf32_with_or_without_bom_are_named(encoding, expected):
    report = run_intake([GOOD_LINES.decode().encode(encoding)], runtime("t2t")).report
    assert report["accepted"] is False and expected in report["reason"]
    assert ("UTF-32" if expected == "UTF-16" else "UTF-16") not in report["reason"]


def test_a_cr_only_file_is_told_it_has_cr_line_endings():
    report = run_intake([GOOD_LINES.replace(b"\n", b"\r")], runtime("t2t")).report
    assert report["accepted"] is False and "CR (old Mac) line endings" in report["errors"][0]["reason"]


def test_multi_class_accepts_a_list_label_and_single_class_does_not():
    multi = {"id": 1, "sequences": "s", "candidate_labels": ["a", "b"], "multi_class": True, "label": ["a", "b"]}
    assert run_intake([orjson.dumps(multi) + b"\n"], runtime("zs")).report["accepted"]
    single = {**multi, "multi_class": False}
    report = run_intake([orjson.dumps(single) + b"\n"], runtime("zs")).report
    assert not report["accepted"] and report["errors"][0]["field"] == "label"


def test_a_label_outside_candidate_labels_is_a_warning_not_a_rejection():
    record = {"id": 1, "sequences": "s", "candidate_labels": ["a", "b"], "label": "c"}
    report = run_intake([orjson.dumps(record) + b"\n"], runtime("zs")).report
    assert report["accepted"] and any(
        "not among their candidate_labels" in w and "line" in w for w in report["warnings"]
    )
