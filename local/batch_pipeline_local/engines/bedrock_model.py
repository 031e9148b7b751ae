"""The Bedrock stand-in's "model": it exercises the pipeline, not a model.

Chosen by the modelId family (anthropic., amazon.nova, amazon.titan-text; else by the body): the answer is the first
sentence of the last user text, a leading instruction such as "Summarize this call transcript: " removed, cut to max
tokens words; tokens are words. Outputs are in each family's native shape (Anthropic Messages, Nova / Converse
`output.message`, Titan `results`). A body that does not fit the family raises RecordFailure: a 400 record error in a
batch job, a ValidationException from InvokeModel. A record carrying `[[error-record]]` fails the same way, to
rehearse a record the model rejects.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from batch_pipeline_local.engines.stand_in import ENGINE_LABEL

ERROR_RECORD = "[[error-record]]"
DEFAULT_MAX_TOKENS = 512

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# A short leading instruction such as "Summarize this call transcript: " is not part of the text: a phrase of
# two words or more, or one starting with an instruction verb, so that a speaker label such as "Agent: " stays.
_INSTRUCTION = re.compile(
    r"^(?:(?:summari[sz]e|classify|translate)\b[^.!?:\n]{0,80}|(?=[^:\n]*\s[^:\n]*:)[^.!?:\n]{1,80}):\s+", re.IGNORECASE
)
_TITAN_TURN = re.compile(r"^\s*User:\s*|\s*Bot:\s*$")


class RecordFailure(Exception):
    """One record's inference failed (a 400 error line in batch, a ValidationException from InvokeModel)."""


def summarize(text: str, max_words: int) -> tuple[str, bool]:
    """First sentence of `text` without a leading instruction, at most `max_words` words; (summary, was it cut)."""
    body = _INSTRUCTION.sub("", text.strip(), count=1)
    first = _SENTENCE_END.split(body, maxsplit=1)[0].strip()
    words = first.split()
    limit = max(1, int(max_words))
    return " ".join(words[:limit]), len(words) > limit


def _words(text: str) -> int:
    return len(text.split())


def _block_texts(content: Any, where: str, typed: bool) -> list[str]:
    """Texts of a message's content: a string (Anthropic only) or a list of content blocks."""
    if isinstance(content, str) and typed:
        return [content]
    if not isinstance(content, list) or not content:
        raise RecordFailure(f"Malformed input request: {where}.content must be a non-empty array")
    texts = []
    for block in content:
        if not isinstance(block, dict):
            raise RecordFailure(f"Malformed input request: {where}.content blocks must be objects")
        # Typed blocks count only when they are text blocks; untyped ones whenever they carry text.
        if isinstance(block.get("text"), str) and (not typed or block.get("type") == "text"):
            texts.append(block["text"])
    return texts


def _messages(body: dict[str, Any], typed: bool) -> tuple[str, int]:
    """(text of the last user message, words in every message and the system prompt)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RecordFailure("Malformed input request: #: required key [messages] not found or empty")
    last_user, total = None, 0
    for number, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise RecordFailure(f"Malformed input request: messages.{number}.role must be user or assistant")
        texts = _block_texts(message.get("content"), f"messages.{number}", typed)
        total += sum(_words(t) for t in texts)
        if message["role"] == "user":
            last_user = " ".join(texts)
    if last_user is None:
        raise RecordFailure("Malformed input request: no user message")
    system = body.get("system")
    if isinstance(system, str):
        total += _words(system)
    elif isinstance(system, list):
        total += sum(_words(b.get("text", "")) for b in system if isinstance(b, dict))
    return last_user, total


def _max_tokens(value: Any, name: str, default: int | None) -> int:
    if value is None:
        if default is None:
            raise RecordFailure(f"Malformed input request: #: required key [{name}] not found")
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RecordFailure(f"Malformed input request: {name} must be a non-negative integer")
    return value


def _object(value: Any) -> dict[str, Any]:
    """An optional JSON object of the request (a configuration block): {} when absent or not an object."""
    return value if isinstance(value, dict) else {}


def family_of(model_id: str, body: Any, invocation_type: str = "InvokeModel") -> str:
    """anthropic | nova | titan-text | converse: by the model id where it tells, else by the body's shape."""
    if invocation_type == "Converse":
        return "converse"
    lowered = model_id.lower()
    if "anthropic." in lowered:
        return "anthropic"
    if "amazon.nova" in lowered or ".nova-" in lowered:
        return "nova"
    if "amazon.titan-text" in lowered:
        return "titan-text"
    if isinstance(body, dict):
        if "anthropic_version" in body:
            return "anthropic"
        if "inputText" in body:
            return "titan-text"
        if "messages" in body:
            return "nova"
    raise RecordFailure(f"Malformed input request: {ENGINE_LABEL} does not know the request format for {model_id!r}")


