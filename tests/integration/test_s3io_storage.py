"""The storage module under moto: one "not found" for every read, streamed lines, JSON, and the line writer."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from batch_pipeline.storage import s3io

BUCKET = "storage-test"


def test_a_missing_object_reads_as_none_wherever_it_is_read(s3):
    assert s3io.get_object(s3, BUCKET, "nope") is None
    assert s3io.read_json_if_exists(s3, BUCKET, "nope") is None
    assert s3io.lines_if_exists(s3, BUCKET, "nope") is None
    assert s3io.describe_object(s3, BUCKET, "nope") is None  # HeadObject says a bare 404
    assert s3io.object_exists(s3, BUCKET, "nope") is False
    # The reads that must find their object raise S3's own error.
    with pytest.raises(ClientError) as raised:
        s3io.lines(s3, BUCKET, "nope")
    assert s3io.is_not_found(raised.value)


def test_other_errors_are_not_taken_for_missing(s3):
    with pytest.raises(ClientError) as raised:
        s3io.get_object(s3, "no-such-bucket", "key")
    assert raised.value.response["Error"]["Code"] == "NoSuchBucket" and not s3io.is_not_found(raised.value)


def test_lines_stream_without_blank_lines_and_json_round_trips(s3):
    s3io.put_bytes(
        s3, BUCKET, "a.jsonl", b'{"id": 1}\n\n  \n{"id": 2}\r\n', s3io.JSONL, tagging="k=v", metadata={"n": "2"}
    )
    assert list(s3io.lines(s3, BUCKET, "a.jsonl")) == [b'{"id": 1}', b'{"id": 2}']
    head = s3.head_object(Bucket=BUCKET, Key="a.jsonl")
    assert head["ContentType"] == s3io.JSONL and head["Metadata"] == {"n": "2"}
    assert s3.get_object_tagging(Bucket=BUCKET, Key="a.jsonl")["TagSet"] == [{"Key": "k", "Value": "v"}]
    s3io.put_json(s3, BUCKET, "b.json", {"x": [1, "é"]})
    assert s3io.read_bytes(s3, BUCKET, "b.json") == b'{"x":[1,"\\u00e9"]}'
    assert s3io.read_json(s3, BUCKET, "b.json") == {"x": [1, "é"]}
    assert sorted(s3io.list_keys(s3, BUCKET, "")) == ["a.jsonl", "b.json"]


def test_the_line_writer_uploads_in_parts_and_aborts_on_failure(s3):
    part = 5 * 1024 * 1024
    with s3io.LineWriter(s3, BUCKET, "big.jsonl", part_bytes=part) as writer:
        for _ in range(3):
            writer.write(b"x" * (part - 1) + b"\n")
    assert s3.head_object(Bucket=BUCKET, Key="big.jsonl")["ContentLength"] == 3 * part
    with pytest.raises(RuntimeError), s3io.LineWriter(s3, BUCKET, "broken.jsonl", part_bytes=part) as writer:
        writer.write(b"y" * part)
        raise RuntimeError("the step died")
    assert s3io.get_object(s3, BUCKET, "broken.jsonl") is None
    assert not s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads")
