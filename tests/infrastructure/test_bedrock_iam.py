"""Bedrock batch inference IAM: the service role and job control's grants, asserted statement by statement."""

from __future__ import annotations

import copy
import json

from tests.infrastructure.conftest import synth


def _resolve(value) -> str:
    """A template value as text, with intrinsics flattened so patterns can be matched."""
    return json.dumps(value, sort_keys=True)


def _policy_statements(template, prefix: str) -> list[dict]:
    statements = []
    for name, policy in template.find_resources("AWS::IAM::Policy").items():
        if name.startswith(prefix):
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def _by_sid(statements: list[dict]) -> dict[str, dict]:
    return {s["Sid"]: s for s in statements if "Sid" in s}


def _actions(statement: dict) -> list[str]:
    return statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]


def test_service_role_trusts_only_bedrock_for_this_accounts_invocation_jobs(template):
    roles = {
        n: r for n, r in template.find_resources("AWS::IAM::Role").items() if n.startswith("BedrockBatchServiceRole")
    }
    assert len(roles) == 1
    (trust,) = next(iter(roles.values()))["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "bedrock.amazonaws.com"}
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert ":model-invocation-job/*" in _resolve(trust["Condition"]["ArnLike"]["aws:SourceArn"])


def test_service_role_reads_only_bedrock_job_files_and_writes_only_their_raw_folder(template):
    statements = _by_sid(_policy_statements(template, "BedrockBatchServiceRole"))
    assert _actions(statements["ReadJobFiles"]) == ["s3:GetObject"]
    assert "/runs/bedrock-summarize/*/shards/*" in _resolve(statements["ReadJobFiles"]["Resource"])
    assert "raw" not in _resolve(statements["ReadJobFiles"]["Resource"])
    assert _actions(statements["WriteRawOutputs"]) == ["s3:PutObject"]
    written = _resolve(statements["WriteRawOutputs"]["Resource"])
    assert "/runs/bedrock-summarize/*/raw/*" in written and "shards" not in written
    # SageMaker pipelines' runs are out of reach.
    everything = _resolve(list(statements.values()))
    assert "runs/summarize/" not in everything and "runs/classify/" not in everything
    assert not any(a.startswith("bedrock:") or a == "iam:PassRole" for s in statements.values() for a in _actions(s))
    # (an in-Region model needs no invoke grant on the service role; inference profiles do, see below)


def test_job_control_creates_jobs_for_configured_models_only(template):
    statements = _by_sid(_policy_statements(template, "FunctionsJobControlRole"))
    create = statements["CreateJobsForConfiguredModels"]
    assert _actions(create) == ["bedrock:CreateModelInvocationJob"]
    resources = _resolve(create["Resource"])
    assert "foundation-model/amazon.nova-lite-v1:0" in resources
    assert "foundation-model/*" not in resources
    invoke = statements["InvokeConfiguredModels"]
    assert _actions(invoke) == ["bedrock:InvokeModel"]
    assert "foundation-model/amazon.nova-lite-v1:0" in _resolve(invoke["Resource"])
    control = statements["ControlOwnInvocationJobs"]
    assert sorted(_actions(control)) == ["bedrock:GetModelInvocationJob", "bedrock:StopModelInvocationJob"]
    assert _resolve(control["Resource"]).endswith(':model-invocation-job/*"]]}')
    assert _actions(statements["TagOwnInvocationJobs"]) == ["bedrock:TagResource"]  # scope: test_deploy_defects.py
    assert _actions(statements["FindInvocationJobs"]) == ["bedrock:ListModelInvocationJobs"]


def test_job_control_passes_only_the_bedrock_service_role_and_only_to_bedrock(template):
    statements = _by_sid(_policy_statements(template, "FunctionsJobControlRole"))
    passing = statements["PassBedrockServiceRole"]
    assert _actions(passing) == ["iam:PassRole"]
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "bedrock.amazonaws.com"}}
    (logical_id, attribute) = passing["Resource"]["Fn::GetAtt"]
    assert logical_id.startswith("BedrockBatchServiceRole") and attribute == "Arn"


def test_job_control_knows_the_service_role_and_has_time_for_on_demand_runs(template):
    functions = template.find_resources("AWS::Lambda::Function")
    (job_control,) = [f for n, f in functions.items() if n.startswith("FunctionsJobControl")]
    variables = job_control["Properties"]["Environment"]["Variables"]
    assert variables["BEDROCK_ROLE_ARN"]["Fn::GetAtt"][0].startswith("BedrockBatchServiceRole")
    assert job_control["Properties"]["Timeout"] == 900


PROFILE_REGIONS = ["us-east-1", "us-east-2", "us-west-2"]


