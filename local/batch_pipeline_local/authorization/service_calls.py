"""The calls AWS services make on the stack's behalf, derived from the template, evaluated like a handler's.

Nothing in local mode makes these calls (moto deploys no log groups or alarms and runs no containers), yet each is
a first-deploy or first-run failure on AWS when a policy is missing. Each ServiceCall names who calls (a service
principal, or a role the service assumes), what, on which resource, with the context the service sends:
- CloudWatch Logs encrypting each log group with its key: logs.<region>.amazonaws.com, encryption context
  aws:logs:arn = the log group ARN (CloudWatch Logs User Guide, "Encrypt log data in CloudWatch Logs using AWS KMS").
- Step Functions using the key for the state machine, as the state machine's role, encryption context
  aws:states:stateMachineArn (Step Functions Developer Guide, "Data at rest encryption").
- Alarms notifying the topic: cloudwatch.amazonaws.com publishing, and using the topic's key (CloudWatch User
  Guide, "Amazon SNS topic encryption for alarms").
- EventBridge invoking each rule target (the function's resource policy) and sending undeliverable events to the
  dead-letter queue, with its key (EventBridge User Guide, "Granting permissions to the dead-letter queue").
- SageMaker transform jobs as each model's execution role, Bedrock batch jobs as the service role: the trust
  policy (sts:AssumeRole with aws:SourceAccount / aws:SourceArn), reading shards/, writing raw/, using the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from batch_pipeline.config.runtime import RuntimePipeline, parse_runtime_pipelines
from batch_pipeline.storage.layout import RunFolder, run_prefix
from batch_pipeline_local.authorization.enforce import reason_for, simulate
from batch_pipeline_local.authorization.operations import (
    Request,
    RequestContext,
    missing_object_listing,
    s3_create_multipart,
    s3_get,
    s3_put,
)
from batch_pipeline_local.authorization.policies import PolicyDocument, PolicyStore, build_policy_store, log_group_arn
from batch_pipeline_local.project import Project
from batch_pipeline_local.template import ACCOUNT, REGION, STACK_NAME, Resolver, Template, resources_of


@dataclass(frozen=True)
class ServiceCall:
    purpose: str
    principal: str  # a service principal, or an assumed-role session ARN
    request: Request
    role: str | None = None  # logical id of the role whose identity policies apply
    source_arn: str | None = None

    def describe(self) -> str:
        return f"{self.purpose}: {self.principal} {self.request.action} on {self.request.resource}"


@dataclass(frozen=True)
class Verdict:
    call: ServiceCall
    allowed: bool
    reason: str
    missing: str

    def describe(self) -> str:
        return f"{self.call.describe()}: {'allowed' if self.allowed else 'DENIED ' + self.reason + '; ' + self.missing}"


def deployed_names(template: Template) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    """Physical names and attributes as CloudFormation would give them (generated names where none is set)."""
    physical: dict[str, str] = {}
    attributes: dict[tuple[str, str], str] = {}
    for logical, resource in template["Resources"].items():
        kind, props = resource["Type"], resource.get("Properties", {})
        generated = f"{STACK_NAME}-{logical}-GENERATED"
        if kind == "AWS::S3::Bucket":
            name = props.get("BucketName") if isinstance(props.get("BucketName"), str) else generated.lower()[:63]
            physical[logical], attributes[(logical, "Arn")] = name, f"arn:aws:s3:::{name}"
        elif kind == "AWS::SNS::Topic":
            arn = f"arn:aws:sns:{REGION}:{ACCOUNT}:{props.get('TopicName') or generated}"
            physical[logical] = attributes[(logical, "TopicArn")] = arn
        elif kind == "AWS::SQS::Queue":
            name = props.get("QueueName") or generated
            physical[logical] = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
            attributes[(logical, "Arn")] = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
        elif kind == "AWS::KMS::Key":
            physical[logical] = "00000000-0000-4000-8000-000000000000"
            attributes[(logical, "Arn")] = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{physical[logical]}"
        elif kind == "AWS::IAM::Role":
            name = props.get("RoleName") or generated[:64]
            physical[logical], attributes[(logical, "Arn")] = name, f"arn:aws:iam::{ACCOUNT}:role/{name}"
        elif kind == "AWS::Lambda::Function":
            name = props.get("FunctionName") or generated[:64]
            physical[logical], attributes[(logical, "Arn")] = name, f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
        elif kind == "AWS::StepFunctions::StateMachine":
            name = props.get("StateMachineName") or generated
            physical[logical] = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}"
            attributes[(logical, "Name")], attributes[(logical, "Arn")] = name, physical[logical]
        elif kind == "AWS::Logs::LogGroup":
            name = props.get("LogGroupName") if isinstance(props.get("LogGroupName"), str) else generated
            physical[logical] = name
            attributes[(logical, "Arn")] = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}:*"
        elif kind == "AWS::Events::Rule":
            name = props.get("Name") or generated[:64]
            physical[logical] = name
            attributes[(logical, "Arn")] = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{name}"
        elif kind == "AWS::CloudWatch::Alarm":
            physical[logical] = props.get("AlarmName") if isinstance(props.get("AlarmName"), str) else generated
            attributes[(logical, "Arn")] = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{physical[logical]}"
    return physical, attributes


def _service(name: str) -> str:
    return f"{name}.amazonaws.com"


def _service_context(source_arn: str | None) -> dict[str, str]:
    return {
        "aws:SourceAccount": ACCOUNT,
        **({"aws:SourceArn": source_arn} if source_arn else {}),
        "aws:SecureTransport": "true",
    }


def _key_calls(
    purpose: str,
    principal: str,
    key: str,
    context: RequestContext,
    role: str | None = None,
    source_arn: str | None = None,
    actions: tuple[str, ...] = ("kms:GenerateDataKey", "kms:Decrypt"),
) -> list[ServiceCall]:
    return [ServiceCall(purpose, principal, Request(a, key, context, via="kms"), role, source_arn) for a in actions]


def _output_bucket(store: PolicyStore, template: Template, physical: dict[str, str]) -> str:
    buckets = resources_of(template, "AWS::S3::Bucket")
    versioned = [n for n, b in buckets.items() if "VersioningConfiguration" in b["Properties"]]
    outputs = [n for n in versioned if "NotificationConfiguration" not in buckets[n]["Properties"]]
    return physical[outputs[0]]


def _pipelines(template: Template) -> dict[str, RuntimePipeline]:
    for function in resources_of(template, "AWS::Lambda::Function").values():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        if isinstance(variables.get("PIPELINES"), str):
            return parse_runtime_pipelines(variables["PIPELINES"])
    return {}


def _job_data_calls(
    purpose: str, principal: str, role: str, store: PolicyStore, bucket: str, pipeline: str, output_key: str
) -> list[ServiceCall]:
    """A batch job of a run of `pipeline` reading its shard and writing its output in the run folder, as the job's
    role."""
    run_id = f"{pipeline}-0123456789abcdef"
    folder = RunFolder(bucket=bucket, prefix=run_prefix(pipeline, run_id), pipeline=pipeline, run_id=run_id)
    shard = {"Bucket": bucket, "Key": folder.shard_key("part-00000.jsonl")}
    output = {"Bucket": bucket, "Key": folder.raw_prefix + output_key}
    requests = [
        *s3_get(shard, store),
        missing_object_listing({"Bucket": bucket, "Key": folder.shards_prefix}),
        *s3_put(output, store),
        *s3_create_multipart(output, store),
    ]
    unique = {r.key(): r for r in requests}.values()
    return [ServiceCall(purpose, principal, r, role) for r in unique]


def service_calls(template: Template) -> tuple[list[ServiceCall], PolicyStore]:
    physical, attributes = deployed_names(template)
    resolve = Resolver(physical, attributes)
    store = build_policy_store(template, resolve, physical, attributes)
    calls = [
        *_log_group_calls(template, store, physical),
        *_state_machine_calls(template, store, physical),
        *_alarm_calls(template, store, resolve, attributes),
        *_rule_calls(template, store, resolve, attributes),
        *_job_role_calls(template, store, resolve, physical),
    ]
    return calls, store


def _log_group_calls(template: Template, store: PolicyStore, physical: dict[str, str]) -> list[ServiceCall]:
    """CloudWatch Logs using each encrypted log group's key."""
    calls: list[ServiceCall] = []
    for logical in resources_of(template, "AWS::Logs::LogGroup"):
        arn = log_group_arn(template, logical, physical)
        key = store.kms_keys.get(arn)
        if key:
            context = {"kms:EncryptionContext:aws:logs:arn": arn, **_service_context(arn)}
            calls += _key_calls(
                f"CloudWatch Logs encrypting {logical}",
                f"logs.{REGION}.amazonaws.com",
                key,
                context,
                actions=("kms:GenerateDataKey", "kms:Decrypt", "kms:Encrypt"),
            )
    return calls


