"""Acknowledging cdk-nag findings: one rule, one construct, one reason. Never wider than that."""

from __future__ import annotations

import aws_cdk as cdk
from constructs import IConstruct


def acknowledge(scope: IConstruct, rule: str, reason: str, *, applies_to: str | None = None) -> None:
    """`rule` like "AwsSolutions-IAM5"; `applies_to` the finding's evidence, e.g. "Resource::*"."""
    rule_id = f"AwsSolutions::{rule}" + (f"[{applies_to}]" if applies_to else "")
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=rule_id, reason=reason))


def logical_id(construct: IConstruct) -> str:
    """The logical id of an L2 construct's CloudFormation resource, as cdk-nag evidence names it (`<id.Arn>`).

    CDK types `node.default_child` as optional (an imported resource has none); every construct named here is
    defined in this stack, so a missing resource is a programming error, reported with the construct's path.
    """
    resource = construct.node.default_child
    if not isinstance(resource, cdk.CfnElement):
        raise TypeError(f"{construct.node.path} has no CloudFormation resource of its own to name in nag evidence")
    return cdk.Stack.of(resource).get_logical_id(resource)


def arn_evidence(scope: IConstruct, service: str, resource: str) -> str:
    """How cdk-nag spells an ARN built with Stack.format_arn: tokens as <AWS::...>, a concrete region or account
    as-is (`cdk deploy` with credentials sets CDK_DEFAULT_ACCOUNT, and app.py pins the stack to it)."""
    stack = cdk.Stack.of(scope)
    region = "<AWS::Region>" if cdk.Token.is_unresolved(stack.region) else stack.region
    account = "<AWS::AccountId>" if cdk.Token.is_unresolved(stack.account) else stack.account
    return f"arn:<AWS::Partition>:{service}:{region}:{account}:{resource}"
