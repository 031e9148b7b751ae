"""No default catalog model is end of life, and the default Bedrock pipelines run on Bedrock today.

moto knows nothing of model lifecycles, so the documented facts are encoded here, each with its date and
source; `batch-pipeline doctor` asks the real GetFoundationModel in an account.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from batch_pipeline.config.app import BedrockModel, load_app_config

CDK_JSON = Path(__file__).resolve().parents[2] / "cdk.json"

# foundation model id -> (end-of-life date, source). Read 2026-12-01.
END_OF_LIFE = {
    "anthropic.claude-3-haiku-20240307-v1:0": (
        "2026-09-10",
        "Amazon Bedrock user guide, model card 'Claude 3 Haiku': model EOL date 2026-09-10",
    ),
}
# Models "Supported Regions and models for batch inference" lists with in-Region (foundation model) batch
# support in us-east-1. Read 2026-12-01.
BATCH_IN_US_EAST_1 = {"amazon.nova-lite-v1:0", "amazon.nova-micro-v1:0", "amazon.nova-pro-v1:0"}


def end_of_life_models(config) -> list[str]:
    return sorted(
        f"{name} ({model.base_model_id}, end of life {END_OF_LIFE[model.base_model_id][0]})"
        for name, model in config.models.items()
        if isinstance(model, BedrockModel) and model.base_model_id in END_OF_LIFE
    )


def default_config():
    return load_app_config(json.loads(CDK_JSON.read_text())["context"]["batch-pipeline"])


def test_no_default_catalog_model_is_end_of_life():
    assert end_of_life_models(default_config()) == []


def test_the_check_finds_an_end_of_life_model_planted_in_the_catalog():
    raw = copy.deepcopy(json.loads(CDK_JSON.read_text())["context"]["batch-pipeline"])
    raw["models"]["old-haiku"] = {
        "backend": "bedrock",
        "model_id": "us.anthropic.claude-3-haiku-20240307-v1:0",
        "family": "anthropic",
        "routes_to_regions": ["us-east-1", "us-west-2"],
    }
    assert end_of_life_models(load_app_config(raw)) == [
        "old-haiku (anthropic.claude-3-haiku-20240307-v1:0, end of life 2026-09-10)"
    ]


@pytest.mark.parametrize("pipeline", ["bedrock-summarize", "bedrock-converse"])
def test_default_bedrock_pipelines_use_a_model_with_batch_support_in_us_east_1(pipeline):
    config = default_config()
    model = config.models[config.pipelines[pipeline].model]
    assert isinstance(model, BedrockModel) and not model.is_profile
    assert model.model_id in BATCH_IN_US_EAST_1
    assert model.max_output_tokens and model.context_window


def test_the_default_pipelines_cover_both_invocation_types():
    config = default_config()
    assert config.pipelines["bedrock-summarize"].bedrock.invocation_type == "InvokeModel"
    assert config.pipelines["bedrock-converse"].bedrock.invocation_type == "Converse"
