"""Duplicate keys in one object, at any depth, are rejected naming the line and the key (orjson keeps the last value
silently). The byte-level pre-check may only ever rule duplicates OUT; these cases try to fool it."""

from __future__ import annotations

import json
import random

import orjson
import pytest

from batch_pipeline.intake.stream import run_intake
from batch_pipeline.intake.validation import duplicate_key, shape
from tests.fixtures.intake.pipelines import runtime


def found(line: bytes) -> str | None:
    return duplicate_key(line, shape(orjson.loads(line)))


@pytest.mark.parametrize(
    "line, key",
    [
        (b'{"id":1,"id":2}', "id"),
        (b'{"id" :1, "x": 2, "id"\t\t: 3}', "id"),
        (b'{"a": {"x": 1}, "a": {"y": 2}}', "a"),
        (b'{"m": [[{"k": 1}], [{"k": 1, "k": 1}]]}', "k"),
        (b'{"t": "colons: a: b: c: d", "\\u0069d": 1, "id": 2}', "id"),  # an escaped key is the same key
        (b'{"\xc3\xa9": 1, "\xc3\xa9": 2}', "\u00e9"),
    ],
)
def test_a_duplicate_key_at_any_depth_is_found(line, key):
    assert found(line) == key


@pytest.mark.parametrize(
    "line",
    [
        b'{"id": 1, "text": "a: b: c \\": \\" : d", "k": {"id": 2}}',  # same key in different objects is fine
        b'{"t": ":::", "u": [":", {"v": ":"}]}',
        b"{}",
        b'[1, 2, {"a": 1}]',
    ],
)
def test_no_false_duplicates(line):
    assert found(line) is None


def test_randomised_records_agree_with_a_full_duplicate_check():
    rng = random.Random(15)
    keys = ["id", "a", "b", ":", 'q"', "k:"]
    for _ in range(400):
        pairs = [(rng.choice(keys), rng.choice([1, "x: y", '": z', {"a": 1}, [":"]])) for _ in range(rng.randint(1, 4))]
        spaces = ["", " ", "\t"]
        line = (
            "{" + ", ".join(json.dumps(k) + rng.choice(spaces) + ": " + json.dumps(v) for k, v in pairs) + "}"
        ).encode()
        names = [k for k, _ in pairs]
        expected = next((k for i, k in enumerate(names) if k in names[:i]), None)
        assert found(line) == expected, line


def test_intake_rejects_two_model_inputs_naming_the_line_and_key():
    body = (
        b'{"anthropic_version": "bedrock-2023-05-31", "max_tokens": 10, '
        b'"messages": [{"role": "user", "content": "hi"}]}'
    )
    good = b'{"recordId": "r0", "modelInput": ' + body + b"}\n"
    data = good + b'{"recordId": "r1", "modelInput": {"max_tokens": 1}, "modelInput": ' + body + b"}\n"
    result = run_intake([data], runtime("claude", on_invalid="skip"))
    [error] = result.report["errors"]
    assert (error["line"], error["code"], error["field"]) == (2, "duplicate_key", "modelInput")
    assert "modelInput" in error["reason"] and "twice" in error["reason"]
