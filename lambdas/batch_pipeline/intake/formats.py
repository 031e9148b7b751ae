"""Per-format record checks and the conversion of a valid record into the line the model receives.

One `RecordConverter` per pipeline turns a parsed JSON object into `(id, model_line, references, assigned)`:
- `jumpstart-text2text`: `{"id", "text_inputs", ...generation parameters}`
- `zero-shot`: `{"id", "sequences", "candidate_labels", "multi_class"}`
- `bedrock`: `{"recordId", "modelInput"}`, `modelInput` checked against the model family's request schema
- `prompt`: `{"id", "prompt"}`, accepted by every pipeline and converted into its model's native request.

Field policy (see docs/input-formats.md):
- `reference` / `label` are split off into references.jsonl: they never reach the model.
- Any other field that is not part of the format is rejected with a reason rather than silently dropped or passed
  to the container: an unknown field is usually a typo of a parameter (`max_lenght`) or metadata that would change
  what the model sees, and both are cheaper to fix before a paid job than after.

This module is on the per-line hot path: checks are plain `type(...) is` tests on the dict orjson returns, and a
native line that needs no change is passed through as the original bytes (not even copied) instead of being
serialised again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from batch_pipeline.config.app import ConfigError
from batch_pipeline.config.runtime import RuntimePipeline
from batch_pipeline.intake.bedrock_schemas import ANTHROPIC_VERSION, BEDROCK_SCHEMAS, RecordError

__all__ = [
    "ANTHROPIC_VERSION",
    "BEDROCK_SCHEMAS",
    "RecordError",
    "RecordConverter",
    "bedrock_request_from_prompt",
    "converse_request",
]
REFERENCE_FIELDS = ("reference", "label")
LABEL_WARNING_LINES = 5  # lines named in the report's warning about labels outside candidate_labels
_DUMPS_OPTIONS = orjson.OPT_APPEND_NEWLINE


# ---------------------------------------------------------------- value checks


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(value), type(value).__name__
    )


def _is_int(value: Any) -> bool:
    return type(value) is int  # bool is a subclass of int and never a count


def _is_number(value: Any) -> bool:
    return type(value) is int or type(value) is float


def _is_bool(value: Any) -> bool:
    return type(value) is bool


def _is_blank(text: str) -> bool:
    return not text or text.isspace()


# name -> (type check, type name, range check or None, range description)
_Check = tuple[Callable[[Any], bool], str, Callable[[Any], bool] | None, str]

GENERATION_PARAMETERS: dict[str, _Check] = {
    "max_length": (_is_int, "integer", lambda v: v >= 1, ">= 1"),
    "max_new_tokens": (_is_int, "integer", lambda v: v >= 1, ">= 1"),
    "min_length": (_is_int, "integer", lambda v: v >= 0, ">= 0"),
    "min_new_tokens": (_is_int, "integer", lambda v: v >= 0, ">= 0"),
    "num_return_sequences": (_is_int, "integer", lambda v: v >= 1, ">= 1"),
    "top_k": (_is_int, "integer", lambda v: v >= 0, ">= 0"),
    "top_p": (_is_number, "number", lambda v: 0 <= v <= 1, "between 0 and 1"),
    "temperature": (_is_number, "number", lambda v: v >= 0, ">= 0"),
    "do_sample": (_is_bool, "boolean", None, ""),
    "num_beams": (_is_int, "integer", lambda v: v >= 1, ">= 1"),
    "no_repeat_ngram_size": (_is_int, "integer", lambda v: v >= 0, ">= 0"),
    "early_stopping": (_is_bool, "boolean", None, ""),
    "seed": (_is_int, "integer", None, ""),
    "length_penalty": (_is_number, "number", None, ""),
    "repetition_penalty": (_is_number, "number", lambda v: v > 0, "> 0"),
    "max_time": (_is_number, "number", lambda v: v > 0, "> 0"),
}

# Prompt-line parameters that have a Bedrock equivalent, by family: our name -> the family's name.
_BEDROCK_PARAMETER_NAMES = {
    "anthropic": {
        "max_new_tokens": "max_tokens",
        "max_tokens": "max_tokens",
        "temperature": "temperature",
        "top_p": "top_p",
        "top_k": "top_k",
        "stop_sequences": "stop_sequences",
    },
    "nova": {
        "max_new_tokens": "maxTokens",
        "max_tokens": "maxTokens",
        "temperature": "temperature",
        "top_p": "topP",
        "top_k": "topK",
        "stop_sequences": "stopSequences",
    },
    "titan-text": {
        "max_new_tokens": "maxTokenCount",
        "max_tokens": "maxTokenCount",
        "temperature": "temperature",
        "top_p": "topP",
        "stop_sequences": "stopSequences",
    },
}
_BEDROCK_PARAMETER_NAMES["converse"] = {
    "max_new_tokens": "maxTokens",
    "max_tokens": "maxTokens",
    "temperature": "temperature",
    "top_p": "topP",
    "stop_sequences": "stopSequences",
}
_BEDROCK_ONLY_PARAMETERS: dict[str, _Check] = {
    "max_tokens": (_is_int, "integer", lambda v: v >= 1, ">= 1"),
    "stop_sequences": (lambda v: type(v) is list and all(type(s) is str for s in v), "array of strings", None, ""),
}


def check_parameter(name: str, value: Any, checks: dict[str, _Check] = GENERATION_PARAMETERS, where: str = "") -> None:
    is_type, type_label, in_range, range_label = checks[name]
    field = f"{where}{name}"
    if not is_type(value):
        raise RecordError(
            "invalid_parameter", field, f"{field} must be {_article(type_label)}, got {_type_name(value)}"
        )
    if in_range is not None and not in_range(value):
        raise RecordError("parameter_out_of_range", field, f"{field} must be {range_label}, got {value!r}")


def _article(type_label: str) -> str:
    return f"an {type_label}" if type_label[0] in "aeiou" else f"a {type_label}"


def _text(record: dict[str, Any], field: str, where: str = "") -> str:
    value = record.get(field)
    name = f"{where}{field}"
    if type(value) is not str:
        if value is None and field not in record:
            raise RecordError("missing_field", name, f"missing required field {name!r}")
        raise RecordError("wrong_type", name, f"{name} must be a string, got {_type_name(value)}")
    if _is_blank(value):
        raise RecordError("blank_text", name, f"{name} is empty or only whitespace")
    return value


# ---------------------------------------------------------------- Bedrock request bodies
# The strict per-family schemas live in bedrock_schemas; this module builds bodies from portable lines.


def bedrock_request_from_prompt(family: str, prompt: str, params: dict[str, Any]) -> dict[str, Any]:
    """The family's native request body for one prompt; `params` use our portable names (max_tokens, top_p, ...)."""
    names = _BEDROCK_PARAMETER_NAMES[family]
    native = {names[key]: value for key, value in params.items() if key in names}
    if family == "anthropic":
        body: dict[str, Any] = {"anthropic_version": ANTHROPIC_VERSION, "max_tokens": native.pop("max_tokens", 512)}
        if "system" in params:
            body["system"] = params["system"]
        body["messages"] = [{"role": "user", "content": prompt}]
        body.update(native)
        return body
    if family == "nova":
        body = {"messages": [{"role": "user", "content": [{"text": prompt}]}]}
        if "system" in params:
            body["system"] = [{"text": params["system"]}]
        if native:
            body["inferenceConfig"] = native
        return body
    body = {"inputText": prompt}
    if native:
        body["textGenerationConfig"] = native
    return body


