"""Streaming behaviour: chunk boundaries, over-long lines, error caps, policies, and what intake publishes."""

from __future__ import annotations

import json
from pathlib import Path

import orjson

from batch_pipeline.intake.stream import LocalDirSink, run_id_for, run_intake
from batch_pipeline.intake.validation import MAX_LINE_BYTES, MIB
from tests.fixtures.intake.pipelines import runtime


def lines(*records) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def test_crlf_split_across_chunks_is_still_a_line_ending():
    data = b'{"id": 1, "text_inputs": "a"}\r\n{"id": 2, "text_inputs": "b"}\r\n'
    cut = data.index(b"\r\n") + 1
    report = run_intake([data[:cut], data[cut:]], runtime("t2t")).report
    assert report["accepted"] and report["counts"]["valid"] == 2


def test_a_line_far_beyond_the_record_limit_is_never_buffered_whole():
    huge = b'{"recordId": "r", "modelInput": "' + b"x" * (MAX_LINE_BYTES + 1024) + b'"}\n'
    report = run_intake([huge[i : i + MIB] for i in range(0, len(huge), MIB)], runtime("claude")).report
    assert report["errors"][0]["code"] == "line_too_long" and report["errors"][0]["line"] == 1
    assert str(MAX_LINE_BYTES) in report["errors"][0]["reason"]


def test_only_the_first_n_errors_are_listed_but_all_are_counted():
    data = lines(*({"id": i, "text_inputs": ""} for i in range(10)))
    report = run_intake([data], runtime("t2t-small", max_records=100)).report  # max_errors_reported = 2
    assert [e["line"] for e in report["errors"]] == [1, 2]
    assert report["counts_by_reason"] == {"blank_text": 10} and report["errors_truncated"] is True


def test_skip_policy_publishes_only_valid_records_and_reports_the_rest(tmp_path):
    data = lines(
        {"id": 1, "text_inputs": "a", "reference": "ra"},
        {"id": 2, "text_inputs": " "},
        {"id": 3, "text_inputs": "c"},
        {"id": 1, "text_inputs": "again"},
    )
    result = run_intake([data], runtime("t2t-skip"), sink=LocalDirSink(tmp_path))
    assert result.accepted and result.report["counts"] == {"total": 4, "valid": 2, "rejected": 2, "skipped": 2}
    published = [orjson.loads(line) for shard in result.shards for line in Path(shard["key"]).read_bytes().splitlines()]
    assert sorted(r["id"] for r in published) == [1, 3]
    assert [orjson.loads(line) for line in (tmp_path / "references.jsonl").read_bytes().splitlines()] == [
        {"id": 1, "reference": "ra"}
    ]
    intake = json.loads((tmp_path / "intake.json").read_text())
    assert intake["counts"]["skipped"] == 2 and [e["line"] for e in intake["errors"]] == [2, 4]


def test_a_rejected_file_publishes_nothing(tmp_path):
    result = run_intake(
        [lines({"id": 1, "text_inputs": "a"}, {"id": 2, "text_inputs": ""})],
        runtime("t2t"),
        sink=LocalDirSink(tmp_path),
    )
    assert not result.accepted and list(tmp_path.iterdir()) == []


def test_group_by_length_orders_each_window_shortest_first(tmp_path):
    texts = ["x" * n for n in (50, 5, 30, 1, 20)]
    data = lines(*({"id": i, "text_inputs": t} for i, t in enumerate(texts)))
    result = run_intake(
        [data],
        runtime("t2t-hyper", sagemaker={"instance_type": "ml.c5.xlarge", "instance_count": 1, "group_by_length": True}),
        sink=LocalDirSink(tmp_path),
    )
    [shard] = result.shards
    assert [orjson.loads(line)["id"] for line in Path(shard["key"]).read_bytes().splitlines()] == [3, 1, 4, 2, 0]


def test_hyper_params_with_per_record_parameters_warns():
    report = run_intake([lines({"id": 1, "text_inputs": "a", "max_length": 9})], runtime("t2t-hyper")).report
    assert report["accepted"] and "hyper_params" in report["warnings"][0]


def test_run_id_is_deterministic_sanitised_and_short():
    run_id = run_id_for("uploads", "summarize/My Calls (2024).v2.jsonl", "3HL4kqtJvjVBH40Nrjfkd")
    assert run_id == run_id_for("uploads", "summarize/My Calls (2024).v2.jsonl", "3HL4kqtJvjVBH40Nrjfkd")
    assert run_id.startswith("My-Calls-2024-v2-") and len(run_id) <= 80
    assert run_id != run_id_for("uploads", "summarize/My Calls (2024).v2.jsonl", "another-version")
    assert run_id_for("b", "p/" + "a" * 200 + ".jsonl", "v").startswith("a" * 40 + "-")


GROUPED_ONE_SHARD = {"instance_type": "ml.c5.xlarge", "instance_count": 1, "group_by_length": True}


def test_split_lines_gives_every_line_with_one_newline_whatever_the_chunking():
    from batch_pipeline.intake.validation import split_lines

    data = b'{"a":1}\r\n\n{"b":2}\n  \r\n{"c":3}\r'
    expected = [b'{"a":1}\n', b"\n", b'{"b":2}\n', b"  \n", b'{"c":3}\n']
    for size in (1, 2, 3, 5, 8, len(data)):
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        assert [bytes(line) for line in split_lines(chunks, 1 << 20)] == expected, size


def test_shards_are_right_when_the_caller_reuses_one_buffer_for_every_chunk(tmp_path):
    # Lines are kept as views of their chunk until the window is written, which is only safe for bytes chunks.
    data = lines(*({"id": i, "text_inputs": "t" * (i % 7 + 1)} for i in range(200)))
    buffer = bytearray(256)

    def reused():
        for start in range(0, len(data), 256):
            piece = data[start : start + 256]
            buffer[: len(piece)] = piece
            yield buffer if len(piece) == 256 else bytearray(piece)

    result = run_intake(reused(), runtime("t2t", sagemaker=GROUPED_ONE_SHARD), sink=LocalDirSink(tmp_path))
    [shard] = result.shards
    published = [orjson.loads(line) for line in Path(shard["key"]).read_bytes().splitlines()]
    assert sorted(r["id"] for r in published) == list(range(200))
    assert all(r["text_inputs"] == "t" * (r["id"] % 7 + 1) for r in published)


def test_a_window_keeps_only_a_bounded_amount_of_input_and_copies_the_rest(tmp_path, monkeypatch):
    import batch_pipeline.intake.stream as intake

    # 4 KB windows (about 80 records) and one record per ~1 KB chunk, the rest blank lines: without the pin limit,
    # a window would keep some 80 KB of chunks alive for its 4 KB of records.
    monkeypatch.setattr(intake, "GROUP_WINDOW_BYTES", 4096)
    records = [{"id": i, "text_inputs": "x" * (i % 50 + 1)} for i in range(300)]
    chunks = [lines(record) + b" \n" * 480 for record in records]
    spilled = []
    original_add = intake._Spill._add_grouped

    def add(self, line, references, *record_id):
        original_add(self, line, references, *record_id)
        spilled.append(self._pinned)

    monkeypatch.setattr(intake._Spill, "_add_grouped", add)
    result = run_intake(chunks, runtime("t2t", sagemaker=GROUPED_ONE_SHARD), sink=LocalDirSink(tmp_path))
    assert max(spilled) <= 4096 + 1024
    [shard] = result.shards
    published = [orjson.loads(line) for line in Path(shard["key"]).read_bytes().splitlines()]
    assert sorted(published, key=lambda r: r["id"]) == records
