"""SageMaker models from the catalog, one per catalog entry a pipeline uses, each with its own role.

The execution role is what the transform container runs as: it may read the model data object
and the run shards, write only raw/ outputs, pull its image and write its logs. Nothing else.
"""

from __future__ import annotations

import json
import re

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from batch_pipeline.config.app import AppConfig, SageMakerArtifacts, SageMakerModel

from .nag import acknowledge, arn_evidence, logical_id
from .naming import short_hash, stack_scoped_name

SHARDS_PATTERN = "runs/*/*/shards/*"
RAW_PATTERN = "runs/*/*/raw/*"
# SageMaker model names: 1-63 characters.
MODEL_NAME_MAX = 63
_ECR_IMAGE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/(?P<repo>[^:@]+)"
)


def _configuration_hash(
    container: sagemaker.CfnModel.ContainerDefinitionProperty, entry: SageMakerModel, role: iam.Role
) -> str:
    """A short hash of the model's create-only properties (the role by its construct path: its ARN is a token)."""
    fields = {
        "image": container.image,
        "model_data_url": container.model_data_url,
        "mode": container.mode,
        "environment": container.environment,
        "network_isolation": entry.network_isolation,
        "role": role.node.path,
    }
    return short_hash(json.dumps(fields, sort_keys=True, default=str))


def s3_object_arn(uri: str) -> str:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return f"arn:{cdk.Aws.PARTITION}:s3:::{bucket}/{key}"


def ecr_repository_arn(image_uri: str) -> str:
    match = _ECR_IMAGE.match(image_uri)
    if not match:
        raise ValueError(
            f"image_uri {image_uri!r} is not an ECR image URI (account.dkr.ecr.region.amazonaws.com/repo:tag)"
        )
    return f"arn:{cdk.Aws.PARTITION}:ecr:{match['region']}:{match['account']}:repository/{match['repo']}"


def container_definition(artifacts: SageMakerArtifacts) -> sagemaker.CfnModel.ContainerDefinitionProperty:
    """The catalog's container for one region, as batch jobs and endpoints both run it."""
    return sagemaker.CfnModel.ContainerDefinitionProperty(
        image=artifacts.image_uri,
        model_data_url=artifacts.model_data_uri,
        environment=artifacts.environment or None,
        mode="SingleModel",
    )


