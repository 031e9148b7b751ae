"""Strict request-body schemas for Bedrock `modelInput`, one per family, plus the Converse request body.

Bedrock validates a batch job's records only when the job runs, hours after intake, and answers a body it
does not like with a per-record 400 ("extraneous key [x] is not permitted", "messages: first message must use
the user role", ...). These checks say the same thing at intake, naming the line and the rule. Each rule
follows the family's documented request body:

- Anthropic Messages on Bedrock (anthropic_version "bedrock-2023-05-31", max_tokens, messages, system,
  temperature 0-1, top_p 0-1, top_k, stop_sequences, tools, tool_choice, thinking, anthropic_beta);
- Amazon Nova InvokeModel body (schemaVersion, messages, system, inferenceConfig{maxTokens, temperature 0-1,
  topP 0-1, topK, stopSequences}, toolConfig);
- Amazon Titan Text (inputText, textGenerationConfig{maxTokenCount, temperature 0-1, topP 0-1, stopSequences});
- Converse (messages of content blocks, system, inferenceConfig{maxTokens, temperature 0-1, topP 0-1,
  stopSequences}, additionalModelRequestFields, ...); toolConfig is refused because batch inference does not
  support tool calling with the Converse invocation type.

Every reason names its rule: `rule <family>.<rule>: ...`, so a report groups by it and a reader can look it up.
`max_output` is the model card's maximum output tokens (None: not checked).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ANTHROPIC_VERSION = "bedrock-2023-05-31"


class RecordError(Exception):
    """One invalid record: a stable `code` (counted per reason), the offending `field`, a human `reason`."""

    def __init__(self, code: str, field: str | None, reason: str):
        super().__init__(reason)
        self.code = code
        self.field = field
        self.reason = reason


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(value), type(value).__name__
    )


def _fail(family: str, rule: str, field: str, message: str) -> RecordError:
    return RecordError("invalid_model_input", field, f"rule {family}.{rule}: {field} {message}")


def _object(value: Any, family: str, where: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise _fail(family, "object", where, f"must be an object, got {type_name(value)}")
    return value


def _keys(body: dict[str, Any], allowed: frozenset[str], family: str, where: str) -> None:
    for key in body:
        if key not in allowed:
            raise _fail(
                family,
                "extraneous-key",
                f"{where}.{key}",
                f"is not permitted: extraneous key [{key}] (allowed: {', '.join(sorted(allowed))})",
            )


def _require(body: dict[str, Any], key: str, family: str, where: str) -> Any:
    if key not in body:
        raise _fail(family, "required-key", f"{where}.{key}", "is required")
    return body[key]


def _text_value(value: Any, family: str, where: str) -> None:
    if type(value) is not str:
        raise RecordError("wrong_type", where, f"rule {family}.text: {where} must be a string, got {type_name(value)}")
    if not value or value.isspace():
        raise RecordError("blank_text", where, f"rule {family}.text: {where} is empty or only whitespace")


def _int_range(body: dict[str, Any], key: str, family: str, where: str, low: int, high: int | None, rule: str) -> None:
    if key not in body:
        return
    value = body[key]
    field = f"{where}.{key}"
    if type(value) is not int:
        raise _fail(family, rule, field, f"must be an integer, got {type_name(value)}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        limit = " (the model's maximum output tokens)" if rule == "max-tokens" and high is not None else ""
        raise _fail(family, rule, field, f"must be {bound}{limit}, got {value}")


def _unit_interval(body: dict[str, Any], key: str, family: str, where: str, rule: str) -> None:
    if key not in body:
        return
    value = body[key]
    field = f"{where}.{key}"
    if type(value) not in (int, float):
        raise _fail(family, rule, field, f"must be a number, got {type_name(value)}")
    if not 0 <= value <= 1:
        raise _fail(family, rule, field, f"must be between 0 and 1, got {value!r}")


def _string_list(body: dict[str, Any], key: str, family: str, where: str) -> None:
    if key not in body:
        return
    value = body[key]
    if type(value) is not list or not all(type(item) is str and item for item in value):
        raise _fail(family, "stop-sequences", f"{where}.{key}", "must be an array of non-empty strings")


def _messages(body: dict[str, Any], family: str, where: str, check_content: Callable[[Any, str], None]) -> None:
    messages = _require(body, "messages", family, where)
    field = f"{where}.messages"
    if type(messages) is not list or not messages:
        raise _fail(family, "messages", field, "must be a non-empty array")
    for index, message in enumerate(messages):
        here = f"{field}[{index}]"
        _object(message, family, here)
        _keys(message, frozenset(("role", "content")), family, here)
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise _fail(family, "role", f"{here}.role", f"must be 'user' or 'assistant', got {role!r}")
        if index == 0 and role != "user":
            raise _fail(family, "first-role", f"{here}.role", "must be 'user': the first message uses the user role")
        check_content(_require(message, "content", family, here), f"{here}.content")


# ---------------------------------------------------------------- Anthropic Messages

_ANTHROPIC_KEYS = frozenset(
    (
        "anthropic_version",
        "anthropic_beta",
        "max_tokens",
        "messages",
        "system",
        "temperature",
        "top_p",
        "top_k",
        "stop_sequences",
        "tools",
        "tool_choice",
        "thinking",
    )
)
_ANTHROPIC_BLOCK_KEYS = {
    "text": frozenset(("type", "text", "cache_control", "citations")),
    "image": frozenset(("type", "source", "cache_control")),
    "document": frozenset(("type", "source", "title", "context", "citations", "cache_control")),
    "tool_use": frozenset(("type", "id", "name", "input", "cache_control")),
    "tool_result": frozenset(("type", "tool_use_id", "content", "is_error", "cache_control")),
    "thinking": frozenset(("type", "thinking", "signature")),
    "redacted_thinking": frozenset(("type", "data")),
}
_IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


def _anthropic_blocks(content: Any, where: str) -> None:
    family = "anthropic"
    if type(content) is str:
        _text_value(content, family, where)
        return
    if type(content) is not list or not content:
        raise _fail(family, "content", where, "must be a non-empty string or a non-empty array of content blocks")
    for index, block in enumerate(content):
        here = f"{where}[{index}]"
        _object(block, family, here)
        kind = block.get("type")
        if kind not in _ANTHROPIC_BLOCK_KEYS:
            raise _fail(
                family,
                "content-block",
                f"{here}.type",
                f"must be one of {', '.join(sorted(_ANTHROPIC_BLOCK_KEYS))}, got {kind!r}",
            )
        _keys(block, _ANTHROPIC_BLOCK_KEYS[kind], family, here)
        if kind == "text":
            _text_value(block.get("text"), family, f"{here}.text")
        elif kind == "image":
            source = _object(_require(block, "source", family, here), family, f"{here}.source")
            if (
                source.get("type") != "base64"
                or source.get("media_type") not in _IMAGE_MEDIA_TYPES
                or type(source.get("data")) is not str
            ):
                raise _fail(
                    family,
                    "image-source",
                    f"{here}.source",
                    f"must be {{type: 'base64', media_type: one of {', '.join(_IMAGE_MEDIA_TYPES)}, data: string}}",
                )


def check_anthropic_messages(body: Any, where: str = "modelInput", max_output: int | None = None) -> None:
    family = "anthropic"
    body = _object(body, family, where)
    _keys(body, _ANTHROPIC_KEYS, family, where)
    version = _require(body, "anthropic_version", family, where)
    if version != ANTHROPIC_VERSION:
        raise _fail(
            family, "anthropic-version", f"{where}.anthropic_version", f"must be {ANTHROPIC_VERSION!r}, got {version!r}"
        )
    _require(body, "max_tokens", family, where)
    _int_range(body, "max_tokens", family, where, 1, max_output, "max-tokens")
    _messages(body, family, where, _anthropic_blocks)
    if "system" in body:
        system = body["system"]
        if type(system) is list:
            for index, block in enumerate(system):
                here = f"{where}.system[{index}]"
                _object(block, family, here)
                if block.get("type") != "text":
                    raise _fail(family, "system", f"{here}.type", "must be 'text'")
                _keys(block, _ANTHROPIC_BLOCK_KEYS["text"], family, here)
                _text_value(block.get("text"), family, f"{here}.text")
        else:
            _text_value(system, family, f"{where}.system")
    _unit_interval(body, "temperature", family, where, "temperature")
    _unit_interval(body, "top_p", family, where, "top-p")
    _int_range(body, "top_k", family, where, 0, None, "top-k")
    _string_list(body, "stop_sequences", family, where)


# ---------------------------------------------------------------- Amazon Nova and Converse (shared block shapes)

# A Nova / Converse content block holds exactly one of these.
_NOVA_BLOCKS = frozenset(("text", "image", "video", "document"))
_CONVERSE_BLOCKS = frozenset(("text", "image", "video", "document", "guardContent", "cachePoint", "reasoningContent"))
_MEDIA_KEYS = {
    "image": frozenset(("format", "source")),
    "video": frozenset(("format", "source")),
    "document": frozenset(("format", "name", "source", "context", "citations")),
}
_SOURCE_KEYS = frozenset(("bytes", "s3Location"))


def _single_key_blocks(content: Any, where: str, family: str, kinds: frozenset[str]) -> None:
    if type(content) is not list or not content:
        raise _fail(family, "content", where, 'must be a non-empty array of content blocks such as {"text": "..."}')
    for index, block in enumerate(content):
        here = f"{where}[{index}]"
        _object(block, family, here)
        if len(block) != 1:
            raise _fail(
                family,
                "content-block",
                here,
                f"must hold exactly one of {', '.join(sorted(kinds))}, got keys {sorted(block)}",
            )
        (kind,) = block
        if kind not in kinds:
            raise _fail(
                family,
                "content-block",
                f"{here}.{kind}",
                f"is not a known content block: use one of {', '.join(sorted(kinds))}",
            )
        value = block[kind]
        if kind == "text":
            _text_value(value, family, f"{here}.text")
        elif kind in _MEDIA_KEYS:
            media = _object(value, family, f"{here}.{kind}")
            _keys(media, _MEDIA_KEYS[kind], family, f"{here}.{kind}")
            source = _object(_require(media, "source", family, f"{here}.{kind}"), family, f"{here}.{kind}.source")
            if len(source) != 1 or next(iter(source)) not in _SOURCE_KEYS:
                raise _fail(
                    family, "media-source", f"{here}.{kind}.source", "must hold exactly one of bytes, s3Location"
                )


def _system_blocks(body: dict[str, Any], where: str, family: str, kinds: frozenset[str]) -> None:
    if "system" not in body:
        return
    system = body["system"]
    field = f"{where}.system"
    if type(system) is not list:
        raise _fail(family, "system", field, 'must be an array of blocks such as {"text": "..."}')
    for index, block in enumerate(system):
        here = f"{field}[{index}]"
        _object(block, family, here)
        if len(block) != 1 or next(iter(block)) not in kinds:
            raise _fail(family, "system", here, f"must hold exactly one of {', '.join(sorted(kinds))}")
        if "text" in block:
            _text_value(block["text"], family, f"{here}.text")


def _inference_config(
    body: dict[str, Any],
    key: str,
    allowed: frozenset[str],
    family: str,
    where: str,
    max_output: int | None,
    max_name: str,
) -> None:
    if key not in body:
        return
    here = f"{where}.{key}"
    config = _object(body[key], family, here)
    _keys(config, allowed, family, here)
    _int_range(config, max_name, family, here, 1, max_output, "max-tokens")
    _unit_interval(config, "temperature", family, here, "temperature")
    _unit_interval(config, "topP", family, here, "top-p")
    _int_range(config, "topK", family, here, 0, None, "top-k")
    _string_list(config, "stopSequences", family, here)


_NOVA_KEYS = frozenset(("schemaVersion", "messages", "system", "inferenceConfig", "toolConfig"))
_NOVA_INFERENCE = frozenset(("maxTokens", "temperature", "topP", "topK", "stopSequences"))


def check_nova_messages(body: Any, where: str = "modelInput", max_output: int | None = None) -> None:
    family = "nova"
    body = _object(body, family, where)
    _keys(body, _NOVA_KEYS, family, where)
    if "schemaVersion" in body and body["schemaVersion"] != "messages-v1":
        raise _fail(
            family, "schema-version", f"{where}.schemaVersion", f"must be 'messages-v1', got {body['schemaVersion']!r}"
        )
    _messages(body, family, where, lambda content, here: _single_key_blocks(content, here, family, _NOVA_BLOCKS))
    _system_blocks(body, where, family, frozenset(("text",)))
    _inference_config(body, "inferenceConfig", _NOVA_INFERENCE, family, where, max_output, "maxTokens")


_CONVERSE_KEYS = frozenset(
    (
        "messages",
        "system",
        "inferenceConfig",
        "additionalModelRequestFields",
        "additionalModelResponseFieldPaths",
        "guardrailConfig",
        "promptVariables",
        "requestMetadata",
        "performanceConfig",
    )
)
_CONVERSE_INFERENCE = frozenset(("maxTokens", "temperature", "topP", "stopSequences"))


def check_converse(body: Any, where: str = "modelInput", max_output: int | None = None) -> None:
    family = "converse"
    body = _object(body, family, where)
    if "toolConfig" in body:
        raise _fail(
            family,
            "no-tools",
            f"{where}.toolConfig",
            "is not supported: batch inference with the Converse invocation type does not support tool calling",
        )
    if "modelId" in body:
        raise _fail(
            family,
            "extraneous-key",
            f"{where}.modelId",
            "is not permitted: the job names the model, a Converse batch record carries only the request body",
        )
    _keys(body, _CONVERSE_KEYS, family, where)
    _messages(body, family, where, lambda content, here: _single_key_blocks(content, here, family, _CONVERSE_BLOCKS))
    _system_blocks(body, where, family, frozenset(("text", "guardContent", "cachePoint")))
    _inference_config(body, "inferenceConfig", _CONVERSE_INFERENCE, family, where, max_output, "maxTokens")
    if "additionalModelRequestFields" in body:
        _object(body["additionalModelRequestFields"], family, f"{where}.additionalModelRequestFields")


# ---------------------------------------------------------------- Titan Text

_TITAN_KEYS = frozenset(("inputText", "textGenerationConfig"))
_TITAN_CONFIG = frozenset(("maxTokenCount", "temperature", "topP", "stopSequences"))


def check_titan_text(body: Any, where: str = "modelInput", max_output: int | None = None) -> None:
    family = "titan-text"
    body = _object(body, family, where)
    _keys(body, _TITAN_KEYS, family, where)
    _text_value(_require(body, "inputText", family, where), family, f"{where}.inputText")
    _inference_config(body, "textGenerationConfig", _TITAN_CONFIG, family, where, max_output, "maxTokenCount")


BEDROCK_SCHEMAS: dict[str, Callable[..., None]] = {
    "anthropic": check_anthropic_messages,
    "nova": check_nova_messages,
    "titan-text": check_titan_text,
    "converse": check_converse,
}