def _profile_context(default_context, model_id: str, **extra) -> dict:
    context = copy.deepcopy(default_context)
    context["batch-pipeline"]["models"]["haiku-4-5"] = {
        "backend": "bedrock",
        "model_id": model_id,
        "family": "anthropic",
        "max_output_tokens": 8192,
        "routes_to_regions": PROFILE_REGIONS,
        **extra,
    }
    context["batch-pipeline"]["pipelines"]["bedrock-claude"] = {
        "model": "haiku-4-5",
        "input_format": "prompt",
        "bedrock": {"invocation_type": "Converse"},
    }
    return context


def test_a_cross_region_profile_grants_the_profile_and_its_foundation_model_in_every_routed_region(default_context):
    app, _, template = synth(_profile_context(default_context, "us.anthropic.claude-haiku-4-5-20251001-v1:0"))
    app.synth()  # cdk-nag: no unacknowledged finding (no wildcard Region is left to acknowledge)
    statements = _by_sid(_policy_statements(template, "FunctionsJobControlRole"))
    invoke = _resolve(statements["InvokeConfiguredModels"]["Resource"])
    assert ":inference-profile/us.anthropic.claude-haiku-4-5-20251001-v1:0" in invoke
    assert "foundation-model/anthropic.claude-haiku" not in invoke  # never unconditioned
    through = statements["InvokeModelsThroughProfile0"]
    assert _actions(through) == ["bedrock:InvokeModel"]
    routed = through["Resource"] if isinstance(through["Resource"], list) else [through["Resource"]]
    assert sorted(_resolve(r) for r in routed) == sorted(
        _resolve(
            {
                "Fn::Join": [
                    "",
                    [
                        "arn:",
                        {"Ref": "AWS::Partition"},
                        f":bedrock:{region}::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0",
                    ],
                ]
            }
        )
        for region in PROFILE_REGIONS
    )
    condition = _resolve(through["Condition"]["StringLike"]["bedrock:InferenceProfileArn"])
    assert ":inference-profile/us.anthropic.claude-haiku-4-5-20251001-v1:0" in condition
    service = _by_sid(_policy_statements(template, "BedrockBatchServiceRole"))
    assert service["InvokeModelsThroughProfile0"]["Condition"] == through["Condition"]
    assert ":inference-profile/us.anthropic" in _resolve(service["InvokeProfile0"]["Resource"])
    create = _resolve(statements["CreateJobsForConfiguredModels"]["Resource"])
    assert all(
        f":bedrock:{region}::foundation-model/anthropic.claude-haiku-4-5" in create for region in PROFILE_REGIONS
    )
    assert ":bedrock:*:" not in create and ":bedrock:*:" not in _resolve(routed)


def test_an_application_inference_profile_arn_is_granted_as_is_with_its_foundation_model(default_context):
    arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abcdef123456"
    context = _profile_context(default_context, arn, foundation_model_id="anthropic.claude-haiku-4-5-20251001-v1:0")
    app, _, template = synth(context)
    app.synth()
    statements = _by_sid(_policy_statements(template, "FunctionsJobControlRole"))
    assert arn in _resolve(statements["InvokeConfiguredModels"]["Resource"])
    assert statements["InvokeModelsThroughProfile0"]["Condition"] == {
        "StringLike": {"bedrock:InferenceProfileArn": arn}
    }


def test_a_profile_without_its_regions_is_a_configuration_error(default_context):
    import pytest

    from batch_pipeline.config.app import ConfigError, load_app_config

    context = _profile_context(default_context, "us.anthropic.claude-haiku-4-5-20251001-v1:0")
    del context["batch-pipeline"]["models"]["haiku-4-5"]["routes_to_regions"]
    with pytest.raises(ConfigError, match="routes_to_regions"):
        load_app_config(context["batch-pipeline"])


def test_no_bedrock_pipeline_means_no_bedrock_role_or_grants(default_context):
    context = copy.deepcopy(default_context)
    del context["batch-pipeline"]["pipelines"]["bedrock-summarize"]
    del context["batch-pipeline"]["pipelines"]["bedrock-converse"]
    _, _, template = synth(context)
    assert not [n for n in template.find_resources("AWS::IAM::Role") if n.startswith("BedrockBatch")]
    statements = _policy_statements(template, "FunctionsJobControlRole")
    assert not any(a.startswith("bedrock:") for s in statements for a in _actions(s))


def test_job_control_writes_only_raw_outputs_and_retry_job_files_of_bedrock_runs(template):
    statements = _by_sid(_policy_statements(template, "FunctionsJobControlRole"))
    written = _resolve(statements["WriteOnDemandOutputs"]["Resource"])
    assert "/runs/bedrock-summarize/*/raw/*" in written
    assert "/runs/bedrock-summarize/*/shards/*-retry.jsonl" in written
    assert '/runs/bedrock-summarize/*/shards/*"' not in written
    assert sorted(_actions(statements["ReadOnDemandJobFiles"])) == ["s3:GetObject"]
