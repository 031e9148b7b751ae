"""Intake: an upload under <pipeline>/ in the input bucket invokes the intake function via EventBridge.

Why EventBridge rather than S3 notifications: the bucket setting is a plain CloudFormation property
(S3 notifications to Lambda need a custom-resource function in CDK), the rule filters on each
pipeline prefix, and EventBridge retries a failed delivery for up to 24 hours before it lands in
the dead-letter queue. Replays and duplicate deliveries are harmless: intake derives the run's
execution name from bucket, key and version, so a second start is refused.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from batch_pipeline.config.app import AppConfig
from batch_pipeline.storage.layout import REJECTED_PREFIX, RUNS_PREFIX

from .functions import FunctionFactory, FunctionSpec, role_of
from .models import grant_data_key
from .nag import acknowledge, arn_evidence, logical_id
from .naming import stack_scoped_name
from .notifications import grant_publish

# EventBridge rule names: 1-64 characters.
RULE_NAME_MAX = 64


class Intake(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        functions: FunctionFactory,
        input_bucket: s3.Bucket,
        output_bucket: s3.IBucket,
        key: kms.IKey | None,
        topic: sns.ITopic,
        state_machine: sfn.StateMachine,
    ) -> None:
        super().__init__(scope, construct_id)
        cfn_bucket = input_bucket.node.default_child
        if not isinstance(cfn_bucket, s3.CfnBucket):
            raise TypeError(f"{input_bucket.node.path}: intake needs the input bucket defined in this stack")
        cfn_bucket.add_property_override("NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled", True)

        self.function = functions.create(
            FunctionSpec(
                name="Intake",
                handler="batch_pipeline.handlers.intake.handler",
                description="Validates an uploaded JSONL file line by line, writes shards, starts the run once",
                memory_mb=1024,
                timeout=cdk.Duration.minutes(15),
                # Shards are spilled to /tmp before upload; several-GB inputs need the room.
                ephemeral_storage_mb=10240,
                environment={"STATE_MACHINE_ARN": state_machine.state_machine_arn, "TOPIC_ARN": topic.topic_arn},
            )
        )
        role = role_of(self.function)

        # Read uploads (any version) under the pipelines' prefixes only.
        pipeline_objects = [input_bucket.arn_for_objects(f"{name}/*") for name in config.pipelines]
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ReadUploads", actions=["s3:GetObject", "s3:GetObjectVersion"], resources=pipeline_objects
            )
        )
        # S3 GetObject reference: a missing object is 404 NoSuchKey only "if you have the s3:ListBucket permission
        # on the bucket", else 403 AccessDenied, and intake could not tell a deleted upload from a forbidden one.
        # The documented rule names the bucket, not a prefix, so no s3:prefix condition (it lists key names only).
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="TellMissingUploads", actions=["s3:ListBucket"], resources=[input_bucket.bucket_arn]
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="WriteRunsAndRejects",
                actions=["s3:PutObject", "s3:PutObjectTagging", "s3:AbortMultipartUpload"],
                resources=[
                    output_bucket.arn_for_objects(f"{RUNS_PREFIX}*"),
                    output_bucket.arn_for_objects(f"{REJECTED_PREFIX}*"),
                ],
            )
        )
        # A replayed rejection finds its report and sends no second notice.
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="FindExistingRejection",
                actions=["s3:GetObject"],
                resources=[output_bucket.arn_for_objects(f"{REJECTED_PREFIX}*")],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ListRejections",
                actions=["s3:ListBucket"],
                resources=[output_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{REJECTED_PREFIX}*"]}},
            )
        )
        if key is not None:
            grant_data_key(role, key)
        state_machine.grant_start_execution(role)
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="FindExistingRun", actions=["states:DescribeExecution"], resources=[_executions_of(state_machine)]
            )
        )
        grant_publish(topic, key, self.function)

        # A fixed name, so the key policy can name the rule's ARN (a GetAtt would be a cycle: key -> queue -> rule).
        rule_name = stack_scoped_name(cdk.Stack.of(self).stack_name, "uploads", RULE_NAME_MAX)
        rule = events.Rule(
            self,
            "UploadRule",
            rule_name=rule_name,
            description="An object created under a pipeline prefix of the input bucket starts intake",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [input_bucket.bucket_name]},
                    "object": {"key": [{"prefix": f"{name}/"} for name in sorted(config.pipelines)]},
                },
            ),
        )
        rule.add_target(
            targets.LambdaFunction(
                self.function,
                dead_letter_queue=functions.dead_letter_queue,
                max_event_age=cdk.Duration.hours(24),
                retry_attempts=185,
            )
        )
        if isinstance(key, kms.Key):
            # EventBridge guide, "Using dead-letter queues": with a customer managed key on the DLQ, the key
            # policy must let events.amazonaws.com call kms:Decrypt and kms:GenerateDataKey for the rule.
            # (CDK's target adds the queue policy statement letting this rule send to the queue.)
            key.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="AllowUploadRuleDeadLetters",
                    principals=[iam.ServicePrincipal("events.amazonaws.com")],
                    actions=["kms:Decrypt", "kms:GenerateDataKey"],
                    resources=["*"],
                    conditions={
                        "ArnEquals": {
                            "aws:SourceArn": cdk.Stack.of(self).format_arn(
                                service="events", resource="rule", resource_name=rule_name
                            )
                        }
                    },
                )
            )

        policy = role.node.find_child("DefaultPolicy")
        input_id = logical_id(input_bucket)
        output_id = logical_id(output_bucket)
        for name in config.pipelines:
            acknowledge(
                policy,
                "AwsSolutions-IAM5",
                "Uploads are named by users; reads are limited to the configured pipeline prefixes.",
                applies_to=f"Resource::<{input_id}.Arn>/{name}/*",
            )
        for prefix in (RUNS_PREFIX, REJECTED_PREFIX):
            acknowledge(
                policy,
                "AwsSolutions-IAM5",
                "Each upload gets its own run or reject folder, named at run time.",
                applies_to=f"Resource::<{output_id}.Arn>/{prefix}*",
            )
        acknowledge(
            policy,
            "AwsSolutions-IAM5",
            "Execution names are run ids known only at run time; limited to executions of this app's state machine.",
            applies_to=f"Resource::{_executions_of_evidence(state_machine)}",
        )


def _executions_of(state_machine: sfn.StateMachine) -> str:
    return cdk.Stack.of(state_machine).format_arn(
        service="states",
        resource="execution",
        resource_name=f"{state_machine.state_machine_name}:*",
        arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
    )


def _executions_of_evidence(state_machine: sfn.StateMachine) -> str:
    name_id = logical_id(state_machine)
    return arn_evidence(state_machine, "states", f"execution:<{name_id}.Name>:*")
