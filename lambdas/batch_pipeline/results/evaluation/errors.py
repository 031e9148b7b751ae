"""What the evaluation could not score: its error, and how a report counts and quotes what failed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

__all__ = ["EXAMPLES_KEPT", "EvaluationError", "count_codes", "error_code"]

# How many examples of each problem a report quotes: enough to start debugging, not a second data file.
EXAMPLES_KEPT = 5


class EvaluationError(ValueError):
    """Inputs that cannot be evaluated at all (an unreadable references file, duplicate ids, an unknown metric)."""


def error_code(record: dict[str, Any]) -> str:
    """Why a record has no answer to score: its error's code, or `no_prediction`."""
    error = record.get("error")
    return str(error.get("code", "unknown")) if isinstance(error, dict) else "no_prediction"


def count_codes(codes: Iterable[str]) -> dict[str, int]:
    """Each code's count, sorted by code."""
    return dict(sorted(Counter(codes).items()))