def _state_machine_calls(template: Template, store: PolicyStore, physical: dict[str, str]) -> list[ServiceCall]:
    """Step Functions assuming each state machine's role, and using its key if encrypted."""
    calls: list[ServiceCall] = []
    for logical, machine in resources_of(template, "AWS::StepFunctions::StateMachine").items():
        role_logical = machine["Properties"]["RoleArn"]["Fn::GetAtt"][0]
        role = store.roles[role_logical]
        arn = physical[logical]
        calls.append(
            ServiceCall(
                f"Step Functions assuming {role_logical}",
                _service("states"),
                Request("sts:AssumeRole", role.arn, _service_context(arn)),
                source_arn=arn,
            )
        )
        key = store.kms_keys.get(arn)
        if key:
            context = {
                "kms:EncryptionContext:aws:states:stateMachineArn": arn,
                "kms:ViaService": f"states.{REGION}.amazonaws.com",
                "aws:SecureTransport": "true",
            }
            calls += _key_calls(
                f"Step Functions encrypting {logical}'s executions",
                role.session_arn(logical),
                key,
                context,
                role_logical,
            )
    return calls


def _alarm_calls(
    template: Template, store: PolicyStore, resolve: Resolver, attributes: dict[tuple[str, str], str]
) -> list[ServiceCall]:
    """CloudWatch publishing each alarm's SNS actions (and using the topic's key)."""
    calls: list[ServiceCall] = []
    for logical, alarm in resources_of(template, "AWS::CloudWatch::Alarm").items():
        source = attributes[(logical, "Arn")]
        for action in resolve(alarm["Properties"].get("AlarmActions", [])):
            if ":sns:" not in action:
                continue
            calls.append(
                ServiceCall(
                    f"alarm {logical} notifying",
                    _service("cloudwatch"),
                    Request("sns:Publish", action, _service_context(source)),
                    source_arn=source,
                )
            )
            key = store.kms_keys.get(action)
            if key:
                context = {"kms:EncryptionContext:aws:sns:topicArn": action, **_service_context(source)}
                calls += _key_calls(
                    f"alarm {logical} notifying the encrypted topic",
                    _service("cloudwatch"),
                    key,
                    context,
                    source_arn=source,
                )
    return calls


