"""iter_tokens against recorded-style TGI streams, cut into events at every byte and at random."""

from __future__ import annotations

import json
import random
from itertools import pairwise

import pytest

from batch_pipeline_local.realtime import StreamError, iter_tokens

# A TGI answer with text that spans multi-byte UTF-8 (2-, 3- and 4-byte characters), a newline inside
# a token (escaped in JSON, so it never splits a line) and a closing special token.
TOKENS = [
    (" Hello", False),
    (",", False),
    (" café", False),
    (" 日本語", False),
    (" 🙂", False),
    ("\n", False),
    ("1.", False),
    (" Ünïcödé ✓", False),
    ("<|endoftext|>", True),
]
TEXTS = [text for text, special in TOKENS if not special]
ALL_TEXTS = [text for text, _ in TOKENS]


def tgi_line(index: int, text: str, special: bool, *, last: bool) -> dict:
    return {
        "token": {"id": 1000 + index, "text": text, "logprob": -0.25, "special": special},
        "generated_text": "".join(TEXTS) if last else None,
        "details": None,
    }


def messages() -> list[dict]:
    return [tgi_line(i, text, special, last=i == len(TOKENS) - 1) for i, (text, special) in enumerate(TOKENS)]


def sse_stream(newline: bytes = b"\n") -> bytes:
    """Server-sent events as TGI writes them: `data:{json}` plus a blank line, with keep-alive comments."""
    parts = []
    for i, message in enumerate(messages()):
        if i == 3:
            parts.append(b":" + newline + newline)  # keep-alive comment
        parts.append(b"data:" + json.dumps(message, ensure_ascii=False).encode() + newline + newline)
    return b"".join(parts)


def sse_stream_without_separators() -> bytes:
    """`data: ` lines back to back with no blank lines (some proxies) and a space after the colon."""
    return b"".join(b"data: " + json.dumps(m, ensure_ascii=False).encode() + b"\n" for m in messages())


def json_lines_stream() -> bytes:
    """Bare JSON lines (LMI/DJL style), with blank keep-alive lines; ASCII-escaped on one line to vary the bytes."""
    lines = []
    for i, message in enumerate(messages()):
        lines.append(json.dumps(message, ensure_ascii=i % 2 == 0).encode() + b"\n")
        if i in (0, 4):
            lines.append(b"\n")
    return b"".join(lines)


STREAMS = {
    "sse": sse_stream(),
    "sse-crlf": sse_stream(b"\r\n"),
    "sse-no-separators": sse_stream_without_separators(),
    "json-lines": json_lines_stream(),
}


def events(chunks: list[bytes]) -> list[dict]:
    return [{"PayloadPart": {"Bytes": chunk}} for chunk in chunks]


def cut(data: bytes, positions: list[int]) -> list[bytes]:
    bounds = [0, *sorted(positions), len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]


def test_sample_streams_hold_multibyte_characters_split_by_some_cut():
    # Guards the test data itself: a cut inside a character only happens if such characters exist.
    for data in STREAMS.values():
        assert any(byte >= 0xF0 for byte in data) or b"\\ud83d" in data


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_whole_stream_in_one_event(name):
    assert list(iter_tokens(events([STREAMS[name]]))) == TEXTS


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_every_single_cut_position(name):
    data = STREAMS[name]
    for position in range(len(data) + 1):
        got = list(iter_tokens(events(cut(data, [position]))))
        assert got == TEXTS, f"cut at byte {position}"


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_one_byte_per_event(name):
    data = STREAMS[name]
    assert list(iter_tokens(events([data[i : i + 1] for i in range(len(data))]))) == TEXTS


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_random_cuts_seeded(name):
    data = STREAMS[name]
    rng = random.Random(f"iter-tokens-{name}")
    for trial in range(300):
        positions = rng.sample(range(1, len(data)), k=rng.randint(1, 40))
        chunks = cut(data, positions)
        # Empty events happen too (a PayloadPart with no bytes must change nothing).
        if trial % 7 == 0:
            chunks.insert(rng.randrange(len(chunks) + 1), b"")
        assert list(iter_tokens(events(chunks))) == TEXTS, f"trial {trial}, cuts {sorted(positions)}"


def test_several_lines_per_event_and_lines_across_events():
    data = json_lines_stream()
    lines = data.splitlines(keepends=True)
    # Three lines in the first event, then one line spread over three events, then the rest at once.
    chunks = [b"".join(lines[:3]), lines[3][:5], lines[3][5:9], lines[3][9:], b"".join(lines[4:])]
    assert list(iter_tokens(events(chunks))) == TEXTS


def test_cut_inside_a_four_byte_character():
    data = sse_stream()
    emoji = "🙂".encode()
    start = data.index(emoji)
    for offset in range(1, len(emoji)):
        assert list(iter_tokens(events(cut(data, [start + offset])))) == TEXTS


