"""Real-time SageMaker endpoints from the `endpoints` section of the configuration (empty by default).

Each entry gets its own model, endpoint config and endpoint, and its own execution role that may
read the model data object (if any), pull its image, write its own endpoint log group and, with
data capture, write only s3://<output-bucket>/datacapture/<endpoint>/. Optional target tracking on
invocations per instance scales the variant between instance_count and max_instance_count.

The endpoint config's volume is encrypted with the app's KMS key, except on instance types with
local NVMe instance storage: SageMaker refuses KmsKeyId there (CreateEndpointConfig fails) and
encrypts those volumes in hardware instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import aws_cdk as cdk
from aws_cdk import aws_applicationautoscaling as autoscaling
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from batch_pipeline.config.app import AppConfig, EndpointConfig, SageMakerModel

from .models import container_definition, ecr_repository_arn, s3_object_arn
from .nag import acknowledge, arn_evidence, logical_id

VARIANT = "AllTraffic"
DATA_CAPTURE_PREFIX = "datacapture"
# Families whose instances bring NVMe instance storage: the "d" families (c5d, m5d, r5d, g4dn, p3dn,
# p4d, m6gd, ...) and the GPU and Trainium families that always have it.
_INSTANCE_STORE_FAMILIES = re.compile(r"^(?:[a-z]+\d+[a-z]*d[a-z]*|g5|g6|g6e|p5|p5e|p5en|trn1|trn1n|trn2)$")


def has_instance_storage(instance_type: str) -> bool:
    """True for `ml.<family>.<size>` types that SageMaker will not give a KMS-encrypted volume."""
    family = instance_type.split(".")[1]
    return bool(_INSTANCE_STORE_FAMILIES.match(family))


def data_capture_prefix(endpoint_key: str) -> str:
    return f"{DATA_CAPTURE_PREFIX}/{endpoint_key}/"


ExecutionRoleFactory = Callable[[Construct, str, EndpointConfig], iam.IRole]


class RealtimeEndpoints(Construct):
    """One SageMaker endpoint per `config.endpoints` entry.

    `endpoint_names` maps each endpoint key to its SageMaker endpoint name (what clients pass as
    `--endpoint`); `endpoints`, `endpoint_configs`, `models` and `roles` map the key to the resources.
    `execution_role_for(scope, key, endpoint)` may supply the role a model runs as (say, one your
    organisation manages); by default each endpoint gets its own least-privilege role. Either way
    this construct adds the statements the endpoint needs to the role.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        region: str,
        output_bucket: s3.IBucket,
        key: kms.IKey | None,
        execution_role_for: ExecutionRoleFactory | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.endpoint_names: dict[str, str] = {}
        self.endpoints: dict[str, sagemaker.CfnEndpoint] = {}
        self.endpoint_configs: dict[str, sagemaker.CfnEndpointConfig] = {}
        self.models: dict[str, sagemaker.CfnModel] = {}
        self.roles: dict[str, iam.IRole] = {}
        stack = cdk.Stack.of(self)

        for endpoint_key, endpoint in sorted(config.endpoints.items()):
            entry = config.models[endpoint.model]
            assert isinstance(entry, SageMakerModel)  # the configuration model guarantees it
            artifacts = entry.artifacts(region)
            # A fixed name, so clients and the log group can be named before deploy; keys are short (config).
            endpoint_name = f"{stack.stack_name}-{endpoint_key}"[:63].rstrip("-")

            if execution_role_for is not None:
                role = execution_role_for(self, endpoint_key, endpoint)
            else:
                role = iam.Role(
                    self,
                    f"ExecutionRole-{endpoint_key}",
                    assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com").with_conditions(
                        {
                            "StringEquals": {"aws:SourceAccount": cdk.Aws.ACCOUNT_ID},
                        }
                    ),
                    description=f"Endpoint {endpoint_name}: read its model, pull its image, write its logs"
                    + (" and data capture" if endpoint.data_capture else ""),
                )
            policy = self._grant_endpoint_needs(
                endpoint_key,
                endpoint,
                role,
                endpoint_name,
                artifacts.image_uri,
                artifacts.model_data_uri,
                output_bucket,
                key,
            )

            # Unnamed: a catalog change replaces the model and endpoint config, and CloudFormation can
            # only replace resources it names itself. The endpoint then moves to the new config in place.
            model = sagemaker.CfnModel(
                self,
                f"Model-{endpoint_key}",
                execution_role_arn=role.role_arn,
                enable_network_isolation=entry.network_isolation,
                primary_container=container_definition(artifacts),
            )
            # The container starts with the permissions it needs, not just the role.
            model.node.add_dependency(policy)

            volume_key = key if key is not None and not has_instance_storage(endpoint.instance_type) else None
            endpoint_config = sagemaker.CfnEndpointConfig(
                self,
                f"EndpointConfig-{endpoint_key}",
                kms_key_id=volume_key.key_arn if volume_key is not None else None,
                production_variants=[
                    sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                        variant_name=VARIANT,
                        model_name=model.attr_model_name,
                        instance_type=endpoint.instance_type,
                        initial_instance_count=endpoint.instance_count,
                        initial_variant_weight=1.0,
                        container_startup_health_check_timeout_in_seconds=endpoint.startup_health_check_timeout_seconds,
                    )
                ],
                data_capture_config=self._data_capture(endpoint_key, endpoint, output_bucket, key),
            )
            cfn_endpoint = sagemaker.CfnEndpoint(
                self,
                f"Endpoint-{endpoint_key}",
                endpoint_name=endpoint_name,
                endpoint_config_name=endpoint_config.attr_endpoint_config_name,
            )
            # The configuration sets both autoscaling fields or neither (EndpointConfig).
            if endpoint.max_instance_count is not None and endpoint.invocations_per_instance is not None:
                self._autoscale(
                    endpoint_key,
                    endpoint,
                    cfn_endpoint,
                    max_instance_count=endpoint.max_instance_count,
                    invocations_per_instance=endpoint.invocations_per_instance,
                )

            cdk.CfnOutput(
                self,
                f"EndpointName-{endpoint_key}",
                value=cfn_endpoint.attr_endpoint_name,
                description=f"batch-pipeline {'stream' if entry.task == 'text-generation' else 'invoke'} "
                f"--endpoint <this> (catalog model {endpoint.model})",
            )
            self.endpoint_names[endpoint_key] = endpoint_name
            self.endpoints[endpoint_key] = cfn_endpoint
            self.endpoint_configs[endpoint_key] = endpoint_config
            self.models[endpoint_key] = model
            self.roles[endpoint_key] = role

    def _grant_endpoint_needs(
        self,
        endpoint_key: str,
        endpoint: EndpointConfig,
        role: iam.IRole,
        endpoint_name: str,
        image_uri: str,
        model_data_uri: str | None,
        output_bucket: s3.IBucket,
        key: kms.IKey | None,
    ) -> iam.Policy:
        statements = [
            iam.PolicyStatement(
                sid="PullImage",
                actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
                resources=[ecr_repository_arn(image_uri)],
            ),
            # GetAuthorizationToken has no resource-level permissions.
            iam.PolicyStatement(sid="EcrLogin", actions=["ecr:GetAuthorizationToken"], resources=["*"]),
            iam.PolicyStatement(
                sid="WriteEndpointLogs",
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[self._log_group_arn(endpoint_name)],
            ),
            iam.PolicyStatement(
                sid="PutEndpointMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
            ),
        ]
        if model_data_uri is not None:
            statements.append(
                iam.PolicyStatement(
                    sid="ReadModelData", actions=["s3:GetObject"], resources=[s3_object_arn(model_data_uri)]
                )
            )
        if endpoint.data_capture:
            statements.append(
                iam.PolicyStatement(
                    sid="WriteDataCapture",
                    actions=["s3:PutObject", "s3:AbortMultipartUpload"],
                    resources=[output_bucket.arn_for_objects(data_capture_prefix(endpoint_key) + "*")],
                )
            )
        if key is not None:
            statements.append(
                iam.PolicyStatement(
                    sid="UseDataKey", actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[key.key_arn]
                )
            )

        # A Policy of its own (not the role's default policy), so a supplied role gets exactly these
        # statements too, and the model can depend on them.
        policy = iam.Policy(self, f"ExecutionPolicy-{endpoint_key}", statements=statements, roles=[role])

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
            "Log streams are created per instance inside this endpoint's own "
            "log group; the wildcard covers its streams only.",
            applies_to="Resource::"
            + arn_evidence(self, "logs", f"log-group:/aws/sagemaker/Endpoints/{endpoint_name}:*"),
        )
        if endpoint.data_capture:
            bucket_id = logical_id(output_bucket)
            acknowledge(
                policy,
                "AwsSolutions-IAM5",
                "SageMaker names capture files by variant, hour and request; "
                "the role writes only under this endpoint's data capture prefix.",
                applies_to=f"Resource::<{bucket_id}.Arn>/{data_capture_prefix(endpoint_key)}*",
            )
        return policy

    def _log_group_arn(self, endpoint_name: str) -> str:
        return cdk.Arn.format(
            cdk.ArnComponents(
                service="logs",
                resource="log-group",
                resource_name=f"/aws/sagemaker/Endpoints/{endpoint_name}:*",
                arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
            ),
            cdk.Stack.of(self),
        )

    @staticmethod
    def _data_capture(
        endpoint_key: str, endpoint: EndpointConfig, output_bucket: s3.IBucket, key: kms.IKey | None
    ) -> sagemaker.CfnEndpointConfig.DataCaptureConfigProperty | None:
        if not endpoint.data_capture:
            return None
        return sagemaker.CfnEndpointConfig.DataCaptureConfigProperty(
            enable_capture=True,
            initial_sampling_percentage=endpoint.data_capture_percent,
            destination_s3_uri=output_bucket.s3_url_for_object(data_capture_prefix(endpoint_key).rstrip("/")),
            kms_key_id=key.key_arn if key is not None else None,
            capture_options=[
                sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode="Input"),
                sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode="Output"),
            ],
            # JSON bodies are captured as text rather than base64, so they can be read and compared.
            capture_content_type_header=sagemaker.CfnEndpointConfig.CaptureContentTypeHeaderProperty(
                json_content_types=["application/json"]
            ),
        )

    def _autoscale(
        self,
        endpoint_key: str,
        endpoint: EndpointConfig,
        cfn_endpoint: sagemaker.CfnEndpoint,
        *,
        max_instance_count: int,
        invocations_per_instance: int,
    ) -> None:
        # L1 on purpose: SageMaker variants scale through Application Auto Scaling's service-linked
        # role, and the L2 ScalableTarget would add an unused IAM role of its own.
        target = autoscaling.CfnScalableTarget(
            self,
            f"ScalableTarget-{endpoint_key}",
            service_namespace="sagemaker",
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            resource_id=f"endpoint/{cfn_endpoint.attr_endpoint_name}/variant/{VARIANT}",
            min_capacity=endpoint.instance_count,
            max_capacity=max_instance_count,
        )
        autoscaling.CfnScalingPolicy(
            self,
            f"ScalingPolicy-{endpoint_key}",
            policy_name=f"{endpoint_key}-invocations-per-instance",
            policy_type="TargetTrackingScaling",
            scaling_target_id=target.ref,
            target_tracking_scaling_policy_configuration=autoscaling.CfnScalingPolicy.TargetTrackingScalingPolicyConfigurationProperty(
                target_value=float(invocations_per_instance),
                predefined_metric_specification=autoscaling.CfnScalingPolicy.PredefinedMetricSpecificationProperty(
                    predefined_metric_type="SageMakerVariantInvocationsPerInstance"
                ),
                scale_in_cooldown=endpoint.scale_in_cooldown_seconds,
                scale_out_cooldown=endpoint.scale_out_cooldown_seconds,
            ),
        )
