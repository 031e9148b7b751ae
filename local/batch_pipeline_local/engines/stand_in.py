"""How a local stand-in engine says what it is, in everything it writes: a label and a marker object.

Every log line, every output folder (a `_LOCAL_STAND_IN` object) and the fields a model would fill in (the Anthropic
`model` field, the transform job's engine tag) carry ENGINE_LABEL, so no local output can pass for a model's.
"""

from __future__ import annotations

ENGINE_LABEL = "local stand-in engine (not a model)"
MARKER_OBJECT = "_LOCAL_STAND_IN"


def marker_body(job_name: str) -> bytes:
    """The text of the marker object written beside a job's outputs."""
    return f"{ENGINE_LABEL}: outputs of {job_name} were written by the local engine, not by a model.\n".encode()
