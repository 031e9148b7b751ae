"""Token objects (`job-tokens/<job name>.json`, storage.job_store) have the lifecycle they need: the output bucket
expires them once older than the longest a backend job can run, job control may write and delete them (and nothing
else there), and the job-state event handler may only read them."""

from __future__ import annotations

import json

import botocore.session
import pytest

from batch_pipeline.config.app import BedrockSettings, SageMakerSettings
from batch_pipeline.storage.layout import TOKENS_PREFIX
from stacks.storage import TOKEN_EXPIRY_DAYS
from tests.infrastructure.test_job_event_rules import handler_statements


def _maximum(model: type, field: str) -> int:
    (limit,) = [m.le for m in model.model_fields[field].metadata if getattr(m, "le", None) is not None]
    return int(limit)


def longest_job_hours() -> int:
    """The longest a job this stack starts can run: Bedrock's own ceiling on timeoutDurationInHours (from botocore's
    service model, which mirrors the API reference's Valid Range), and the configuration's ceilings (a SageMaker
    transform job has no stopping condition of its own: job control stops it after max_runtime_hours)."""
    bedrock = botocore.session.get_session().get_service_model("bedrock")
    api = int(bedrock.shape_for("ModelInvocationJobTimeoutDurationInHours").metadata["max"])
    return max(api, _maximum(BedrockSettings, "timeout_hours"), _maximum(SageMakerSettings, "max_runtime_hours"))


def output_bucket_rules(template) -> list[dict]:
    buckets = template.find_resources("AWS::S3::Bucket")
    (output,) = [
        b
        for b in buckets.values()
        if any(rule.get("TagFilters") for rule in b["Properties"].get("LifecycleConfiguration", {}).get("Rules", []))
    ]
    return output["Properties"]["LifecycleConfiguration"]["Rules"]


def token_rule_problems(rules: list[dict]) -> list[str]:
    """What is wrong with the output bucket's rules for token objects (empty: nothing)."""
    matching = [rule for rule in rules if rule.get("Prefix") == TOKENS_PREFIX and rule.get("Status") == "Enabled"]
    if len(matching) != 1:
        return [f"expected one enabled rule with prefix {TOKENS_PREFIX}, found {len(matching)}"]
    (rule,) = matching
    problems = []
    days = rule.get("ExpirationInDays")
    if days is None or days * 24 <= longest_job_hours():
        problems.append(f"tokens expire after {days} days, not after the longest job ({longest_job_hours()} h)")
    if rule.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays") is None:
        problems.append("the versions a delete or an overwrite leaves behind never expire")
    if rule.get("TagFilters"):
        problems.append("the rule also needs a tag that token objects are never written with")
    return problems


def test_the_output_bucket_expires_token_objects_after_the_longest_job(template):
    assert token_rule_problems(output_bucket_rules(template)) == []
    (rule,) = [rule for rule in output_bucket_rules(template) if rule.get("Prefix") == TOKENS_PREFIX]
    assert rule["ExpirationInDays"] == TOKEN_EXPIRY_DAYS == 8  # 168 h is 7 days, one more for a job's Stopping


@pytest.mark.parametrize(
    "planted",
    [
        lambda rule: {**rule, "ExpirationInDays": 7},  # exactly the longest job: a waiting token could expire
        lambda rule: {**rule, "Prefix": "tokens/"},
        lambda rule: {k: v for k, v in rule.items() if k != "NoncurrentVersionExpiration"},
        lambda rule: {**rule, "Status": "Disabled"},
    ],
)
def test_the_rule_check_fails_on_a_planted_defect(template, planted):
    rules = [planted(rule) if rule.get("Prefix") == TOKENS_PREFIX else rule for rule in output_bucket_rules(template)]
    assert token_rule_problems(rules)


def _role_statements(template, handler: str) -> list[dict]:
    (function,) = [
        f for f in template.find_resources("AWS::Lambda::Function").values() if f["Properties"]["Handler"] == handler
    ]
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    return [
        statement
        for policy in template.find_resources("AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _actions(statement: dict) -> list[str]:
    action = statement["Action"]
    return action if isinstance(action, list) else [action]


def test_job_control_writes_and_deletes_token_objects_and_deletes_nothing_else(template):
    statements = _role_statements(template, "batch_pipeline.handlers.job_control.handler")
    deletes = [s for s in statements if "s3:DeleteObject" in _actions(s)]
    (tokens,) = deletes
    assert sorted(_actions(tokens)) == ["s3:DeleteObject", "s3:PutObject"]
    assert json.dumps(tokens["Resource"]).count(f"/{TOKENS_PREFIX}*") == 1
    assert "runs/" not in json.dumps(tokens["Resource"])


def test_the_event_handler_only_reads_token_objects(template):
    actions = {action for s in handler_statements(template) for action in _actions(s) if action.startswith("s3:")}
    assert actions == {"s3:GetObject", "s3:ListBucket"}
