"""A malformed pipeline configuration fails synth with a message naming the key."""

from __future__ import annotations

import copy
import os
import subprocess
from pathlib import Path

import pytest

from app import build_app
from batch_pipeline.config.app import ConfigError

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda c: c["pipelines"]["summarize"]["sagemaker"].update(instance_count=0),
            "batch-pipeline.pipelines.summarize.sagemaker.instance_count",
        ),
        (
            lambda c: c["pipelines"]["classify"].update(model="no-such-model"),
            "pipelines.classify.model: unknown model 'no-such-model'",
        ),
        (
            lambda c: c["pipelines"]["summarize"].update(input_formt="prompt"),
            "batch-pipeline.pipelines.summarize.input_formt: Extra inputs are not permitted",
        ),
        (
            lambda c: c["pipelines"]["bedrock-summarize"]["bedrock"].update(min_records_per_job=60000),
            "batch-pipeline.pipelines.bedrock-summarize.bedrock",
        ),
    ],
)
def test_bad_configuration_fails_synth_naming_the_key(default_context, mutate, expected):
    context = copy.deepcopy(default_context)
    mutate(context["batch-pipeline"])
    with pytest.raises(ConfigError) as error:
        build_app(context)
    assert expected in str(error.value)


def test_missing_region_artifacts_name_the_region(default_context):
    context = copy.deepcopy(default_context)
    context["region"] = "eu-west-3"
    with pytest.raises(ConfigError, match="no artifacts for region 'eu-west-3'"):
        build_app(context)


def test_one_realtime_and_one_streaming_endpoint_synthesize_cleanly_in_the_full_stack(default_context):
    from aws_cdk.assertions import Template

    context = copy.deepcopy(default_context)
    context["batch-pipeline"]["endpoints"] = {
        "flan-t5-realtime": {
            "model": "flan-t5-large",
            "instance_type": "ml.p3.2xlarge",
            "instance_count": 1,
            "max_instance_count": 4,
            "invocations_per_instance": 120,
            "data_capture": True,
        },
        "falcon-stream": {"model": "falcon-7b-instruct", "instance_type": "ml.g5.2xlarge"},
    }
    app, stack = build_app(context)
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::SageMaker::Endpoint", 2)
    template.resource_count_is("AWS::ApplicationAutoScaling::ScalingPolicy", 1)
    app.synth()  # cdk-nag: no unacknowledged finding


def test_dotted_context_keys_override_single_values(default_context):
    context = copy.deepcopy(default_context)
    context["batch-pipeline.notification_email"] = "ops@example.com"
    context["batch-pipeline.pipelines.summarize.sagemaker.instance_count"] = "3"
    context["batch-pipeline.pipelines.bedrock-summarize.bedrock.retry_failed_records"] = "true"
    _, stack = build_app(context)
    assert stack.config.notification_email == "ops@example.com"
    assert stack.config.pipelines["summarize"].sagemaker.instance_count == 3
    assert stack.config.pipelines["bedrock-summarize"].bedrock.retry_failed_records is True
    # The rest of cdk.json is untouched.
    assert (
        stack.config.pipelines["classify"] == build_app(copy.deepcopy(default_context))[1].config.pipelines["classify"]
    )


def test_a_dotted_override_is_validated_like_the_file(default_context):
    context = copy.deepcopy(default_context)
    context["batch-pipeline.pipelines.summarize.sagemaker.instance_count"] = "0"
    with pytest.raises(ConfigError, match="batch-pipeline.pipelines.summarize.sagemaker.instance_count"):
        build_app(context)
    context = copy.deepcopy(default_context)
    context["batch-pipeline.encryption.mode"] = "kms"
    with pytest.raises(ConfigError, match="goes below batch-pipeline.encryption, which is not an object"):
        build_app(context)


def test_the_cdk_cli_passes_a_dotted_context_key_to_the_configuration(tmp_path):
    """`npx cdk deploy -c batch-pipeline.<path>=VALUE` (what docs/configuration.md tells a user to run) reaches the
    configuration: the real CLI hands the dotted key to app.py, which validates the overridden value and names it.
    An invalid value fails before any bundling, so the real synth costs seconds."""
    cdk = REPO / "node_modules" / ".bin" / "cdk"
    key = "batch-pipeline.pipelines.summarize.sagemaker.instance_count"
    result = subprocess.run(
        [str(cdk), "synth", "--quiet", "--no-notices", "--output", str(tmp_path / "cdk.out"), "-c", f"{key}=0"],
        cwd=REPO,
        # Hermetic: the CLI sends no usage telemetry (the tests have no network).
        env={**os.environ, "CDK_DISABLE_CLI_TELEMETRY": "true"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert f"{key}: Input should be greater than or equal to 1" in result.stdout + result.stderr
