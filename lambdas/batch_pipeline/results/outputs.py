"""One parser for every line a model run produces, normalised to a single record shape.

Accepted lines:
  - SageMaker Batch Transform `.out` lines. JumpStart containers write Python-literal dicts
    (`{'id': 0, 'generated_texts': ['...']}`), other containers JSON; zero-shot lines carry
    `sequence`/`labels`/`scores` and no id.
  - Bedrock batch `.jsonl.out` lines: `recordId`, `modelInput` and either `modelOutput`
    (Anthropic Messages, Amazon Nova / Converse, Titan Text) or an `error` object.
  - Our own `predictions.jsonl` lines, so evaluation can read them back through the same door.

Python literals are read with `ast.literal_eval` (literals only, never `eval`): a model's output
must never be able to run code in our account.
"""

from __future__ import annotations

import ast
from typing import Any

import orjson

__all__ = ["OutputParseError", "load_output_line", "normalise_output", "parse_output_line"]

# How much of an unparseable line an error message quotes: enough to recognise it, not a whole article.
_QUOTE_CHARS = 160


class OutputParseError(ValueError):
    """A line that is none of the accepted output shapes; the message names what arrived."""


def parse_output_line(line: str | bytes) -> dict[str, Any]:
    """Normalise one output line to
    `{"id", "prediction", "labels", "scores", "error", "input_tokens", "output_tokens"}`."""
    return normalise_output(load_output_line(line))


def load_output_line(line: str | bytes) -> Any:
    """The line as a Python value (JSON first, then Python literal); for callers that need raw fields too,
    e.g. collect reads zero-shot `sequence` to check its positional join."""
    return _load(line)


def normalise_output(obj: Any) -> dict[str, Any]:
    """Normalise an already loaded output line; see parse_output_line."""
    if isinstance(obj, list) and len(obj) == 1 and isinstance(obj[0], dict):
        # Hugging Face pipelines answer a one-element list when the request carried a list.
        obj = obj[0]
    if not isinstance(obj, dict):
        raise OutputParseError(f"expected an object per line, got {type(obj).__name__}: {_quote(repr(obj))}")

    if "modelOutput" in obj or ("recordId" in obj and "error" in obj):
        return _bedrock(obj)
    if "generated_texts" in obj or "generated_text" in obj:
        return _text2text(obj)
    if "prediction" in obj:
        # Checked before zero-shot: our zero-shot predictions also carry labels and scores.
        return _ours(obj)
    if "labels" in obj and "scores" in obj:
        return _zero_shot(obj)
    raise OutputParseError(
        f"unrecognised output line with keys {sorted(map(str, obj))}: expected generated_texts, "
        f"sequence/labels/scores, recordId/modelOutput or error, or prediction"
    )


def _record(
    id: Any = None,
    prediction: str | None = None,
    labels: list[Any] | None = None,
    scores: list[Any] | None = None,
    error: dict[str, Any] | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
) -> dict[str, Any]:
    return {
        "id": id,
        "prediction": prediction,
        "labels": labels,
        "scores": scores,
        "error": error,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
    }


def _load(line: str | bytes) -> Any:
    if isinstance(line, (bytes, bytearray, memoryview)):
        try:
            text = bytes(line).decode("utf-8")
        except UnicodeDecodeError as error:
            raise OutputParseError(f"output line is not UTF-8 ({error}): {_quote(line)}") from None
    elif isinstance(line, str):
        text = line
    else:
        raise OutputParseError(f"expected str or bytes, got {type(line).__name__}")
    text = text.strip()
    if not text:
        raise OutputParseError("empty output line")
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    try:
        # Python literals: JumpStart's `{'id': 0, ...}`, and documentation examples that mix both quote styles.
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise OutputParseError(f"output line is neither JSON nor a Python literal: {_quote(text)}") from None


def _quote(line: Any) -> str:
    text = line if isinstance(line, str) else repr(line)
    return repr(text[:_QUOTE_CHARS] + ("..." if len(text) > _QUOTE_CHARS else ""))


def _text2text(obj: dict[str, Any]) -> dict[str, Any]:
    texts = obj.get("generated_texts", obj.get("generated_text"))
    if isinstance(texts, str):
        prediction = texts
    elif isinstance(texts, (list, tuple)) and texts and isinstance(texts[0], str):
        prediction = texts[0]
    else:
        raise OutputParseError(f"generated_texts must be a non-empty list of strings, got {texts!r:.{_QUOTE_CHARS}}")
    return _record(id=obj.get("id"), prediction=prediction)


