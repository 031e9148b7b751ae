"""Deterministic physical names derived from the stack name, within a service's length limit."""

from __future__ import annotations

import hashlib


def short_hash(text: str, length: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def stack_scoped_name(stack_name: str, suffix: str, max_length: int) -> str:
    """`<stack>-<suffix>`; a name too long keeps a hash of the whole so two long stack names never collide."""
    name = f"{stack_name}-{suffix}"
    if len(name) <= max_length:
        return name
    tail = f"-{short_hash(name)}-{suffix}"
    return f"{stack_name[: max_length - len(tail)].rstrip('-')}{tail}"
