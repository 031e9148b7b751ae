"""The one JSON Lines line reader: records are separated by "\\n" (a "\\r\\n" ending loses its "\\r"), nothing else.

`bytes.splitlines` (and botocore's `iter_lines`, built on it) also splits on a bare "\\r", and `str.splitlines` on
U+2028, U+0085 and more; a bare CR is valid JSON whitespace between tokens (RFC 8259 section 2) and U+2028 may appear
raw inside a JSON string, so those readers cut valid records in two. Every JSONL reader goes through here.
Lines are yielded without their ending; blank lines are yielded too, so positions stay file line numbers.
(Intake's own validator splits chunks into memoryviews itself, for speed, by the same rule.)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

CHUNK_BYTES = 1024 * 1024


def iter_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The lines of a stream of byte chunks, split on "\\n" only."""
    pending = b""
    for chunk in chunks:
        if not chunk:
            continue
        parts = (pending + chunk).split(b"\n")
        pending = parts.pop()
        for line in parts:
            yield line[:-1] if line.endswith(b"\r") else line
    if pending:
        yield pending[:-1] if pending.endswith(b"\r") else pending


def split_lines(data: bytes) -> list[bytes]:
    """The lines of one whole object or file."""
    return list(iter_lines((data,)))


def body_lines(body: Any, chunk_size: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The lines of a botocore StreamingBody, read chunk by chunk (instead of its `iter_lines`, which splits on CR)."""
    return iter_lines(body.iter_chunks(chunk_size))
