"""Strict Bedrock request schemas: one malformed example per rule, rejected at intake with its line and a reason
that names the rule; and the same rules on the well-formed example accept it (so no test passes by rejecting all)."""

from __future__ import annotations

import copy
import json

import pytest

from batch_pipeline.config.app import load_app_config
from batch_pipeline.config.runtime import runtime_pipelines
from batch_pipeline.intake.stream import run_intake

MODELS = {
    "claude": {
        "backend": "bedrock",
        "model_id": "us.anthropic.claude-3-5-haiku-20241022-v1:0",
        "family": "anthropic",
        "max_output_tokens": 8192,
        "context_window": 200000,
        "routes_to_regions": ["us-east-1", "us-west-2"],
    },
    "nova": {
        "backend": "bedrock",
        "model_id": "amazon.nova-lite-v1:0",
        "family": "nova",
        "max_output_tokens": 5000,
        "context_window": 300000,
    },
    "titan": {
        "backend": "bedrock",
        "model_id": "amazon.titan-text-express-v1",
        "family": "titan-text",
        "max_output_tokens": 8192,
    },
}
BEDROCK = {"min_records_per_job": 1, "max_records_per_job": 100, "inference_params": {"max_tokens": 256}}
PIPELINES = {
    "anthropic": {"model": "claude", "input_format": "bedrock", "bedrock": BEDROCK},
    "nova": {"model": "nova", "input_format": "bedrock", "bedrock": BEDROCK},
    "titan-text": {"model": "titan", "input_format": "bedrock", "bedrock": BEDROCK},
    "converse": {"model": "claude", "input_format": "bedrock", "bedrock": {**BEDROCK, "invocation_type": "Converse"}},
    "converse-prompt": {
        "model": "nova",
        "input_format": "prompt",
        "bedrock": {**BEDROCK, "invocation_type": "Converse"},
    },
    "converse-messages": {
        "model": "nova",
        "input_format": "messages",
        "bedrock": {**BEDROCK, "invocation_type": "Converse"},
    },
}
RUNTIME = runtime_pipelines(load_app_config({"models": MODELS, "pipelines": PIPELINES}))

GOOD = {
    "anthropic": {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 100,
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 5,
        "stop_sequences": ["\n\n"],
        "system": "Be brief.",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Summarize: a b c."}]},
            {"role": "assistant", "content": "Sure."},
            {"role": "user", "content": "Go on."},
        ],
    },
    "nova": {
        "schemaVersion": "messages-v1",
        "system": [{"text": "Be brief."}],
        "messages": [{"role": "user", "content": [{"text": "Summarize: a b c."}]}],
        "inferenceConfig": {"maxTokens": 100, "temperature": 0.2, "topP": 0.9, "topK": 20},
    },
    "titan-text": {
        "inputText": "Summarize: a b c.",
        "textGenerationConfig": {"maxTokenCount": 100, "temperature": 0.3},
    },
    "converse": {
        "messages": [{"role": "user", "content": [{"text": "Summarize: a b c."}]}],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"maxTokens": 100, "temperature": 1},
    },
}


