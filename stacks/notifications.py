"""The run-outcome topic: succeeded, failed and rejected runs publish here; email is optional."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct


class Notifications(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, key: kms.IKey | None, email: str | None) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self,
            "RunEvents",
            display_name="llm-batch-pipeline run events",
            master_key=key,
            enforce_ssl=True,
        )
        if email:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
        self._allow_alarms(key)

    def _allow_alarms(self, key: kms.IKey | None) -> None:
        """CloudWatch alarms of this account publish to the topic, and may use its key to do so.

        SNS guide, "Enable compatibility between event sources from AWS services and encrypted topics":
        the key policy must let cloudwatch.amazonaws.com call kms:GenerateDataKey* and kms:Decrypt, else
        alarm notifications are dropped. Both grants carry aws:SourceAccount/aws:SourceArn (this account's
        alarms in this region) against the confused deputy. The key policy cannot name each alarm's ARN:
        the alarms depend on the topic, which depends on the key.
        """
        stack = cdk.Stack.of(self)
        conditions = {
            "StringEquals": {"aws:SourceAccount": stack.account},
            "ArnLike": {
                "aws:SourceArn": stack.format_arn(
                    service="cloudwatch",
                    resource="alarm",
                    resource_name="*",
                    arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                )
            },
        }
        alarms = iam.ServicePrincipal("cloudwatch.amazonaws.com")
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowThisAccountsAlarmsToPublish",
                principals=[alarms],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions=conditions,
            )
        )
        if isinstance(key, kms.Key):
            key.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="AllowThisAccountsAlarmsToUseTheTopicKey",
                    principals=[alarms],
                    actions=["kms:GenerateDataKey*", "kms:Decrypt"],
                    resources=["*"],
                    conditions=conditions,
                )
            )


def grant_publish(topic: sns.ITopic, key: kms.IKey | None, grantee: iam.IGrantable) -> None:
    """Publish to the (KMS-encrypted) topic: sns:Publish plus exactly the two key actions SNS needs."""
    grantee.grant_principal.add_to_principal_policy(
        iam.PolicyStatement(sid="PublishRunEvents", actions=["sns:Publish"], resources=[topic.topic_arn])
    )
    if key is not None:
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                sid="EncryptRunEvents", actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[key.key_arn]
            )
        )