def converse_request(messages: list[Any], system: str | None, params: dict[str, Any]) -> dict[str, Any]:
    """A Converse request body (no modelId: the job names the model); `params` use our portable names."""
    body: dict[str, Any] = {"messages": messages}
    if system is None:
        system = params.get("system")
    if system is not None:
        body["system"] = [{"text": system}]
    config = {
        _CONVERSE_PARAMETER_NAMES[key]: value for key, value in params.items() if key in _CONVERSE_PARAMETER_NAMES
    }
    if config:
        body["inferenceConfig"] = config
    return body


# Converse's inferenceConfig takes maxTokens, temperature, topP and stopSequences (top_k is model-specific).
_CONVERSE_PARAMETER_NAMES = _BEDROCK_PARAMETER_NAMES["converse"]


# ---------------------------------------------------------------- ids and references


def _take_id(record: dict[str, Any], field: str, line_no: int) -> tuple[str | int, bool]:
    """The record's id, or `line-<n>` when it has none (the report then says ids were assigned)."""
    if field not in record:
        return f"line-{line_no}", True
    value = record[field]
    if type(value) is str:
        if _is_blank(value):
            raise RecordError("invalid_id", field, f"{field} is empty or only whitespace")
        return value, False
    if type(value) is int:
        if not INT_ID_MIN <= value <= INT_ID_MAX:
            raise RecordError("invalid_id", field, _id_too_large(field, value))
        return value, False
    if type(value) is float and value.is_integer() and abs(value) >= 2.0**63:
        # orjson reads an integer literal beyond 64 bits as a float (its digits are already lost).
        raise RecordError("invalid_id", field, _id_too_large(field, value))
    hint = "; omit the field to have one assigned" if value is None else ""
    raise RecordError("invalid_id", field, f"{field} must be a string or an integer, got {_type_name(value)}{hint}")