class SageMakerModels(Construct):
    """`model_names` maps catalog key -> SageMaker model name, for the runtime configuration."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        region: str,
        output_bucket: s3.IBucket,
        key: kms.IKey | None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.model_names: dict[str, str] = {}
        self.models: dict[str, sagemaker.CfnModel] = {}
        self.roles: dict[str, iam.Role] = {}
        used = {pipeline.model for pipeline in config.pipelines.values()}
        stack_name = cdk.Stack.of(self).stack_name
        for model_key in sorted(used):
            entry = config.models[model_key]
            if not isinstance(entry, SageMakerModel):
                continue
            artifacts = entry.artifacts(region)
            role = self._execution_role(model_key, artifacts.image_uri, artifacts.model_data_uri, output_bucket, key)
            # A name the runtime configuration can carry without a deploy-time lookup, that changes whenever a
            # create-only property does: CloudFormation replaces a model on any change to PrimaryContainer,
            # ExecutionRoleArn or EnableNetworkIsolation, and refuses to replace a custom-named resource under
            # the same name. A new name per configuration lets it create the new model, then delete the old.
            container = container_definition(artifacts)
            model_name = stack_scoped_name(
                stack_name, f"{model_key}-{_configuration_hash(container, entry, role)}", MODEL_NAME_MAX
            )
            model = sagemaker.CfnModel(
                self,
                f"Model-{model_key}",
                model_name=model_name,
                execution_role_arn=role.role_arn,
                enable_network_isolation=entry.network_isolation,
                primary_container=container,
            )
            # The container starts with the permissions it needs, not just the role.
            model.node.add_dependency(role.node.find_child("DefaultPolicy"))
            self.model_names[model_key] = model_name
            self.models[model_key] = model
            self.roles[model_key] = role

    def _execution_role(
        self,
        model_key: str,
        image_uri: str,
        model_data_uri: str | None,
        output_bucket: s3.IBucket,
        key: kms.IKey | None,
    ) -> iam.Role:
        role = iam.Role(
            self,
            f"ExecutionRole-{model_key}",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com").with_conditions(
                {
                    "StringEquals": {"aws:SourceAccount": cdk.Aws.ACCOUNT_ID},
                }
            ),
            description=f"Transform jobs of {model_key}: read shards and model data, write raw outputs",
        )
        # None only for a container that fetches its own weights (text-generation, which the configuration keeps
        # out of pipelines); it has no model data object to read.
        if model_data_uri is not None:
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="ReadModelData", actions=["s3:GetObject"], resources=[s3_object_arn(model_data_uri)]
                )
            )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadRunShards", actions=["s3:GetObject"], resources=[output_bucket.arn_for_objects(SHARDS_PATTERN)]
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ListRunShards",
                actions=["s3:ListBucket"],
                resources=[output_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": ["runs/*/*/shards/*"]}},
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteRawOutputs",
                actions=["s3:PutObject", "s3:AbortMultipartUpload"],
                resources=[output_bucket.arn_for_objects(RAW_PATTERN)],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="PullImage",
                actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
                resources=[ecr_repository_arn(image_uri)],
            )
        )
        # GetAuthorizationToken has no resource-level permissions.
        role.add_to_policy(iam.PolicyStatement(sid="EcrLogin", actions=["ecr:GetAuthorizationToken"], resources=["*"]))
        role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteJobLogs",
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[
                    cdk.Arn.format(
                        cdk.ArnComponents(
                            service="logs",
                            resource="log-group",
                            resource_name="/aws/sagemaker/TransformJobs:*",
                            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                        ),
                        cdk.Stack.of(self),
                    )
                ],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="PutJobMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
            )
        )
        if key is not None:
            grant_data_key(role, key)
            # Job control sets TransformResources.VolumeKmsKeyId (backends/sagemaker.py), and SageMaker attaches
            # the encrypted volume through a KMS grant. SageMaker API permissions reference, CreateTransformJob:
            # kms:CreateGrant is required when VolumeKmsKeyId is set "and the associated role does not have a
            # policy that permits this action" -- so the role gets it, as CDK's SageMakerCreateTrainingJob task
            # grants its role kms:CreateGrant on the volume key. Only grants for AWS resources (the volume).
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="GrantVolumeKey",
                    actions=["kms:CreateGrant"],
                    resources=[key.key_arn],
                    conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
                )
            )
        policy = role.node.find_child("DefaultPolicy")
        for pattern in (SHARDS_PATTERN, RAW_PATTERN):
            acknowledge(
                policy,
                "AwsSolutions-IAM5",
                "Run ids are created per upload; the role is limited to the "
                "shards/ (read) and raw/ (write) folders of runs, never results or other prefixes.",
                applies_to=f"Resource::<{logical_id(output_bucket)}.Arn>/{pattern}",
            )
        acknowledge(
            policy,
            "AwsSolutions-IAM5",
            "ecr:GetAuthorizationToken has no resource-level permissions; "
            "cloudwatch:PutMetricData is limited by the cloudwatch:namespace condition to /aws/sagemaker/*.",
            applies_to="Resource::*",
        )
        acknowledge(
            policy,
            "AwsSolutions-IAM5",
            "Transform job names are created per run; the log group is the "
            "fixed SageMaker transform job group, streams are per job.",
            applies_to=f"Resource::{arn_evidence(self, 'logs', 'log-group:/aws/sagemaker/TransformJobs:*')}",
        )
        return role


def grant_data_key(grantee: iam.IGrantable, key: kms.IKey) -> None:
    """Read and write SSE-KMS objects with the app key: decrypt and generate data keys, nothing more."""
    grantee.grant_principal.add_to_principal_policy(
        iam.PolicyStatement(sid="UseDataKey", actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[key.key_arn])
    )
