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

import pytest

# --- template reading -------------------------------------------------------------------------------------


def render(value) -> str:
    """An intrinsic as a comparable string: Ref X -> ${X}, GetAtt X.A -> ${X.A}, Join concatenated."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        (fn, arg), = value.items()
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
        fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in as_list(statement.get("Action", [])))


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
    (logical_id, key), = resources(tpl, "AWS::KMS::Key").items()
    return logical_id, key


def key_statements(tpl: dict) -> list[dict]:
    return the_key(tpl)[1]["Properties"]["KeyPolicy"]["Statement"]


def uses_key(value, key_id: str) -> bool:
    return render(value) in {f"${{{key_id}.Arn}}", f"${{{key_id}}}"}


def role_statements(tpl: dict, function_id_prefix: str) -> list[dict]:
    """Identity statements of the role the Lambda function `function_id_prefix...` runs as."""
    (fn,), = [[v for k, v in resources(tpl, "AWS::Lambda::Function").items() if k.startswith(function_id_prefix)]]
    role_id = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    return [s for policy in resources(tpl, "AWS::IAM::Policy").values()
            if {"Ref": role_id} in policy["Properties"]["Roles"]
            for s in policy["Properties"]["PolicyDocument"]["Statement"]]


def matches(pattern: str, value: str) -> bool:
    return fnmatch.fnmatchcase(value, pattern)


ACCOUNT_REGION = "${AWS::Partition}:{service}:${AWS::Region}:${AWS::AccountId}"


def arn(service: str, resource: str) -> str:
    return "arn:" + ACCOUNT_REGION.replace("{service}", service) + ":" + resource


# --- the checks -------------------------------------------------------------------------------------------

LOGS_KEY_ACTIONS = ("kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey",
                    "kms:DescribeKey")


def log_group_key_problems(tpl: dict) -> list[str]:
    key_id, _ = the_key(tpl)
    groups = {k: v["Properties"] for k, v in resources(tpl, "AWS::Logs::LogGroup").items()
              if "KmsKeyId" in v["Properties"] and uses_key(v["Properties"]["KmsKeyId"], key_id)}
    statements = [s for s in key_statements(tpl) if "logs.${AWS::Region}.amazonaws.com" in service_principals(s)]
    problems = []
    for group_id, group in groups.items():
        # An unnamed group gets a generated name: only a log-group:* pattern can cover it.
        name = group.get("LogGroupName", "CloudFormationGeneratedName-abc123")
        group_arn = arn("logs", f"log-group:{render(name)}")
        for action in LOGS_KEY_ACTIONS:
            if not any(allows(s, action) and any(matches(p, group_arn) for p in condition(
                    s, ("ArnLike", "ArnEquals", "StringLike", "StringEquals"), "kms:EncryptionContext:aws:logs:arn"))
                       for s in statements):
                problems.append(f"{group_id}: key policy does not let logs.<region>.amazonaws.com {action} for {group_arn}")
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
        statements = [s for p in resources(tpl, "AWS::IAM::Policy").values() if {"Ref": role_id} in p["Properties"]["Roles"]
                      for s in p["Properties"]["PolicyDocument"]["Statement"]]
        for action in ("kms:Decrypt", "kms:GenerateDataKey"):
            if not any(allows(s, action) and any(matches(v, sm_arn) for v in condition(
                    s, ("StringEquals", "ArnEquals", "ArnLike", "StringLike"), "kms:EncryptionContext:aws:states:stateMachineArn"))
                       for s in statements):
                problems.append(f"{sm_id}: role may not {action} with encryption context stateMachineArn={sm_arn}")
    return problems


def alarm_topic_key_problems(tpl: dict) -> list[str]:
    key_id, _ = the_key(tpl)
    topics = {k for k, v in resources(tpl, "AWS::SNS::Topic").items()
              if uses_key(v["Properties"].get("KmsMasterKeyId", ""), key_id)}
    notified = {render(a)[2:-1] for alarm in resources(tpl, "AWS::CloudWatch::Alarm").values()
                for a in alarm["Properties"].get("AlarmActions", []) + alarm["Properties"].get("OKActions", [])}
    if not topics & notified:
        return []
    alarm_arn = arn("cloudwatch", "alarm:AnyAlarmOfThisStack")
    problems = []
    for action in ("kms:Decrypt", "kms:GenerateDataKey"):
        candidates = [s for s in key_statements(tpl)
                      if "cloudwatch.amazonaws.com" in service_principals(s) and allows(s, action)]
        if not candidates:
            problems.append(f"key policy does not let cloudwatch.amazonaws.com {action} (alarms notify {sorted(topics & notified)})")
        elif not all(condition(s, ("StringEquals",), "aws:SourceAccount") == ["${AWS::AccountId}"]
                     and any(matches(p, alarm_arn) for p in condition(s, ("ArnLike", "ArnEquals"), "aws:SourceArn"))
                     for s in candidates):
            problems.append(f"cloudwatch.amazonaws.com {action} is not scoped to this account's alarms (confused deputy)")
    return problems


def dead_letter_key_problems(tpl: dict) -> list[str]:
    key_id, _ = the_key(tpl)
    queues = {k: v for k, v in resources(tpl, "AWS::SQS::Queue").items()
              if uses_key(v["Properties"].get("KmsMasterKeyId", ""), key_id)}
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
                if not any("events.amazonaws.com" in service_principals(s) and allows(s, action)
                           and set(condition(s, ("ArnEquals", "ArnLike"), "aws:SourceArn")) & rule_arns
                           for s in key_statements(tpl)):
                    problems.append(f"{rule_id}: key policy does not let events.amazonaws.com {action} for the rule "
                                    f"(its dead-letter queue {queue_id} is encrypted)")
            sends = [s for p in resources(tpl, "AWS::SQS::QueuePolicy").values() if {"Ref": queue_id} in p["Properties"]["Queues"]
                     for s in p["Properties"]["PolicyDocument"]["Statement"]
                     if "events.amazonaws.com" in service_principals(s) and allows(s, "sqs:SendMessage")
                     and set(condition(s, ("ArnEquals", "ArnLike"), "aws:SourceArn")) & rule_arns]
            if not sends:
                problems.append(f"{rule_id}: queue policy of {queue_id} does not let the rule send dead letters")
    return problems


def bucket_id(tpl: dict, suffix: str) -> str:
    (found,), = [[k for k in resources(tpl, "AWS::S3::Bucket") if k.startswith(f"Storage{suffix}")]]
    return found


def _grants(statements: list[dict], action: str, resource: str) -> bool:
    return any(allows(s, action) and any(matches(render(r), resource) for r in as_list(s["Resource"])) and
               "Condition" not in s for s in statements)


def list_bucket_problems(tpl: dict) -> list[str]:
    problems = []
    input_bucket, output_bucket = bucket_id(tpl, "Input"), bucket_id(tpl, "Output")
    if not _grants(role_statements(tpl, "FunctionsIntake"), "s3:ListBucket", f"${{{input_bucket}.Arn}}"):
        problems.append("intake: no s3:ListBucket on the input bucket (a missing upload reads as AccessDenied)")
    job_control = role_statements(tpl, "FunctionsJobControl")
    if not _grants(job_control, "s3:ListBucket", f"${{{output_bucket}.Arn}}"):
        problems.append("job control: no s3:ListBucket on the output bucket (a missing raw/ output reads as AccessDenied)")
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
def tpl(template) -> dict:
    return template.to_json()


def test_template_has_what_the_checks_look_at(tpl):
    encrypted_groups = [g for g in resources(tpl, "AWS::Logs::LogGroup").values() if "KmsKeyId" in g["Properties"]]
    assert len(encrypted_groups) >= 8
    assert resources(tpl, "AWS::CloudWatch::Alarm")
    assert any("DeadLetterConfig" in t for r in resources(tpl, "AWS::Events::Rule").values() for t in r["Properties"]["Targets"])


def test_1_cloudwatch_logs_may_use_the_key_for_every_encrypted_log_group(tpl):
    assert log_group_key_problems(tpl) == []
    planted = without_statements(tpl, lambda s: "logs.${AWS::Region}.amazonaws.com" in service_principals(s))
    assert len(log_group_key_problems(planted)) == 8 * len(LOGS_KEY_ACTIONS)
    # A condition naming a different log group does not cover ours.
    narrowed = copy.deepcopy(tpl)
    for s in key_statements(narrowed):
        if "logs.${AWS::Region}.amazonaws.com" in service_principals(s):
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
    planted = without_statements(tpl, lambda s: "cloudwatch.amazonaws.com" in service_principals(s)
                                 and "Sid" in s and "Key" in s["Sid"])
    assert len(alarm_topic_key_problems(planted)) == 2
    unscoped = copy.deepcopy(tpl)
    for s in key_statements(unscoped):
        if "cloudwatch.amazonaws.com" in service_principals(s):
            s.pop("Condition")
    assert alarm_topic_key_problems(unscoped)


def test_3_topic_policy_lets_this_accounts_alarms_publish(tpl):
    statements = [s for p in resources(tpl, "AWS::SNS::TopicPolicy").values()
                  for s in p["Properties"]["PolicyDocument"]["Statement"]]
    assert any("cloudwatch.amazonaws.com" in service_principals(s) and allows(s, "sns:Publish")
               and condition(s, ("StringEquals",), "aws:SourceAccount") == ["${AWS::AccountId}"] for s in statements)


def test_4_eventbridge_may_use_the_key_and_the_queue_for_the_upload_rules_dead_letters(tpl):
    assert dead_letter_key_problems(tpl) == []
    no_key = without_statements(tpl, lambda s: "events.amazonaws.com" in service_principals(s) and "Action" in s
                                and allows(s, "kms:Decrypt"))
    assert len(dead_letter_key_problems(no_key)) == 2
    other_rule = copy.deepcopy(tpl)
    for s in key_statements(other_rule):
        if "events.amazonaws.com" in service_principals(s):
            s["Condition"]["ArnEquals"]["aws:SourceArn"] = arn("events", "rule/someone-elses")
    assert dead_letter_key_problems(other_rule)
    no_send = without_statements(tpl, lambda s: "events.amazonaws.com" in service_principals(s) and allows(s, "sqs:SendMessage"))
    assert dead_letter_key_problems(no_send) == [
        f"{next(iter(resources(tpl, 'AWS::Events::Rule')))}: queue policy of "
        f"{next(iter(resources(tpl, 'AWS::SQS::Queue')))} does not let the rule send dead letters"]


def test_5_intake_and_job_control_can_tell_a_missing_object_from_a_forbidden_one(tpl):
    assert list_bucket_problems(tpl) == []
    planted = without_statements(tpl, lambda s: allows(s, "s3:ListBucket") and s.get("Sid", "").startswith("TellMissing"))
    assert len(list_bucket_problems(planted)) == 2
    no_abort = without_statements(tpl, lambda s: s.get("Sid") == "AbortJobOutputUploads")
    assert list_bucket_problems(no_abort) == ["job control: no s3:AbortMultipartUpload on raw/ outputs"]