def _rule_calls(
    template: Template, store: PolicyStore, resolve: Resolver, attributes: dict[tuple[str, str], str]
) -> list[ServiceCall]:
    """EventBridge invoking each rule's Lambda targets and sending to its dead-letter queues."""
    calls: list[ServiceCall] = []
    for logical, rule in resources_of(template, "AWS::Events::Rule").items():
        source = attributes[(logical, "Arn")]
        for target in resolve(rule["Properties"].get("Targets", [])):
            if ":lambda:" in target["Arn"]:
                calls.append(
                    ServiceCall(
                        f"rule {logical} invoking its target",
                        _service("events"),
                        Request("lambda:InvokeFunction", target["Arn"], _service_context(source)),
                        source_arn=source,
                    )
                )
            queue = (target.get("DeadLetterConfig") or {}).get("Arn")
            if queue:
                calls.append(
                    ServiceCall(
                        f"rule {logical} dead-lettering",
                        _service("events"),
                        Request("sqs:SendMessage", queue, _service_context(source)),
                        source_arn=source,
                    )
                )
                key = store.kms_keys.get(queue)
                if key:
                    context = {"kms:EncryptionContext:aws:sqs:arn": queue, **_service_context(source)}
                    calls += _key_calls(
                        f"rule {logical} dead-lettering to the encrypted queue",
                        _service("events"),
                        key,
                        context,
                        source_arn=source,
                    )
    return calls


