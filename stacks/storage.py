"""Buckets: input (uploads), output (runs, rejects) and server access logs.

Encryption is a customer-managed KMS key with rotation by default: its key policy is one more
gate on who can read prompts and predictions, every decrypt is in CloudTrail, and SageMaker and
Bedrock jobs can be told to use it. S3 Bucket Keys keep the KMS request cost near zero.
`"encryption": "s3"` switches to S3-managed keys for accounts that don't want a key to manage.
The access-log bucket is always S3-managed: S3 log delivery cannot write to SSE-KMS buckets.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from batch_pipeline.storage.layout import INTERMEDIATE_TAG, TOKENS_PREFIX

# Shards and raw backend output sit inside each run folder (runs/<pipeline>/<run-id>/shards/), and
# lifecycle prefixes cannot match a middle segment, so intermediates are found by an object tag.
INTERMEDIATE_EXPIRY_DAYS = 30
# The longest a backend job can run, and so the longest a waiting iteration's task token is needed: a Bedrock batch
# job's timeoutDurationInHours is at most 168 hours (CreateModelInvocationJob, Valid Range 24-168:
# https://docs.aws.amazon.com/bedrock/latest/APIReference/API_CreateModelInvocationJob.html); a SageMaker transform
# job has no stopping condition of its own (CreateTransformJob), and job control stops it after the pipeline's
# max_runtime_hours, at most 72 (config.app.SageMakerSettings). A waiting iteration writes its token again at every
# wait, and job control deletes it once the job ended (storage.job_store), so a token that has not been written for
# longer than the longest job is one a failed or stopped run left behind. One day more covers a job's Stopping.
LONGEST_JOB_HOURS = 168
TOKEN_EXPIRY_DAYS = LONGEST_JOB_HOURS // 24 + 1


class Storage(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, use_kms: bool) -> None:
        super().__init__(scope, construct_id)

        self.key: kms.Key | None = None
        if use_kms:
            self.key = kms.Key(
                self,
                "DataKey",
                description="Encrypts uploads, run outputs, logs and queues of llm-batch-pipeline",
                enable_key_rotation=True,
                removal_policy=cdk.RemovalPolicy.RETAIN,
            )
            self._allow_log_groups(self.key)

        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(id="ExpireAccessLogs", expiration=cdk.Duration.days(365))],
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )

        self.input_bucket = self._data_bucket(
            "Input",
            "input/",
            lifecycle_rules=[
                # Originals are kept; only superseded versions are eventually cleaned up.
                s3.LifecycleRule(id="ExpireOldVersions", noncurrent_version_expiration=cdk.Duration.days(90)),
                s3.LifecycleRule(
                    id="AbortIncompleteUploads", abort_incomplete_multipart_upload_after=cdk.Duration.days(7)
                ),
            ],
        )
        self.output_bucket = self._data_bucket(
            "Output",
            "output/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireIntermediateObjects",
                    tag_filters={INTERMEDIATE_TAG[0]: INTERMEDIATE_TAG[1]},
                    expiration=cdk.Duration.days(INTERMEDIATE_EXPIRY_DAYS),
                    noncurrent_version_expiration=cdk.Duration.days(1),
                ),
                # Task tokens (job-tokens/<job name>.json) sit at the top of the bucket, so a prefix finds them. With
                # an expiration of current versions, S3 also removes the delete markers job control's deletes leave
                # once they are the only version ("Managing delete markers", S3 User Guide).
                s3.LifecycleRule(
                    id="ExpireJobTokens",
                    prefix=TOKENS_PREFIX,
                    expiration=cdk.Duration.days(TOKEN_EXPIRY_DAYS),
                    noncurrent_version_expiration=cdk.Duration.days(1),
                ),
                s3.LifecycleRule(id="ExpireOldVersions", noncurrent_version_expiration=cdk.Duration.days(90)),
                s3.LifecycleRule(
                    id="AbortIncompleteUploads", abort_incomplete_multipart_upload_after=cdk.Duration.days(7)
                ),
            ],
        )

    @staticmethod
    def _allow_log_groups(key: kms.Key) -> None:
        """CloudWatch Logs may use the key for this account's log groups only (else creating them fails).

        The statement is the one in the CloudWatch Logs guide "Encrypt log data in CloudWatch Logs using
        AWS KMS": principal logs.<region>.amazonaws.com, conditioned on the log group ARN in the
        kms:EncryptionContext:aws:logs:arn encryption context.
        """
        stack = cdk.Stack.of(key)
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchLogsForThisAccountsLogGroups",
                principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
                actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": stack.format_arn(
                            service="logs",
                            resource="log-group",
                            resource_name="*",
                            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                        )
                    }
                },
            )
        )

    def _data_bucket(self, name: str, log_prefix: str, lifecycle_rules: list[s3.LifecycleRule]) -> s3.Bucket:
        return s3.Bucket(
            self,
            name,
            encryption=s3.BucketEncryption.KMS if self.key else s3.BucketEncryption.S3_MANAGED,
            encryption_key=self.key,
            bucket_key_enabled=bool(self.key),
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix=log_prefix,
            lifecycle_rules=lifecycle_rules,
            # Data outlives the stack: a `cdk destroy` must not delete anyone's inputs or results.
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
