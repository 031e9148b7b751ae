"""The run-outcome topic: succeeded, failed and rejected runs publish here; email is optional."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct


class Notifications(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, key: kms.IKey | None, email: str | None) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self, "RunEvents",
            display_name="llm-batch-pipeline run events",
            master_key=key,
            enforce_ssl=True,
        )
        if email:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))


def grant_publish(topic: sns.ITopic, key: kms.IKey | None, grantee: iam.IGrantable) -> None:
    """Publish to the (KMS-encrypted) topic: sns:Publish plus exactly the two key actions SNS needs."""
    grantee.grant_principal.add_to_principal_policy(iam.PolicyStatement(
        sid="PublishRunEvents", actions=["sns:Publish"], resources=[topic.topic_arn]))
    if key is not None:
        grantee.grant_principal.add_to_principal_policy(iam.PolicyStatement(
            sid="EncryptRunEvents", actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[key.key_arn]))
