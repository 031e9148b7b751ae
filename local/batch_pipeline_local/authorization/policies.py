"""What the synthesized template says about access: each role's trust and identity policies, each resource's
policy (bucket, topic, queue, Lambda function, KMS key) and which key encrypts what. Read from the template
with the local names resolved, so the evaluator sees the policies CloudFormation would deploy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypedDict

from batch_pipeline_local.template import ACCOUNT, REGION, Resolver, Template, resources_of

# An IAM policy document ({"Version": ..., "Statement": [...]}) as the template holds it: IAM's grammar, which the
# evaluator (iam-simulate) parses and checks.
PolicyDocument: TypeAlias = dict[str, Any]


class NamedPolicy(TypedDict):
    """An identity policy as the evaluator takes it."""

    name: str
    policy: PolicyDocument


@dataclass
class Role:
    logical_id: str
    name: str
    arn: str
    trust: PolicyDocument
    policies: dict[str, PolicyDocument] = field(default_factory=dict)  # policy name -> document

    def session_arn(self, session: str) -> str:
        return f"arn:aws:sts::{ACCOUNT}:assumed-role/{self.name}/{session}"

    def identity_policies(self) -> list[NamedPolicy]:
        return [{"name": name, "policy": document} for name, document in self.policies.items()]


@dataclass
class Bucket:
    name: str
    arn: str
    kms_key_arn: str | None
    bucket_key: bool


@dataclass
class PolicyStore:
    roles: dict[str, Role]  # logical id -> role
    buckets: dict[str, Bucket]  # bucket name -> bucket
    resource_policies: dict[str, PolicyDocument]  # resource ARN (bucket, topic, queue, function, key) -> policy
    kms_keys: dict[str, str]  # encrypted resource ARN (topic, queue, log group, state machine) -> key ARN
    key_policies: dict[str, PolicyDocument]  # key ARN -> key policy

    def role_by_arn(self, arn: str) -> Role | None:
        return next((r for r in self.roles.values() if r.arn == arn), None)

    def bucket_of(self, arn: str) -> Bucket | None:
        return (
            self.buckets.get(arn.removeprefix("arn:aws:s3:::").split("/", 1)[0])
            if arn.startswith("arn:aws:s3:::")
            else None
        )

    def resource_policy(self, arn: str) -> PolicyDocument | None:
        bucket = self.bucket_of(arn)
        if bucket is not None:
            return self.resource_policies.get(bucket.arn)
        if ":function:" in arn:  # a qualified function ARN shares the function's policy
            arn = ":".join(arn.split(":")[:7])
        return self.resource_policies.get(arn)


def build_policy_store(
    template: Template, resolve: Resolver, physical: dict[str, str], attributes: dict[tuple[str, str], str]
) -> PolicyStore:
    roles = _roles(template, resolve, attributes)
    buckets = _buckets(template, resolve, physical)
    policies = _resource_policies(template, resolve, attributes)
    kms_keys = _encryption_keys(template, resolve, physical, attributes)
    key_policies = {
        attributes[(logical, "Arn")]: resolve(resource["Properties"]["KeyPolicy"])
        for logical, resource in resources_of(template, "AWS::KMS::Key").items()
    }
    policies.update(key_policies)
    return PolicyStore(roles, buckets, policies, kms_keys, key_policies)


def _roles(template: Template, resolve: Resolver, attributes: dict[tuple[str, str], str]) -> dict[str, Role]:
    """Every role by logical id, with its inline policies and the AWS::IAM::Policy documents attached to it."""
    roles: dict[str, Role] = {}
    for logical, resource in resources_of(template, "AWS::IAM::Role").items():
        props = resolve(resource["Properties"])
        arn = attributes[(logical, "Arn")]
        role = Role(logical, arn.rsplit("/", 1)[-1], arn, props["AssumeRolePolicyDocument"])
        for inline in props.get("Policies", []):
            role.policies[inline["PolicyName"]] = inline["PolicyDocument"]
        roles[logical] = role
    for logical, resource in resources_of(template, "AWS::IAM::Policy").items():
        props = resource["Properties"]
        document = resolve(props["PolicyDocument"])
        for reference in props.get("Roles", []):
            roles[reference["Ref"]].policies[props.get("PolicyName", logical)] = document
    return roles


def _buckets(template: Template, resolve: Resolver, physical: dict[str, str]) -> dict[str, Bucket]:
    """Every bucket by name, with its default encryption key (SSE-KMS only) and whether S3 Bucket Keys are on."""
    buckets: dict[str, Bucket] = {}
    for logical, resource in resources_of(template, "AWS::S3::Bucket").items():
        props = resolve(resource["Properties"])
        rule = (props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration") or [{}])[0]
        default = rule.get("ServerSideEncryptionByDefault", {})
        kms = default.get("KMSMasterKeyID") if default.get("SSEAlgorithm") in ("aws:kms", "aws:kms:dsse") else None
        name = physical[logical]
        buckets[name] = Bucket(name, f"arn:aws:s3:::{name}", kms, bool(rule.get("BucketKeyEnabled")))
    return buckets


def _resource_policies(
    template: Template, resolve: Resolver, attributes: dict[tuple[str, str], str]
) -> dict[str, PolicyDocument]:
    """Resource ARN -> resource policy: bucket, topic and queue policies, and Lambda permissions as one policy."""
    policies: dict[str, PolicyDocument] = {}
    for resource in resources_of(template, "AWS::S3::BucketPolicy").values():
        props = resolve(resource["Properties"])
        policies[f"arn:aws:s3:::{props['Bucket']}"] = props["PolicyDocument"]
    for kind, targets in (("AWS::SNS::TopicPolicy", "Topics"), ("AWS::SQS::QueuePolicy", "Queues")):
        for resource in resources_of(template, kind).values():
            props = resource["Properties"]
            for target in props[targets]:
                arn = _queue_arn(target, attributes) if kind == "AWS::SQS::QueuePolicy" else resolve(target)
                policies[arn] = resolve(props["PolicyDocument"])
    for logical, resource in resources_of(template, "AWS::Lambda::Permission").items():
        props = resolve(resource["Properties"])
        policies.setdefault(_function_arn(props["FunctionName"]), {"Version": "2012-10-17", "Statement": []})[
            "Statement"
        ].append(_permission_statement(logical, props))
    return policies


def _encryption_keys(
    template: Template, resolve: Resolver, physical: dict[str, str], attributes: dict[tuple[str, str], str]
) -> dict[str, str]:
    """Resource -> the KMS key it is encrypted with: topics, queues, log groups and state machines."""
    kms_keys: dict[str, str] = {}
    for logical, resource in resources_of(template, "AWS::SNS::Topic").items():
        if "KmsMasterKeyId" in resource["Properties"]:
            kms_keys[physical[logical]] = resolve(resource["Properties"]["KmsMasterKeyId"])
    for logical, resource in resources_of(template, "AWS::SQS::Queue").items():
        if "KmsMasterKeyId" in resource["Properties"]:
            kms_keys[attributes[(logical, "Arn")]] = resolve(resource["Properties"]["KmsMasterKeyId"])
    for logical, resource in resources_of(template, "AWS::Logs::LogGroup").items():
        if "KmsKeyId" in resource["Properties"]:
            kms_keys[log_group_arn(template, logical, physical)] = resolve(resource["Properties"]["KmsKeyId"])
    for logical, resource in resources_of(template, "AWS::StepFunctions::StateMachine").items():
        encryption = resource["Properties"].get("EncryptionConfiguration") or {}
        if encryption.get("Type") == "CUSTOMER_MANAGED_KMS_KEY":
            kms_keys[physical[logical]] = resolve(encryption["KmsKeyId"])
    return kms_keys


def log_group_arn(template: Template, logical: str, physical: dict[str, str]) -> str:
    """The log group's ARN as KMS sees it in the encryption context (aws:logs:arn): no trailing `:*`."""
    name = (
        template["Resources"][logical]["Properties"].get("LogGroupName") or physical.get(logical) or f"local-{logical}"
    )
    return f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}"


def _queue_arn(reference: Any, attributes: dict[tuple[str, str], str]) -> str:
    return (
        attributes[(reference["Ref"], "Arn")] if isinstance(reference, dict) and "Ref" in reference else str(reference)
    )


def _function_arn(name_or_arn: str) -> str:
    return (
        name_or_arn if name_or_arn.startswith("arn:") else f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name_or_arn}"
    )


def _permission_statement(logical: str, props: dict[str, Any]) -> dict[str, Any]:
    """The statement Lambda adds to the function's resource policy for an AWS::Lambda::Permission (AddPermission)."""
    principal = props["Principal"]
    statement: dict[str, Any] = {
        "Sid": logical,
        "Effect": "Allow",
        "Action": props["Action"],
        "Resource": _function_arn(props["FunctionName"]),
        "Principal": {"Service": principal} if principal.endswith(".amazonaws.com") else {"AWS": principal},
    }
    condition: dict[str, dict[str, str]] = {}
    if "SourceArn" in props:
        condition["ArnLike"] = {"AWS:SourceArn": props["SourceArn"]}
    if "SourceAccount" in props:
        condition["StringEquals"] = {"AWS:SourceAccount": props["SourceAccount"]}
    if condition:
        statement["Condition"] = condition
    return statement