def with_change(family: str, path: str, value) -> dict:
    body = copy.deepcopy(GOOD[family])
    keys = path.split(".")
    target = body
    for key in keys[:-1]:
        target = target[int(key)] if isinstance(target, list) else target[key]
    last = keys[-1]
    if value is DELETE:
        del target[last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return body


DELETE = object()

# (family, rule, a malformed body)
CASES = [
    ("anthropic", "first-role", with_change("anthropic", "messages.0.role", "assistant")),
    ("anthropic", "role", with_change("anthropic", "messages.1.role", "system")),
    ("anthropic", "content-block", with_change("anthropic", "messages.0.content", [{"type": "picture", "text": "x"}])),
    (
        "anthropic",
        "extraneous-key",
        with_change("anthropic", "messages.0.content", [{"type": "text", "text": "x", "colour": "red"}]),
    ),
    (
        "anthropic",
        "image-source",
        with_change(
            "anthropic", "messages.0.content", [{"type": "image", "source": {"type": "url", "url": "http://x"}}]
        ),
    ),
    ("anthropic", "content", with_change("anthropic", "messages.0.content", [])),
    ("anthropic", "text", with_change("anthropic", "messages.0.content", [{"type": "text", "text": "  "}])),
    ("anthropic", "max-tokens", with_change("anthropic", "max_tokens", 8193)),
    ("anthropic", "max-tokens", with_change("anthropic", "max_tokens", 0)),
    ("anthropic", "temperature", with_change("anthropic", "temperature", 1.5)),
    ("anthropic", "temperature", with_change("anthropic", "temperature", -0.1)),
    ("anthropic", "top-p", with_change("anthropic", "top_p", 2)),
    ("anthropic", "top-k", with_change("anthropic", "top_k", -1)),
    ("anthropic", "stop-sequences", with_change("anthropic", "stop_sequences", "STOP")),
    ("anthropic", "extraneous-key", with_change("anthropic", "prompt", "Human: hi")),
    ("anthropic", "anthropic-version", with_change("anthropic", "anthropic_version", "2023-06-01")),
    ("anthropic", "required-key", with_change("anthropic", "max_tokens", DELETE)),
    ("anthropic", "messages", with_change("anthropic", "messages", [])),
    ("anthropic", "system", with_change("anthropic", "system", [{"type": "image", "text": "x"}])),
    ("nova", "first-role", with_change("nova", "messages.0.role", "assistant")),
    ("nova", "content-block", with_change("nova", "messages.0.content", [{"text": "a", "image": {}}])),
    ("nova", "content-block", with_change("nova", "messages.0.content", [{"audio": {"format": "mp3"}}])),
    (
        "nova",
        "media-source",
        with_change("nova", "messages.0.content", [{"image": {"format": "png", "source": {"url": "http://x"}}}]),
    ),
    (
        "nova",
        "extraneous-key",
        with_change(
            "nova", "messages.0.content", [{"image": {"format": "png", "source": {"bytes": "AA=="}, "size": 1}}]
        ),
    ),
    ("nova", "content", with_change("nova", "messages.0.content", "just text")),
    ("nova", "max-tokens", with_change("nova", "inferenceConfig.maxTokens", 5001)),
    ("nova", "temperature", with_change("nova", "inferenceConfig.temperature", 1.01)),
    ("nova", "top-p", with_change("nova", "inferenceConfig.topP", -1)),
    ("nova", "extraneous-key", with_change("nova", "inferenceConfig.max_new_tokens", 10)),
    ("nova", "extraneous-key", with_change("nova", "anthropic_version", "bedrock-2023-05-31")),
    ("nova", "schema-version", with_change("nova", "schemaVersion", "messages-v2")),
    ("nova", "system", with_change("nova", "system", "Be brief.")),
    ("nova", "object", with_change("nova", "inferenceConfig", [100])),
    ("titan-text", "extraneous-key", with_change("titan-text", "messages", [])),
    ("titan-text", "extraneous-key", with_change("titan-text", "textGenerationConfig.topK", 5)),
    ("titan-text", "max-tokens", with_change("titan-text", "textGenerationConfig.maxTokenCount", 9000)),
    ("titan-text", "temperature", with_change("titan-text", "textGenerationConfig.temperature", 3)),
    ("titan-text", "required-key", with_change("titan-text", "inputText", DELETE)),
    ("converse", "no-tools", with_change("converse", "toolConfig", {"tools": [{"toolSpec": {"name": "t"}}]})),
    ("converse", "extraneous-key", with_change("converse", "modelId", "amazon.nova-lite-v1:0")),
    ("converse", "extraneous-key", with_change("converse", "anthropic_version", "bedrock-2023-05-31")),
    ("converse", "first-role", with_change("converse", "messages.0.role", "assistant")),
    ("converse", "content-block", with_change("converse", "messages.0.content", [{"type": "text", "text": "x"}])),
    ("converse", "max-tokens", with_change("converse", "inferenceConfig.maxTokens", 8193)),
    ("converse", "temperature", with_change("converse", "inferenceConfig.temperature", 1.2)),
    ("converse", "extraneous-key", with_change("converse", "inferenceConfig.topK", 5)),
]


def intake(pipeline: str, lines: list[dict]):
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    return run_intake(iter([data]), RUNTIME[pipeline]).report


def line(record_id: str, body: dict) -> dict:
    return {"recordId": record_id, "modelInput": body}


@pytest.mark.parametrize("family", sorted(GOOD))
def test_the_well_formed_example_of_each_family_is_accepted(family):
    report = intake(family, [line("ok", GOOD[family])])
    assert report["accepted"] is True, report["errors"]


@pytest.mark.parametrize("family, rule, body", CASES, ids=[f"{f}-{r}-{i}" for i, (f, r, _) in enumerate(CASES)])
def test_each_rule_rejects_its_malformed_example_naming_the_line_and_the_rule(family, rule, body):
    # The bad record is the third line, after two good ones.
    report = intake(family, [line("a", GOOD[family]), line("b", GOOD[family]), line("c", body)])
    assert report["accepted"] is False
    (error,) = report["errors"]
    assert error["line"] == 3
    assert f"rule {family}.{rule}:" in error["reason"], error
    assert len(error["reason"]) < 400


def test_the_rules_catalogue_covers_every_rule_the_schemas_raise():
    import re
    from pathlib import Path

    source = (
        Path(__file__).resolve().parents[2] / "lambdas" / "batch_pipeline" / "intake" / "bedrock_schemas.py"
    ).read_text()
    raised = set(re.findall(r'_fail\(family, "([a-z-]+)"', source)) | {"text"}
    tested = {rule for _, rule, _ in CASES}
    assert raised <= tested, f"rules without a malformed example: {sorted(raised - tested)}"


def test_converse_pipelines_turn_prompt_and_messages_lines_into_converse_bodies():
    from batch_pipeline.intake.formats import RecordConverter

    prompt = RecordConverter(RUNTIME["converse-prompt"])
    _, model_line, _, _ = prompt.convert({"id": "p1", "prompt": "Summarize: x.", "temperature": 0.1}, 1, b"")
    assert json.loads(model_line) == {
        "recordId": "p1",
        "modelInput": {
            "messages": [{"role": "user", "content": [{"text": "Summarize: x."}]}],
            "inferenceConfig": {"maxTokens": 256, "temperature": 0.1},
        },
    }
    messages = RecordConverter(RUNTIME["converse-messages"])
    record = {
        "id": "m1",
        "system": "Be brief.",
        "reference": "x",
        "messages": [{"role": "user", "content": [{"text": "Summarize: x."}]}],
    }
    _, model_line, references, _ = messages.convert(record, 1, b"")
    assert json.loads(model_line)["modelInput"]["system"] == [{"text": "Be brief."}]
    assert references == {"id": "m1", "reference": "x"}


def test_a_messages_line_with_tool_config_or_an_assistant_first_turn_is_rejected():
    bad_turn = {"id": "m1", "messages": [{"role": "assistant", "content": [{"text": "Hi"}]}]}
    report = intake("converse-messages", [bad_turn])
    assert report["accepted"] is False and "rule converse.first-role:" in report["errors"][0]["reason"]
    tools = {"id": "m2", "messages": [{"role": "user", "content": [{"text": "Hi"}]}], "toolConfig": {}}
    report = intake("converse-messages", [tools])
    assert report["accepted"] is False and "toolConfig" in report["errors"][0]["reason"]


def test_a_prompt_lines_own_max_tokens_above_the_model_maximum_is_rejected():
    report = intake("converse-prompt", [{"id": "p", "prompt": "Summarize: x.", "max_tokens": 5001}])
    assert report["accepted"] is False and "rule converse.max-tokens:" in report["errors"][0]["reason"]