def _zero_shot(obj: dict[str, Any]) -> dict[str, Any]:
    labels, scores = obj["labels"], obj["scores"]
    if not isinstance(labels, (list, tuple)) or not isinstance(scores, (list, tuple)):
        raise OutputParseError(
            f"zero-shot labels and scores must be lists, got {type(labels).__name__}/{type(scores).__name__}"
        )
    if len(labels) != len(scores) or not labels:
        raise OutputParseError(f"zero-shot output has {len(labels)} labels and {len(scores)} scores")
    try:
        scores = [float(score) for score in scores]
    except (TypeError, ValueError):
        raise OutputParseError(f"zero-shot scores must be numbers, got {scores!r:.{_QUOTE_CHARS}}") from None
    # The container sorts labels by score already; taking the maximum does not rely on it.
    top = max(range(len(scores)), key=scores.__getitem__)
    return _record(
        id=obj.get("id"), prediction=str(labels[top]), labels=[str(label) for label in labels], scores=scores
    )


def _bedrock(obj: dict[str, Any]) -> dict[str, Any]:
    record_id = obj.get("recordId")
    error = obj.get("error")
    if error is not None:
        return _record(id=record_id, error=_error(error))
    output = obj["modelOutput"]
    if not isinstance(output, dict):
        raise OutputParseError(f"modelOutput must be an object, got {type(output).__name__} (recordId {record_id!r})")
    text, input_tokens, output_tokens = _model_text(output, record_id)
    return _record(id=record_id, prediction=text, input_tokens=input_tokens, output_tokens=output_tokens)


def _model_text(output: dict[str, Any], record_id: Any) -> tuple[str, int | None, int | None]:
    usage: dict[str, Any] = output["usage"] if isinstance(output.get("usage"), dict) else {}
    if isinstance(output.get("content"), list):
        # Anthropic Messages: the answer is the first text block (thinking or tool blocks may precede it).
        for block in output["content"]:
            if isinstance(block, dict) and block.get("type", "text") == "text" and isinstance(block.get("text"), str):
                return block["text"], _int(usage.get("input_tokens")), _int(usage.get("output_tokens"))
        raise OutputParseError(f"Anthropic modelOutput has no text content block (recordId {record_id!r})")
    if isinstance(output.get("output"), dict):
        # Amazon Nova and Converse: output.message.content[] blocks, camelCase usage, stopReason. The answer is the
        # first text block (a reasoningContent block may precede it).
        message = output["output"].get("message")
        content = message.get("content") if isinstance(message, dict) else None
        for block in content if isinstance(content, list) else ():
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                return block["text"], _int(usage.get("inputTokens")), _int(usage.get("outputTokens"))
        raise OutputParseError(
            f"Nova/Converse modelOutput has no text block in output.message.content (recordId {record_id!r}, "
            f"stopReason {output.get('stopReason')!r})"
        )
    if isinstance(output.get("results"), list):
        # Titan Text: results[0].outputText, with token counts outside a usage object.
        try:
            result = output["results"][0]
            text = result["outputText"]
        except (KeyError, IndexError, TypeError):
            raise OutputParseError(f"Titan modelOutput has no results[0].outputText (recordId {record_id!r})") from None
        return str(text), _int(output.get("inputTextTokenCount")), _int(result.get("tokenCount"))
    raise OutputParseError(
        f"unrecognised modelOutput with keys {sorted(map(str, output))} (recordId {record_id!r}): "
        f"expected Anthropic content, Nova output.message or Titan results"
    )


def _error(error: Any) -> dict[str, Any]:
    if isinstance(error, dict):
        code = error.get("errorCode", error.get("code", "unknown"))
        message = error.get("errorMessage", error.get("message", ""))
        return {"code": str(code), "message": str(message)}
    return {"code": "unknown", "message": str(error)}


def _ours(obj: dict[str, Any]) -> dict[str, Any]:
    prediction = obj.get("prediction")
    error = obj.get("error")
    return _record(
        id=obj.get("id"),
        prediction=None if prediction is None else str(prediction),
        labels=obj.get("labels"),
        scores=obj.get("scores"),
        error=None if error is None else _error(error),
        input_tokens=_int(obj.get("input_tokens")),
        output_tokens=_int(obj.get("output_tokens")),
    )


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None
