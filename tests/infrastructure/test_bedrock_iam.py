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
    roles = {n: r for n, r in template.find_resources("AWS::IAM::Role").items() if n.startswith("BedrockBatchServiceRole")}
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


def test_job_control_creates_jobs_for_configured_models_only(template):
    statements = _by_sid(_policy_statements(template, "FunctionsJobControlRole"))
    create = statements["CreateJobsForConfiguredModels"]
    assert _actions(create) == ["bedrock:CreateModelInvocationJob"]
    resources = _resolve(create["Resource"])
    assert "foundation-model/anthropic.claude-3-haiku-20240307-v1:0" in resources
    assert "foundation-model/*" not in resources
    invoke = statements["InvokeConfiguredModels"]
    assert _actions(invoke) == ["bedrock:InvokeModel"]
    assert "foundation-model/anthropic.claude-3-haiku-20240307-v1:0" in _resolve(invoke["Resource"])
    control = statements["ControlInvocationJobs"]
    assert sorted(_actions(control)) == ["bedrock:GetModelInvocationJob", "bedrock:StopModelInvocationJob",
                                         "bedrock:TagResource"]
    assert _resolve(control["Resource"]).endswith(':model-invocation-job/*"]]}')
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


def test_inference_profile_models_grant_the_profile_and_its_foundation_model(default_context):
    context = copy.deepcopy(default_context)
    context["batch-pipeline"]["models"]["claude-3-haiku"]["model_id"] = "us.anthropic.claude-3-haiku-20240307-v1:0"
    app, _, template = synth(context)
    app.synth()  # cdk-nag: the wildcard region of the profile's foundation model is acknowledged with a reason
    statements = _by_sid(_policy_statements(template, "FunctionsJobControlRole"))
    resources = _resolve(statements["InvokeConfiguredModels"]["Resource"])
    assert ":inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0" in resources
    assert ":bedrock:*::foundation-model/anthropic.claude-3-haiku-20240307-v1:0" in resources


def test_no_bedrock_pipeline_means_no_bedrock_role_or_grants(default_context):
    context = copy.deepcopy(default_context)
    del context["batch-pipeline"]["pipelines"]["bedrock-summarize"]
    _, _, template = synth(context)
    assert not [n for n in template.find_resources("AWS::IAM::Role") if n.startswith("BedrockBatch")]
    statements = _policy_statements(template, "FunctionsJobControlRole")
    assert not any(a.startswith("bedrock:") for s in statements for a in _actions(s))


def test_job_control_writes_only_raw_outputs_and_retry_job_files_of_bedrock_runs(template):
    statements = _by_sid(_policy_statements(template, "FunctionsJobControlRole"))
    written = _resolve(statements["WriteOnDemandOutputs"]["Resource"])
    assert "/runs/bedrock-summarize/*/raw/*" in written
    assert "/runs/bedrock-summarize/*/shards/*-retry.jsonl" in written
    assert "/runs/bedrock-summarize/*/shards/*\"" not in written
    assert sorted(_actions(statements["ReadOnDemandJobFiles"])) == ["s3:GetObject"]
