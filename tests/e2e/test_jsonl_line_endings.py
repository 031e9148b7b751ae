"""JSONL is split on "\\n" (and "\\r\\n") only, everywhere: a bare CR between JSON tokens (valid JSON whitespace)
and a raw U+2028 inside a string run end to end in local mode instead of cutting a record in two."""

from __future__ import annotations

import json

from batch_pipeline.storage.jsonl import iter_lines, split_lines
from batch_pipeline_local.emulator.run import run_file
from tests.e2e.test_bedrock_runs import transcript


def hostile_lines(count: int) -> bytes:
    out = []
    for i in range(count):
        record = transcript(i, marker=" Line\u2028separator.")  # a raw U+2028 inside the request's text
        del record["reference"]  # so intake passes the line to the shard unchanged, CR and all
        text = json.dumps(record, ensure_ascii=False)
        out.append(text.replace(', "modelInput"', ',\r"modelInput"').encode("utf-8"))  # a bare CR between tokens
    return b"\r\n".join(out) + b"\n"


def test_the_shared_reader_splits_on_lf_and_crlf_only():
    data = b'{"a":\r1}\r\n{"b":"\xe2\x80\xa8"}\n\n{"c":3}'
    assert split_lines(data) == [b'{"a":\r1}', b'{"b":"\xe2\x80\xa8"}', b"", b'{"c":3}']
    assert list(iter_lines([data[:7], data[7:13], data[13:]])) == split_lines(data)


def test_bare_cr_and_u2028_run_on_demand_end_to_end(local, tmp_path):
    path = tmp_path / "cr.jsonl"
    path.write_bytes(hostile_lines(12))
    result = run_file(local, path, "bedrock-summarize")
    manifest = result.manifest
    assert manifest is not None, result.rejection
    assert manifest["status"] == "SUCCEEDED" and manifest["counts"]["succeeded"] == 12
    assert manifest["jobs"][0]["route"] == "on-demand"
