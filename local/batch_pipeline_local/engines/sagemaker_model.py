"""The two "models" of the SageMaker stand-in, answering one JumpStart record each: they exercise the pipeline.

  - text2text: a Python-literal line `{'id': ..., 'generated_texts': [...]}`, as the JumpStart container prints it.
    The "summary" is the first sentence(s) of the text, with a leading instruction ("Briefly summarize this
    text: ") removed, cut to `max_length` words.
  - zero-shot: a JSON line `{"sequence", "labels", "scores"}`, no id. A label scores by how many words of the text
    start like a word of the label; scores sum to 1 (independent in (0, 1) when `multi_class`), labels sorted by
    score, highest first.

HYPER_PARAMS (a Python-literal dict) overrides per-record parameters, as the JumpStart container does. A record the
real container would refuse raises EngineFailure, whose message is the job's FailureReason.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping
from typing import Any, TypedDict

DEFAULT_MAX_LENGTH = 50

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# A short leading instruction such as "Briefly summarize this text: " is not part of the article.
_INSTRUCTION = re.compile(r"^[^.!?:\n]{1,80}:\s+")
_WORD = re.compile(r"[a-z0-9]+")


class EngineFailure(Exception):
    """The job fails with this FailureReason."""


def summarize(text: str, max_length: int = DEFAULT_MAX_LENGTH, start_sentence: int = 0) -> str:
    """First sentence(s) from `start_sentence` on, at most `max_length` words; deterministic."""
    body = _INSTRUCTION.sub("", text.strip(), count=1)
    sentences = [s for s in _SENTENCE_END.split(body) if s.strip()] or [body]
    chosen: list[str] = []
    words = 0
    for sentence in sentences[start_sentence % len(sentences) :]:
        count = len(sentence.split())
        if chosen and words + count > max_length:
            break
        chosen.append(sentence.strip())
        words += count
    summary_words = " ".join(chosen).split()[: max(1, int(max_length))]
    return " ".join(summary_words)


class Classification(TypedDict):
    """The zero-shot container's answer for one sequence."""

    sequence: str
    labels: list[str]
    scores: list[float]


def classify(sequence: str, labels: list[str], multi_class: bool = False) -> Classification:
    """Label-word overlap scores, labels sorted by score (ties keep the given order)."""
    tokens = _WORD.findall(sequence.lower())
    hits = []
    for label in labels:
        stems = [word[:5] for word in _WORD.findall(label.lower())]
        hits.append(sum(1 for token in tokens if any(token.startswith(stem) for stem in stems)))
    if multi_class:
        raw = [(h + 0.1) / (h + 1.1) for h in hits]
        scores = raw
    else:
        raw = [1.0 + 3.0 * h for h in hits]
        scores = [value / sum(raw) for value in raw]
    order = sorted(range(len(labels)), key=lambda i: -scores[i])
    return {"sequence": sequence, "labels": [labels[i] for i in order], "scores": [scores[i] for i in order]}


def _labels(value: Any) -> list[str]:
    if isinstance(value, str):
        return [label.strip() for label in value.split(",") if label.strip()]
    if isinstance(value, list) and value and all(isinstance(label, str) for label in value):
        return value
    raise EngineFailure(f"candidate_labels must be a list of strings, got {value!r:.80}")


def hyper_params_of(environment: Mapping[str, str] | None) -> dict[str, Any] | None:
    text = (environment or {}).get("HYPER_PARAMS")
    if text is None:
        return None
    try:
        params = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise EngineFailure(f"ClientError: HYPER_PARAMS is not a Python-literal dict: {text!r:.120}") from None
    if not isinstance(params, dict):
        raise EngineFailure(f"ClientError: HYPER_PARAMS must be a dict, got {type(params).__name__}")
    return params


def answer(
    record: dict[str, Any], task: str | None, hyper_params: dict[str, Any] | None, line_number: int, key: str
) -> str:
    """One output line for one input record."""
    task = task or ("zero-shot" if "sequences" in record else "text2text" if "text_inputs" in record else None)
    if task == "zero-shot":
        sequence = record.get("sequences")
        if isinstance(sequence, list) and len(sequence) == 1:
            sequence = sequence[0]
        if not isinstance(sequence, str):
            raise EngineFailure(f"ClientError: {key} line {line_number}: 'sequences' must be a string")
        params = hyper_params if hyper_params is not None else record
        result = classify(sequence, _labels(record.get("candidate_labels")), bool(params.get("multi_class", False)))
        return json.dumps(result)
    if task == "text2text":
        text = record.get("text_inputs")
        if not isinstance(text, str):
            raise EngineFailure(f"ClientError: {key} line {line_number}: 'text_inputs' must be a string")
        params = hyper_params if hyper_params is not None else record
        max_length = int(params.get("max_length", DEFAULT_MAX_LENGTH))
        count = max(1, int(params.get("num_return_sequences", 1)))
        texts = [summarize(text, max_length, start) for start in range(count)]
        # The JumpStart container prints a Python dict, not JSON (see the FLAN-T5 batch transform article).
        return repr({"id": record.get("id"), "generated_texts": texts})
    raise EngineFailure(f"ClientError: {key} line {line_number}: neither text_inputs nor sequences in the record")