def _job_role_calls(
    template: Template, store: PolicyStore, resolve: Resolver, physical: dict[str, str]
) -> list[ServiceCall]:
    """SageMaker and Bedrock assuming their job roles and reading/writing the run's data."""
    calls: list[ServiceCall] = []
    pipelines = _pipelines(template)
    bucket = _output_bucket(store, template, physical)
    for model in resources_of(template, "AWS::SageMaker::Model").values():
        props = resolve(model["Properties"])
        role = store.role_by_arn(props["ExecutionRoleArn"])
        if role is None:  # a role from outside the template (RealtimeEndpoints' execution_role_for): not ours to check
            continue
        job = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:transform-job/llmbp-local-check"
        calls.append(
            ServiceCall(
                f"SageMaker assuming {role.logical_id}",
                _service("sagemaker"),
                Request("sts:AssumeRole", role.arn, _service_context(job)),
                source_arn=job,
            )
        )
        for name, pipeline in pipelines.items():
            if pipeline.sagemaker_model_name == props["ModelName"]:
                calls += _job_data_calls(
                    f"transform job of {name}",
                    role.session_arn("SageMaker"),
                    role.logical_id,
                    store,
                    bucket,
                    name,
                    "part-00000.jsonl.out",
                )
    bedrock_roles = [
        r
        for r in store.roles.values()
        if "bedrock.amazonaws.com" in str(r.trust) and any(p.bedrock_model_id for p in pipelines.values())
    ]
    for role in bedrock_roles:
        job = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:model-invocation-job/abcd1234efgh"
        calls.append(
            ServiceCall(
                f"Bedrock assuming {role.logical_id}",
                _service("bedrock"),
                Request("sts:AssumeRole", role.arn, _service_context(job)),
                source_arn=job,
            )
        )
        for name, pipeline in pipelines.items():
            if pipeline.bedrock_model_id:
                calls += _job_data_calls(
                    f"Bedrock batch job of {name}",
                    role.session_arn("bedrock"),
                    role.logical_id,
                    store,
                    bucket,
                    name,
                    "abcd1234efgh/part-00000.jsonl.out",
                )
    return calls


def evaluate_service_calls(template: Template, node_modules: Path | None = None) -> list[Verdict]:
    """Each service call of `template`, judged by the evaluator installed in `node_modules` (default: the current
    project's)."""
    node_modules = node_modules or Project.find().node_modules
    calls, store = service_calls(template)
    verdicts = []
    for call in calls:
        request = call.request
        if request.action == "sts:AssumeRole":
            assumed = store.role_by_arn(request.resource)
            if assumed is None:  # every AssumeRole call above names a role of the template
                raise KeyError(f"{call.describe()}: no role {request.resource} in the template")
            policy: PolicyDocument | None = assumed.trust
        elif request.via == "kms":
            policy = store.key_policies.get(request.resource)
        else:
            policy = store.resource_policy(request.resource)
        identity = store.roles[call.role].identity_policies() if call.role else []
        extra = (
            {"aws:PrincipalArn": store.roles[call.role].arn, "aws:PrincipalAccount": ACCOUNT}
            if call.role
            else {"aws:PrincipalServiceName": call.principal, "aws:PrincipalIsAWSService": "true"}
        )
        verdict = simulate(call.principal, request, identity, policy, extra, node_modules=node_modules)
        if not call.role:  # a service principal has no identity policies: only the resource policy can allow it
            verdict = {
                **verdict,
                "denials": [d for d in verdict.get("denials") or [] if d.get("policyType") != "identity"],
            }
        allowed = verdict["result"] == "Allowed"
        verdicts.append(
            Verdict(
                call,
                allowed,
                "" if allowed else reason_for(verdict, request.action),
                "" if allowed else _missing(call, request),
            )
        )
    return verdicts


def _missing(call: ServiceCall, request: Request) -> str:
    """The statement that would allow it, in words: where it goes and what it must match."""
    where = (
        "the role's trust policy"
        if request.action == "sts:AssumeRole"
        else "the key policy"
        if request.via == "kms" and not call.role
        else f"{call.role}'s policy (and the key policy must trust the account)"
        if request.via == "kms"
        else f"{call.role}'s policy"
        if call.role
        else "the resource policy of " + request.resource
    )
    conditions = ", ".join(f"{k}={v}" for k, v in request.context.items() if k != "aws:SecureTransport")
    return f"missing statement in {where}: Allow {call.principal} {request.action} on {request.resource}" + (
        f" where {conditions}" if conditions else ""
    )
