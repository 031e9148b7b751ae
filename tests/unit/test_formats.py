"""Conversion of valid records into model-ready lines, per format and Bedrock family."""

from __future__ import annotations

import orjson
import pytest

from batch_pipeline.config.app import ConfigError
from batch_pipeline.intake.formats import RecordConverter, RecordError
from tests.fixtures.intake.pipelines import runtime


def convert(pipeline: str, record: dict, line_no: int = 1, **changes):
    raw = orjson.dumps(record) + b"\n"  # as the validator passes it: the line with its newline
    record_id, line, references, assigned = RecordConverter(runtime(pipeline, **changes)).convert(
        dict(record), line_no, raw
    )
    assert line.endswith(b"\n")
    return record_id, orjson.loads(line), references, assigned


def test_text2text_line_without_extras_passes_through_unchanged():
    record = {"id": 3, "text_inputs": "Summarize: x", "max_length": 50}
    raw = memoryview(orjson.dumps(record) + b"\n")  # a line of the input chunk
    _, line, references, _ = RecordConverter(runtime("t2t")).convert(dict(record), 1, raw)
    assert line is raw and references is None  # passed through: not even copied


def test_text2text_reference_and_label_never_reach_the_model():
    record_id, model, references, assigned = convert(
        "t2t", {"id": "a", "text_inputs": "t", "reference": "r", "label": "l", "temperature": 0.5}
    )
    assert model == {"id": "a", "text_inputs": "t", "temperature": 0.5}
    assert references == {"id": "a", "reference": "r", "label": "l"}
    assert (record_id, assigned) == ("a", False)


def test_missing_id_is_assigned_from_the_line_number():
    record_id, model, _, assigned = convert("t2t", {"text_inputs": "t"}, line_no=42)
    assert (record_id, assigned, model["id"]) == ("line-42", True, "line-42")


def test_prompt_on_text2text_becomes_text_inputs_with_parameters():
    _, model, _, _ = convert("t2t", {"id": 1, "prompt": "Summarize: p", "max_new_tokens": 20})
    assert model == {"id": 1, "text_inputs": "Summarize: p", "max_new_tokens": 20}


def test_prompt_on_zero_shot_uses_the_pipeline_labels():
    _, model, references, _ = convert("zs-prompt", {"id": 1, "prompt": "The senate voted", "label": "politics"})
    assert model == {
        "id": 1,
        "sequences": "The senate voted",
        "candidate_labels": ["sports", "politics"],
        "multi_class": False,
    }
    assert references == {"id": 1, "label": "politics"}


def test_zero_shot_native_fills_multi_class_and_keeps_its_labels():
    _, model, _, _ = convert("zs", {"id": 1, "sequences": "s", "candidate_labels": ["a", "b"]})
    assert model == {"id": 1, "sequences": "s", "candidate_labels": ["a", "b"], "multi_class": False}


def test_prompt_to_anthropic_messages_with_pipeline_inference_params():
    _, model, _, _ = convert("claude", {"id": 7, "prompt": "Summarize the call", "temperature": 0.9})
    assert model == {
        "recordId": "7",
        "modelInput": {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 256,
            "messages": [{"role": "user", "content": "Summarize the call"}],
            "temperature": 0.9,
            "top_p": 0.9,
        },
    }


def test_prompt_to_nova_messages_and_inference_config():
    _, model, _, _ = convert("nova", {"id": "n1", "prompt": "Summarize", "max_new_tokens": 64})
    assert model == {
        "recordId": "n1",
        "modelInput": {
            "messages": [{"role": "user", "content": [{"text": "Summarize"}]}],
            "inferenceConfig": {"maxTokens": 64, "temperature": 0.2, "topP": 0.9},
        },
    }


def test_prompt_to_titan_text():
    _, model, _, _ = convert("titan", {"id": 1, "prompt": "Summarize"})
    assert model == {
        "recordId": "1",
        "modelInput": {"inputText": "Summarize", "textGenerationConfig": {"maxTokenCount": 100}},
    }


def test_bedrock_native_integer_record_id_becomes_a_string():
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    record_id, model, _, _ = convert("claude", {"recordId": 12, "modelInput": body})
    assert record_id == 12 and model == {"recordId": "12", "modelInput": body}


def test_unknown_field_suggests_the_parameter_meant():
    with pytest.raises(RecordError) as error:
        convert("t2t", {"id": 1, "text_inputs": "t", "temprature": 0.5})
    assert error.value.code == "unknown_field" and "did you mean 'temperature'" in error.value.reason


def test_bedrock_inference_params_the_family_does_not_take_are_a_config_error():
    with pytest.raises(ConfigError, match="num_beams"):
        RecordConverter(runtime("claude", bedrock={"inference_params": {"num_beams": 2}}))


def test_records_with_parameters_are_counted_for_the_hyper_params_warning():
    converter = RecordConverter(runtime("t2t-hyper"))
    for index in range(3):
        converter.convert({"id": index, "text_inputs": "t", "max_length": 9}, 1, b"\n")
    assert converter.records_with_parameters == 3
