"""The configuration model: defaults validate, cross-references are checked, runtime JSON round-trips."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from batch_pipeline.config.app import ConfigError, load_app_config
from batch_pipeline.config.runtime import dump_runtime_pipelines, parse_runtime_pipelines, runtime_pipelines

CONTEXT = json.loads((Path(__file__).resolve().parents[2] / "cdk.json").read_text())["context"]["batch-pipeline"]


def config(**changes):
    raw = copy.deepcopy(CONTEXT)
    for path, value in changes.items():
        node = raw
        *parents, leaf = path.split("__")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return raw


def test_default_configuration_has_the_four_default_pipelines():
    app = load_app_config(CONTEXT)
    assert set(app.pipelines) == {"summarize", "classify", "bedrock-summarize", "bedrock-converse"}
    assert app.backend_of("summarize") == "sagemaker"
    assert app.backend_of("bedrock-summarize") == "bedrock"
    assert app.pipelines["summarize"].sagemaker.hyper_params == {
        "batch_size": 4,
        "max_length": 50,
        "top_k": 50,
        "top_p": 0.95,
        "do_sample": True,
    }


def test_missing_context_is_named():
    with pytest.raises(ConfigError, match="'batch-pipeline' is missing"):
        load_app_config(None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            config(pipelines__summarize__input_format="bedrock"),
            "pipelines.summarize.input_format: 'bedrock' does not fit",
        ),
        (config(pipelines__classify__bedrock={}), "pipelines.classify.bedrock: not allowed for SageMaker"),
        (
            config(pipelines__Bad_Name=copy.deepcopy(CONTEXT["pipelines"]["summarize"])),
            "pipelines.Bad_Name: name must match",
        ),
        (config(pipelines__classify__input_format="prompt"), "pipelines.classify.candidate_labels: required"),
        (
            config(pipelines__summarize__sagemaker__instance_type="p3.2xlarge"),
            "pipelines.summarize.sagemaker.instance_type",
        ),
        (config(encryption="none"), "batch-pipeline.encryption"),
        (config(log_retention_days=31), "batch-pipeline.log_retention_days"),
        (
            config(endpoints={"rt": {"model": "claude-3-haiku", "instance_type": "ml.g5.xlarge"}}),
            "endpoints.rt.model: 'claude-3-haiku' is not a SageMaker catalog model",
        ),
        (config(models__claude_3_haiku={"backend": "openai"}), "batch-pipeline.models.claude_3_haiku"),
    ],
)
def test_invalid_configuration_names_the_key(raw, expected):
    with pytest.raises(ConfigError) as error:
        load_app_config(raw)
    assert expected in str(error.value)


def test_all_problems_are_reported_at_once():
    raw = config(pipelines__summarize__model="nope", pipelines__classify__model="nope")
    with pytest.raises(ConfigError) as error:
        load_app_config(raw)
    assert "pipelines.summarize.model" in str(error.value) and "pipelines.classify.model" in str(error.value)


def test_runtime_pipelines_round_trip_through_the_environment_variable():
    app = load_app_config(CONTEXT)
    pipelines = runtime_pipelines(app, {"flan-t5-large": "Stack-flan-t5-large"})
    text = dump_runtime_pipelines(pipelines)
    assert len(text) < 3500  # fits the Lambda environment with room for the other variables
    parsed = parse_runtime_pipelines(text)
    assert parsed == pipelines
    assert parsed["summarize"].sagemaker_model_name == "Stack-flan-t5-large"
    assert parsed["summarize"].task == "text2text"
    assert parsed["bedrock-summarize"].bedrock_family == "nova"
    assert parsed["bedrock-converse"].pipeline.bedrock.invocation_type == "Converse"
    assert "image_uri" not in text  # the catalog's artifacts stay at synth time


def test_broken_environment_variable_is_a_config_error():
    with pytest.raises(ConfigError, match="PIPELINES"):
        parse_runtime_pipelines("{not json")