# Integer ids must fit in a signed 64-bit integer: beyond it JSON readers (orjson here, the backends' and the
# evaluation's) read the number as floating point and the id loses digits, so two ids could collide.
INT_ID_MIN, INT_ID_MAX = -(2**63), 2**63 - 1


def _id_too_large(field: str, value: int | float) -> str:
    digits = str(value) if type(value) is int else f"{value:.6g}"
    if len(digits) > 40:
        digits = f"{digits[:20]}... ({len(digits)} digits)"
    return (
        f"{field} {digits} is an integer too large for the backend: integer ids must fit in 64 bits "
        f"({INT_ID_MIN}..{INT_ID_MAX}); beyond that they are read as floating point and lose digits, "
        "so quote the id as a string"
    )


def _reference_value(record: dict[str, Any], field: str) -> str:
    value = record[field]
    if type(value) is not str:
        raise RecordError("wrong_type", field, f"{field} must be a string, got {_type_name(value)}")
    if _is_blank(value):
        raise RecordError("blank_text", field, f"{field} is empty or only whitespace")
    return value


def _unknown_field(name: str, allowed: frozenset[str], format_name: str) -> RecordError:
    from difflib import get_close_matches  # error path only

    close = get_close_matches(name, sorted(allowed), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return RecordError(
        "unknown_field",
        name,
        f"unknown field {name!r} for the {format_name} format; {hint}allowed: {', '.join(sorted(allowed))} "
        "(other fields are rejected so nothing unexpected reaches the model)",
    )


# ---------------------------------------------------------------- converters

_MISSING = object()

# (id, model-ready line ending in "\n" (`raw` itself when unchanged), references dict or None, id assigned?)
Converted = tuple[Any, "bytes | memoryview", "dict[str, Any] | None", bool]


class RecordConverter:
    """Checks one parsed line against the pipeline's format and returns the model-ready line."""

    def __init__(self, pipeline: RuntimePipeline):
        self.pipeline = pipeline
        settings = pipeline.pipeline
        self.input_format = settings.input_format
        self.backend = pipeline.backend
        self.id_field = "recordId" if self.input_format == "bedrock" else "id"
        self.candidate_labels = list(settings.candidate_labels) if settings.candidate_labels else None
        if pipeline.backend == "bedrock":
            if settings.bedrock is None or pipeline.bedrock_family is None:
                raise ConfigError(
                    f"pipeline {pipeline.name!r}: a Bedrock pipeline needs bedrock settings and a model family"
                )
            # With the Converse invocation type every modelInput is a Converse body, whatever the model family.
            self.converse = settings.bedrock.converse
            self.family = "converse" if self.converse else pipeline.bedrock_family
            self.max_output = pipeline.bedrock_max_output_tokens
            self.bedrock_params = self._check_inference_params(dict(settings.bedrock.inference_params))
            self.schema = BEDROCK_SCHEMAS[self.family]
            self._native = self._messages_native if self.input_format == "messages" else self._bedrock_native
            self._prompt_allowed = frozenset(
                ("id", "prompt", *REFERENCE_FIELDS, *_BEDROCK_PARAMETER_NAMES[self.family])
            )
        elif pipeline.task == "zero-shot":
            self._native = self._zero_shot_native
            self._prompt_allowed = frozenset(("id", "prompt", *REFERENCE_FIELDS))
        else:
            self._native = self._text2text_native
            self._prompt_allowed = frozenset(("id", "prompt", *REFERENCE_FIELDS, *GENERATION_PARAMETERS))
        self.native_field = {
            "jumpstart-text2text": "text_inputs",
            "zero-shot": "sequences",
            "bedrock": "modelInput",
            "messages": "messages",
        }.get(self.input_format)
        # Records that carried their own generation parameters (ignored by JumpStart when HYPER_PARAMS is set).
        self.records_with_parameters = 0
        # Records whose label is not among their candidate_labels (a warning in the report, not a rejection).
        self.labels_outside = 0
        self.labels_outside_lines: list[int] = []
        if self.input_format == "jumpstart-text2text":
            self.convert = self._text2text_native  # type: ignore[method-assign]

    def _check_inference_params(self, params: dict[str, Any]) -> dict[str, Any]:
        allowed = set(_BEDROCK_PARAMETER_NAMES[self.family])
        if self.family != "titan-text":
            allowed.add("system")
        unknown = sorted(set(params) - allowed)
        if unknown:
            raise ConfigError(
                f"pipeline {self.pipeline.name!r}: bedrock.inference_params has {unknown} which the {self.family} "
                f"family does not take; use {sorted(allowed)}"
            )
        return params

    def convert(self, record: dict[str, Any], line_no: int, raw: bytes | memoryview) -> Converted:
        """`raw` is the line as read, ending in its newline (bytes, or a memoryview of the input chunk); it is the
        model line as-is when the record needs no change.

        Replaced per instance by the pipeline's native converter when it has one (one call less per line)."""
        return self._dispatch(record, line_no, raw)

    def _dispatch(self, record: dict[str, Any], line_no: int, raw: bytes | memoryview) -> Converted:
        if self.native_field is not None and self.native_field in record:
            return self._native(record, line_no, raw)
        if "prompt" in record:
            return self._prompt(record, line_no)
        expected = f"{self.native_field!r} or 'prompt'" if self.native_field else "'prompt'"
        raise RecordError("missing_field", self.native_field or "prompt", f"missing required field {expected}")

    # -- native formats

    _TEXT2TEXT_FIELDS = frozenset(("id", "text_inputs", *REFERENCE_FIELDS, *GENERATION_PARAMETERS))

    # Inlined on purpose (the hot path, see below): split into helpers it would pay a call per field per line.
    def _text2text_native(self, record: dict[str, Any], line_no: int, raw: bytes | memoryview) -> Converted:  # noqa: C901
        # The hot path of the common summarization upload: inline checks for the usual case, the helpers
        # (which build the error) only when a check fails.
        text = record.get("text_inputs")
        if text.__class__ is not str or not text or text.isspace():
            if text is None and "text_inputs" not in record:
                return self._dispatch(record, line_no, raw)  # a prompt line, or neither field
            _text(record, "text_inputs")
        record_id = record.get("id", _MISSING)
        if (record_id.__class__ is str and record_id and not record_id.isspace()) or (
            record_id.__class__ is int and INT_ID_MIN <= record_id <= INT_ID_MAX
        ):
            assigned = False
        else:
            record_id, assigned = _take_id(record, "id", line_no)
        if len(record) == 2 and not assigned:
            return record_id, raw, None, False
        references: dict[str, Any] | None = None
        has_parameters = False
        for name in record:
            if name == "id" or name == "text_inputs":
                continue
            if name == "reference" or name == "label":
                value = record[name]
                if value.__class__ is not str or not value or value.isspace():
                    _reference_value(record, name)
                if references is None:
                    references = {"id": record_id}
                references[name] = value
            elif name in GENERATION_PARAMETERS:
                check_parameter(name, record[name])
                has_parameters = True
            else:
                raise _unknown_field(name, self._TEXT2TEXT_FIELDS, "jumpstart-text2text")
        if has_parameters:
            self.records_with_parameters += 1
        if references is None and not assigned:
            return record_id, raw, None, False
        if references is not None:
            record.pop("reference", None)
            record.pop("label", None)
        if assigned:
            record = {"id": record_id, **record}
        return record_id, orjson.dumps(record, option=_DUMPS_OPTIONS), references, assigned

    def _zero_shot_native(self, record: dict[str, Any], line_no: int, raw: bytes | memoryview) -> Converted:
        record_id, assigned = _take_id(record, "id", line_no)
        sequences = _text(record, "sequences")
        labels = record.get("candidate_labels")
        if labels is None:
            if self.candidate_labels is None:
                raise RecordError(
                    "missing_field",
                    "candidate_labels",
                    "missing required field 'candidate_labels' (the pipeline configures none)",
                )
            labels = self.candidate_labels
        else:
            self._check_labels(labels)
        multi_class = record.get("multi_class", False)
        if not _is_bool(multi_class):
            raise RecordError(
                "wrong_type", "multi_class", f"multi_class must be a boolean, got {_type_name(multi_class)}"
            )
        references: dict[str, Any] | None = None
        allowed = frozenset(("id", "sequences", "candidate_labels", "multi_class", *REFERENCE_FIELDS))
        for name in record:
            if name in REFERENCE_FIELDS:
                if references is None:
                    references = {"id": record_id}
                if name == "label":
                    references[name] = self._label(record[name], labels, multi_class, line_no)
                else:
                    references[name] = _reference_value(record, name)
            elif name not in allowed:
                if name in GENERATION_PARAMETERS:
                    raise RecordError(
                        "unsupported_parameter",
                        name,
                        f"generation parameter {name!r} does not apply to a zero-shot classification model",
                    )
                raise _unknown_field(name, allowed, "zero-shot")
        model = {"id": record_id, "sequences": sequences, "candidate_labels": labels, "multi_class": multi_class}
        return record_id, orjson.dumps(model, option=_DUMPS_OPTIONS), references, assigned

    def _label(self, value: Any, candidates: list[str] | None, multi_class: bool, line_no: int) -> str | list[str]:
        """A zero-shot record's true label: one string, or with `multi_class` true a list of them. A label that is
        not among the candidates is kept (the report warns: evaluation can only count it wrong)."""
        if type(value) is list and multi_class:
            if not value:
                raise RecordError("wrong_type", "label", "label is an empty list; give at least one true label")
            for index, item in enumerate(value):
                if type(item) is not str or _is_blank(item):
                    raise RecordError(
                        "wrong_type",
                        f"label[{index}]",
                        f"label[{index}] must be a non-blank string, got {_type_name(item)}",
                    )
            label: str | list[str] = value
            outside = candidates is not None and not set(value) <= set(candidates)
        elif type(value) is list:
            raise RecordError(
                "wrong_type",
                "label",
                "label is a list, which needs multi_class: true (one string label per record otherwise)",
            )
        else:
            label = _reference_value({"label": value}, "label")
            outside = candidates is not None and label not in candidates
        if outside:
            self.labels_outside += 1
            if len(self.labels_outside_lines) < LABEL_WARNING_LINES:
                self.labels_outside_lines.append(line_no)
        return label

    @staticmethod
    def _check_labels(labels: Any) -> None:
        if type(labels) is not list or not labels:
            raise RecordError("wrong_type", "candidate_labels", "candidate_labels must be a non-empty array of strings")
        for index, label in enumerate(labels):
            if type(label) is not str or _is_blank(label):
                raise RecordError(
                    "wrong_type",
                    f"candidate_labels[{index}]",
                    f"candidate_labels[{index}] must be a non-blank string, got {label!r}",
                )
        if len(set(labels)) != len(labels):
            raise RecordError("wrong_type", "candidate_labels", "candidate_labels has repeated labels")

    def _bedrock_native(self, record: dict[str, Any], line_no: int, raw: bytes | memoryview) -> Converted:
        record_id, assigned = _take_id(record, "recordId", line_no)
        model_input = record["modelInput"]
        self.schema(model_input, "modelInput", self.max_output)
        references: dict[str, Any] | None = None
        for name in record:
            if name == "recordId" or name == "modelInput":
                continue
            if name in REFERENCE_FIELDS:
                if references is None:
                    references = {"id": record_id}
                references[name] = _reference_value(record, name)
            else:
                raise _unknown_field(name, frozenset(("recordId", "modelInput", *REFERENCE_FIELDS)), "bedrock")
        if references is None and not assigned and type(record_id) is str:
            return record_id, raw, None, False
        # Bedrock documents recordId as a string; the join key everywhere is str(id) anyway.
        line = orjson.dumps({"recordId": str(record_id), "modelInput": model_input}, option=_DUMPS_OPTIONS)
        return record_id, line, references, assigned

    _MESSAGES_FIELDS = frozenset(("id", "messages", "system", *REFERENCE_FIELDS))

    def _messages_native(self, record: dict[str, Any], line_no: int, raw: bytes | memoryview) -> Converted:
        """`{"id", "messages": [...], "system"?}` -> a Converse body with the pipeline's inference parameters."""
        record_id, assigned = _take_id(record, "id", line_no)
        references: dict[str, Any] | None = None
        for name in record:
            if name in REFERENCE_FIELDS:
                if references is None:
                    references = {"id": record_id}
                references[name] = _reference_value(record, name)
            elif name not in self._MESSAGES_FIELDS:
                raise _unknown_field(name, self._MESSAGES_FIELDS, "messages")
        system = record.get("system")
        if system is not None and (type(system) is not str or _is_blank(system)):
            raise RecordError("wrong_type", "system", f"system must be a non-blank string, got {_type_name(system)}")
        request = converse_request(record["messages"], system, self.bedrock_params)
        self.schema(request, "request", self.max_output)
        model = {"recordId": str(record_id), "modelInput": request}
        return record_id, orjson.dumps(model, option=_DUMPS_OPTIONS), references, assigned

    # -- the portable prompt format

    def _prompt(self, record: dict[str, Any], line_no: int) -> Converted:
        record_id, assigned = _take_id(record, "id", line_no)
        prompt = _text(record, "prompt")
        references: dict[str, Any] | None = None
        parameters: dict[str, Any] = {}
        for name in record:
            if name == "id" or name == "prompt":
                continue
            if name in REFERENCE_FIELDS:
                if references is None:
                    references = {"id": record_id}
                if name == "label" and self.pipeline.task == "zero-shot" and self.backend != "bedrock":
                    references[name] = self._label(record[name], self.candidate_labels, False, line_no)
                else:
                    references[name] = _reference_value(record, name)
            elif name in self._prompt_allowed:
                checks = _BEDROCK_ONLY_PARAMETERS if name in _BEDROCK_ONLY_PARAMETERS else GENERATION_PARAMETERS
                check_parameter(name, record[name], checks)
                parameters[name] = record[name]
            elif name in GENERATION_PARAMETERS or name in _BEDROCK_ONLY_PARAMETERS:
                raise self._unsupported_parameter(name)
            else:
                raise _unknown_field(name, self._prompt_allowed, "prompt")
        if parameters:
            self.records_with_parameters += 1
        model = self._prompt_model(record_id, prompt, parameters)
        return record_id, orjson.dumps(model, option=_DUMPS_OPTIONS), references, assigned

    def _unsupported_parameter(self, name: str) -> RecordError:
        """A known generation parameter that this pipeline's model has no equivalent for."""
        if self.backend == "bedrock":
            names = ", ".join(sorted(_BEDROCK_PARAMETER_NAMES[self.family]))
            target = f"Bedrock {self.family} (use {names})"
        elif self.pipeline.task == "zero-shot":
            target = "a zero-shot classification model"
        else:
            target = "a JumpStart text2text model (use max_new_tokens or max_length)"
        return RecordError("unsupported_parameter", name, f"parameter {name!r} has no equivalent for {target}")

    def _prompt_model(self, record_id: Any, prompt: str, parameters: dict[str, Any]) -> dict[str, Any]:
        """The model line for a prompt record: a Bedrock record, a zero-shot request or a text2text request."""
        if self.backend == "bedrock":
            params = {**self.bedrock_params, **parameters}
            if self.converse:
                request = converse_request([{"role": "user", "content": [{"text": prompt}]}], None, params)
            else:
                request = bedrock_request_from_prompt(self.family, prompt, params)
            if parameters:
                self.schema(request, "modelInput", self.max_output)  # a line's own max_tokens may exceed the model's
            model: dict[str, Any] = {"recordId": str(record_id), "modelInput": request}
        elif self.pipeline.task == "zero-shot":
            if self.candidate_labels is None:
                raise RecordError(
                    "missing_field",
                    "candidate_labels",
                    "prompt lines on a zero-shot model need the pipeline's candidate_labels (none configured)",
                )
            model = {
                "id": record_id,
                "sequences": prompt,
                "candidate_labels": self.candidate_labels,
                "multi_class": False,
            }
        else:
            model = {"id": record_id, "text_inputs": prompt, **parameters}
        return model