def test_special_tokens_only_when_asked():
    data = sse_stream()
    assert list(iter_tokens(events([data]))) == TEXTS
    assert list(iter_tokens(events([data]), include_special=True)) == ALL_TEXTS
    assert "".join(iter_tokens(events([data]), include_special=True)).endswith("<|endoftext|>")


def test_token_without_special_flag_counts_as_text():
    line = b'{"token": {"id": 7, "text": " hi", "log_prob": -0.3}}\n'
    assert list(iter_tokens(events([line]))) == [" hi"]


def test_stream_without_final_newline_still_yields_last_token():
    data = json_lines_stream().rstrip(b"\n")
    assert (
        list(
            iter_tokens(events([data])),
        )
        == TEXTS
    )


def test_empty_stream_and_keep_alives_only():
    assert list(iter_tokens([])) == []
    assert list(iter_tokens(events([b"\n", b"\r\n", b": ping\n\n", b"event: message\n", b"data:\n\n"]))) == []


def test_tokens_arrive_before_the_stream_ends():
    first, rest = cut(sse_stream(), [sse_stream().index(b"\n\n") + 2])

    def live_events():
        yield {"PayloadPart": {"Bytes": first}}
        raise AssertionError("the parser asked for the next event before yielding the token it had")

    tokens = iter_tokens(live_events())
    assert next(tokens) == " Hello"


def test_unknown_event_types_are_ignored():
    data = sse_stream()
    stream = [{"SomeFutureEvent": {}}, *events([data])]
    assert list(iter_tokens(stream)) == TEXTS


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            {"ModelStreamError": {"Message": "CUDA out of memory", "ErrorCode": "ModelError"}},
            "ModelStreamError ModelError: 'CUDA out of memory'",
        ),
        ({"InternalStreamFailure": {"Message": "stream broke"}}, "InternalStreamFailure: 'stream broke'"),
    ],
)
def test_error_events_raise_after_the_tokens_before_them(event, expected):
    data = sse_stream()
    first_two_lines_end = data.index(b"\n\n", data.index(b"\n\n") + 2) + 2
    received = []
    with pytest.raises(StreamError) as caught:
        for token in iter_tokens([*events([data[:first_two_lines_end]]), event, *events([data[first_two_lines_end:]])]):
            received.append(token)
    assert received == TEXTS[:2]
    assert expected in str(caught.value)


@pytest.mark.parametrize("prefix", [b"data:", b""])
def test_error_line_raises_at_every_cut(prefix):
    error_line = (
        prefix
        + b'{"error": "Input validation error: inputs must have less than 2048 tokens", "error_type": "validation"}\n'
    )
    head = json_lines_stream().splitlines(keepends=True)[0]
    data = head + error_line
    for position in range(len(data) + 1):
        received = []
        with pytest.raises(
            StreamError, match=r"endpoint reported validation: 'Input validation error: inputs must have less"
        ):
            for token in iter_tokens(events(cut(data, [position]))):
                received.append(token)
        assert received == [" Hello"], f"cut at byte {position}"


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        (
            b'data:{"token": {"id": 1, "text": " Hel\n',
            'malformed stream line: \'data:{"token": {"id": 1, "text": " Hel\'',
        ),
        (b"<html>502 Bad Gateway</html>\n", "malformed stream line: '<html>502 Bad Gateway</html>'"),
        (b'{"generated_text": "whole answer, not streamed"}\n', 'no token text: \'{"generated_text": "whole answer'),
        (b'[{"generated_text": "x"}]\n', 'no token text: \'[{"generated_text": "x"}]\''),
        (b'{"token": {"id": 1, "text": 5}}\n', "no token text"),
        (b"data:\xff\xfe not utf-8\n", "malformed stream line"),
    ],
)
def test_malformed_lines_raise_showing_what_arrived(line, shown):
    with pytest.raises(StreamError) as caught:
        list(iter_tokens(events([json_lines_stream().splitlines(keepends=True)[0], line])))
    assert shown in str(caught.value)


def test_long_malformed_line_is_truncated_in_the_message():
    line = b"x" * 10_000 + b"\n"
    with pytest.raises(StreamError) as caught:
        list(iter_tokens(events([line])))
    message = str(caught.value)
    assert len(message) < 400
    assert "(10000 chars)" in message


def test_stream_ending_inside_a_line_raises():
    data = sse_stream()
    with pytest.raises(StreamError, match="stream ended inside a line"):
        list(iter_tokens(events([data[:-20]])))


@pytest.mark.parametrize(
    "event",
    [b"raw bytes, not an event", {"PayloadPart": {}}, {"PayloadPart": {"Bytes": "a str, not bytes"}}],
)
def test_events_of_the_wrong_shape_raise(event):
    with pytest.raises(StreamError):
        list(iter_tokens([event]))
