"""`batch-pipeline evaluate`'s join: reading references and joining raw predictions to them by `str(id)`.

A prediction that cannot be joined is never scored as an empty answer: it is counted (missing,
error, unmatched, duplicate, unidentified or invalid line) so the report shows every record. (A run's own join is
collect's, in the Lambda package: batch_pipeline.results.collect.)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from batch_pipeline.results.evaluation.errors import EXAMPLES_KEPT, EvaluationError
from batch_pipeline.results.outputs import OutputParseError, parse_output_line

__all__ = ["Joined", "Reference", "join_predictions", "parse_prediction_lines", "read_references"]


@dataclass(frozen=True, slots=True)
class Reference:
    id: str
    # A summary, or several (scored against the best), for ROUGE.
    text: str | tuple[str, ...] | None
    # One class, or a tuple of classes for multi-label references.
    label: str | tuple[str, ...] | None
    # 0-based index among the file's non-blank lines, for outputs that carry no id (see join_predictions).
    position: int = 0


def read_references(lines: Iterable[bytes | str]) -> dict[str, Reference]:
    """`{str(id): Reference}` in file order, from JSON lines with `id` or `recordId` and at least
    one of `reference`, `highlights` (text) or `label`. Lines with neither are skipped: an input
    file used as its own references file may have records without a target."""
    references: dict[str, Reference] = {}
    position = -1
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        position += 1
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            raise EvaluationError(f"references line {number} is not JSON: {error}") from None
        if not isinstance(obj, dict):
            raise EvaluationError(f"references line {number}: expected an object, got {type(obj).__name__}")
        raw_id = obj.get("id", obj.get("recordId"))
        if raw_id is None:
            raise EvaluationError(f"references line {number} has no id or recordId")
        text = _text(obj.get("reference", obj.get("highlights")), number)
        label = _label(obj.get("label"), number)
        if text is None and label is None:
            continue
        key = str(raw_id)
        if key in references:
            raise EvaluationError(f"references line {number}: duplicate id {key!r}; the join by id would be ambiguous")
        references[key] = Reference(key, text, label, position)
    return references


def _text(value: Any, number: int) -> str | tuple[str, ...] | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise EvaluationError(f"references line {number}: reference must be a string or a non-empty list of strings")


def _label(value: Any, number: int) -> str | tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, list):
        if not all(isinstance(item, (str, int)) and not isinstance(item, bool) for item in value):
            raise EvaluationError(f"references line {number}: a label list must hold strings or integers")
        return tuple(str(item) for item in value)
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    raise EvaluationError(f"references line {number}: label must be a string, an integer or a list of them")


@dataclass
class Joined:
    """Predictions keyed by the reference they belong to, and the count of everything that did not join."""

    by_id: dict[str, dict[str, Any]] = field(default_factory=dict)
    joined_by: str = "id"
    prediction_lines: int = 0
    invalid_lines: int = 0
    invalid_examples: list[str] = field(default_factory=list)
    unmatched: int = 0
    unmatched_examples: list[str] = field(default_factory=list)
    duplicates: int = 0
    unidentified: int = 0
    input_tokens: int | None = None
    output_tokens: int | None = None
    # Zero-shot outputs name every candidate label; classification needs them as known classes.
    candidate_labels: set[str] = field(default_factory=set)

    def count_tokens(self, record: dict[str, Any]) -> None:
        if record.get("input_tokens") is not None:
            self.input_tokens = (self.input_tokens or 0) + record["input_tokens"]
        if record.get("output_tokens") is not None:
            self.output_tokens = (self.output_tokens or 0) + record["output_tokens"]


def parse_prediction_lines(lines: Iterable[bytes | str], joined: Joined) -> Iterable[dict[str, Any]]:
    """Normalised records from raw output lines; unparseable lines are counted on `joined`."""
    for line in lines:
        if not line.strip():
            continue
        try:
            yield parse_output_line(line)
        except OutputParseError as error:
            joined.invalid_lines += 1
            joined.prediction_lines += 1
            if len(joined.invalid_examples) < EXAMPLES_KEPT:
                joined.invalid_examples.append(str(error))


def join_predictions(
    predictions: Iterable[dict[str, Any]],
    references: dict[str, Reference],
    joined: Joined | None = None,
) -> Joined:
    """Join normalised prediction records (see batch_pipeline.results.outputs) to the references.

    By `str(id)`, in any order. A second prediction for the same id counts as a duplicate and only
    replaces the first when the first was an error (a retried record). When no prediction carries
    an id at all (a zero-shot `.out` file, whose lines have none), the i-th prediction joins the
    reference read from the i-th non-blank references line (Batch Transform writes one output line
    per input line, in order, for one input file), so a references file that is the input file
    itself lines up even where some records carry no target; when only some predictions lack an
    id, those are counted as unidentified.
    """
    joined = joined or Joined()
    anonymous: list[dict[str, Any]] = []
    any_identified = False
    for record in predictions:
        joined.prediction_lines += 1
        joined.count_tokens(record)
        if record.get("labels"):
            joined.candidate_labels.update(str(label) for label in record["labels"])
        if record.get("id") is None:
            anonymous.append(record)
            continue
        any_identified = True
        _place(joined, str(record["id"]), record, references)
    if anonymous and not any_identified:
        joined.joined_by = "position"
        by_position = {reference.position: key for key, reference in references.items()}
        for position, record in enumerate(anonymous):
            key = by_position.get(position)
            if key is None:
                # An input line without a target (or beyond the references): nothing to score it against.
                joined.unmatched += 1
            else:
                _place(joined, key, record, references)
    else:
        joined.unidentified += len(anonymous)
    return joined


def _place(joined: Joined, key: str, record: dict[str, Any], references: dict[str, Reference]) -> None:
    if key not in references:
        joined.unmatched += 1
        if len(joined.unmatched_examples) < EXAMPLES_KEPT:
            joined.unmatched_examples.append(key)
        return
    previous = joined.by_id.get(key)
    if previous is None:
        joined.by_id[key] = record
        return
    joined.duplicates += 1
    if previous.get("error") is not None and record.get("error") is None:
        joined.by_id[key] = record