def answer(model_id: str, body: Any, invocation_type: str = "InvokeModel") -> tuple[dict[str, Any], int, int]:
    """The native response body for one request, and its (input, output) token counts."""
    if not isinstance(body, dict):
        raise RecordFailure("Malformed input request: the request body must be a JSON object")
    if ERROR_RECORD in json.dumps(body, ensure_ascii=False):
        raise RecordFailure(f"Malformed input request: {ENGINE_LABEL} rejects requests carrying {ERROR_RECORD}")
    family = family_of(model_id, body, invocation_type)
    if family == "converse" and "toolConfig" in body:
        # Bedrock: records of a Converse-type job that include toolConfig fail with a 400 error.
        raise RecordFailure("Malformed input request: toolConfig is not supported for Converse batch inference")
    if family == "anthropic":
        if not isinstance(body.get("anthropic_version"), str):
            raise RecordFailure("Malformed input request: #: required key [anthropic_version] not found")
        limit = _max_tokens(body.get("max_tokens"), "max_tokens", None)
        text, input_tokens = _messages(body, typed=True)
        summary, cut = summarize(text, limit)
        output_tokens = _words(summary)
        return (
            {
                "id": f"msg_local_{uuid.uuid4().hex[:20]}",
                "type": "message",
                "role": "assistant",
                "model": f"{ENGINE_LABEL}: {model_id}",
                "content": [{"type": "text", "text": summary}],
                "stop_reason": "max_tokens" if cut else "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
            },
            input_tokens,
            output_tokens,
        )
    if family in ("nova", "converse"):
        config = _object(body.get("inferenceConfig"))
        limit = _max_tokens(config.get("maxTokens", config.get("max_new_tokens")), "maxTokens", DEFAULT_MAX_TOKENS)
        text, input_tokens = _messages(body, typed=False)
        summary, cut = summarize(text, limit)
        output_tokens = _words(summary)
        response = {
            "output": {"message": {"role": "assistant", "content": [{"text": summary}]}},
            "stopReason": "max_tokens" if cut else "end_turn",
            "usage": {
                "inputTokens": input_tokens,
                "outputTokens": output_tokens,
                "totalTokens": input_tokens + output_tokens,
            },
        }
        if family == "converse":
            response["metrics"] = {"latencyMs": 0}
        return response, input_tokens, output_tokens
    input_text = body.get("inputText")
    if not isinstance(input_text, str):
        raise RecordFailure("Malformed input request: #: required key [inputText] not found")
    config = _object(body.get("textGenerationConfig"))
    limit = _max_tokens(config.get("maxTokenCount"), "maxTokenCount", DEFAULT_MAX_TOKENS)
    summary, cut = summarize(_TITAN_TURN.sub("", input_text), limit)
    input_tokens, output_tokens = _words(input_text), _words(summary)
    return (
        {
            "inputTextTokenCount": input_tokens,
            "results": [
                {
                    "tokenCount": output_tokens,
                    "outputText": summary,
                    "completionReason": "LENGTH" if cut else "FINISHED",
                }
            ],
        },
        input_tokens,
        output_tokens,
    )
