"""Bedrock batch inference access: the service role Bedrock assumes, and what job control may do.

- The service role trusts bedrock.amazonaws.com only for this account's model invocation jobs
  (aws:SourceAccount, aws:SourceArn), reads only the job files of Bedrock pipelines' runs (shards/)
  and writes only their raw/ folders.
- Job control may create, get, list and stop model invocation jobs of the configured models, invoke those
  models on demand (files under the batch minimum), and pass only this role, only to Bedrock.
"""

from __future__ import annotations

from collections.abc import Iterable

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from batch_pipeline.config.app import AppConfig, BedrockModel
from batch_pipeline.settings import OWNER_TAG_ENV
from batch_pipeline.storage.layout import OWNER_TAG_KEY, RUNS_PREFIX

from .functions import role_of
from .models import grant_data_key
from .nag import acknowledge, arn_evidence, logical_id

# Every tag key backends/bedrock.py sends on CreateModelInvocationJob (aws:TagKeys allows these only).
JOB_TAG_KEYS = (
    "batch-pipeline:run-id",
    "batch-pipeline:pipeline",
    "batch-pipeline:job-index",
    OWNER_TAG_KEY,
    "batch-pipeline:engine",
)


def bedrock_pipelines(config: AppConfig) -> dict[str, BedrockModel]:
    """Pipeline name -> its Bedrock catalog model, for the pipelines that run on Bedrock."""
    pipelines: dict[str, BedrockModel] = {}
    for name, pipeline in config.pipelines.items():
        model = config.models[pipeline.model]
        if isinstance(model, BedrockModel):
            pipelines[name] = model
    return pipelines


class BedrockBatchAccess(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        output_bucket: s3.IBucket,
        key: kms.IKey | None,
        job_control: lambda_.Function,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        pipelines = bedrock_pipelines(config)
        bucket_id = logical_id(output_bucket)
        jobs_arn = stack.format_arn(service="bedrock", resource="model-invocation-job", resource_name="*")
        shards = [f"{RUNS_PREFIX}{name}/*/shards/*" for name in sorted(pipelines)]
        raw = [f"{RUNS_PREFIX}{name}/*/raw/*" for name in sorted(pipelines)]

        self.service_role = iam.Role(
            self,
            "ServiceRole",
            assumed_by=iam.ServicePrincipal("bedrock.amazonaws.com").with_conditions(
                {
                    "StringEquals": {"aws:SourceAccount": cdk.Aws.ACCOUNT_ID},
                    "ArnLike": {"aws:SourceArn": jobs_arn},
                }
            ),
            description="Bedrock batch inference jobs: read the run's job files, write its raw/ outputs",
        )
        self.service_role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadJobFiles",
                actions=["s3:GetObject"],
                resources=[output_bucket.arn_for_objects(p) for p in shards],
            )
        )
        self.service_role.add_to_policy(
            iam.PolicyStatement(
                sid="ListJobFiles",
                actions=["s3:ListBucket"],
                resources=[output_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": shards + raw}},
            )
        )
        self.service_role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteRawOutputs",
                actions=["s3:PutObject"],
                resources=[output_bucket.arn_for_objects(p) for p in raw],
            )
        )
        if key is not None:
            grant_data_key(self.service_role, key)
        role_policy = self.service_role.node.find_child("DefaultPolicy")
        for pattern in shards + raw:
            acknowledge(
                role_policy,
                "AwsSolutions-IAM5",
                "Run ids are created per upload; Bedrock reads only the "
                "job files (shards/) and writes only raw/ of its pipelines' runs.",
                applies_to=f"Resource::<{bucket_id}.Arn>/{pattern}",
            )

        grants = [self._model_grants(model) for model in _unique(pipelines.values())]
        identifiers = sorted({arn for identifier, _, _ in grants for arn in identifier})
        job_control.add_environment("BEDROCK_ROLE_ARN", self.service_role.role_arn)
        # An inference profile's job or request runs on the foundation model in any Region the profile routes to,
        # so each of those foundation-model ARNs is named ("Prerequisites for inference profiles").
        job_control.add_environment(OWNER_TAG_ENV, stack.stack_name)
        owner_request_tag = {
            "StringEquals": {f"aws:RequestTag/{OWNER_TAG_KEY}": stack.stack_name},
            "ForAllValues:StringEquals": {"aws:TagKeys": list(JOB_TAG_KEYS)},
        }
        # Two statements: the request-tag condition holds for the job being created, but the models it names are
        # not tagged on creation, so a tag condition on them would never match (as with EC2 RunInstances' images).
        job_control.add_to_role_policy(
            iam.PolicyStatement(
                sid="CreateOwnTaggedJobs",
                actions=["bedrock:CreateModelInvocationJob"],
                resources=[jobs_arn],
                conditions=owner_request_tag,
            )
        )
        job_control.add_to_role_policy(
            iam.PolicyStatement(
                sid="CreateJobsForConfiguredModels",
                actions=["bedrock:CreateModelInvocationJob"],
                resources=[*identifiers, *sorted({arn for _, routed, _ in grants for arn in routed})],
            )
        )
        # Only this stack's jobs: each carries the owner tag (backends/bedrock.py). Service Authorization Reference,
        # Amazon Bedrock: model-invocation-job supports aws:ResourceTag (Get/Stop); CreateModelInvocationJob and
        # TagResource support aws:RequestTag and aws:TagKeys (TagResource: the tags sent on create).
        job_control.add_to_role_policy(
            iam.PolicyStatement(
                sid="ControlOwnInvocationJobs",
                actions=["bedrock:GetModelInvocationJob", "bedrock:StopModelInvocationJob"],
                resources=[jobs_arn],
                conditions={"StringEquals": {f"aws:ResourceTag/{OWNER_TAG_KEY}": stack.stack_name}},
            )
        )
        job_control.add_to_role_policy(
            iam.PolicyStatement(
                sid="TagOwnInvocationJobs",
                actions=["bedrock:TagResource"],
                resources=[jobs_arn],
                conditions=owner_request_tag,
            )
        )
        # ListModelInvocationJobs has no resource-level permissions; it finds a job by name after a conflict.
        job_control.add_to_role_policy(
            iam.PolicyStatement(sid="FindInvocationJobs", actions=["bedrock:ListModelInvocationJobs"], resources=["*"])
        )
        # bedrock:InvokeModel authorizes both InvokeModel and Converse (on-demand runs of small files).
        job_control.add_to_role_policy(
            iam.PolicyStatement(sid="InvokeConfiguredModels", actions=["bedrock:InvokeModel"], resources=identifiers)
        )
        for index, (identifier, routed, profile_arn) in enumerate(g for g in grants if g[2] is not None):
            # A batch job on an inference profile invokes it as the service role, in any routed Region.
            self.service_role.add_to_policy(
                iam.PolicyStatement(sid=f"InvokeProfile{index}", actions=["bedrock:InvokeModel"], resources=identifier)
            )
            self.service_role.add_to_policy(
                iam.PolicyStatement(
                    sid=f"InvokeModelsThroughProfile{index}",
                    actions=["bedrock:InvokeModel"],
                    resources=sorted(routed),
                    conditions={"StringLike": {"bedrock:InferenceProfileArn": profile_arn}},
                )
            )
            # The foundation models behind a profile, only when the request comes through that profile: the
            # condition the Bedrock docs show (bedrock:InferenceProfileArn), so the role cannot call them directly.
            job_control.add_to_role_policy(
                iam.PolicyStatement(
                    sid=f"InvokeModelsThroughProfile{index}",
                    actions=["bedrock:InvokeModel"],
                    resources=sorted(routed),
                    conditions={"StringLike": {"bedrock:InferenceProfileArn": profile_arn}},
                )
            )
        job_control.add_to_role_policy(
            iam.PolicyStatement(
                sid="PassBedrockServiceRole",
                actions=["iam:PassRole"],
                resources=[self.service_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "bedrock.amazonaws.com"}},
            )
        )
        # Files under the batch minimum run on demand inside job control: it reads their job file, writes raw/.
        job_control.add_to_role_policy(
            iam.PolicyStatement(
                sid="ReadOnDemandJobFiles",
                actions=["s3:GetObject"],
                resources=[output_bucket.arn_for_objects(p) for p in shards + raw],
            )
        )
        # ... and a retry of failed records writes their job file beside the original (shards/<job>-retry.jsonl).
        retry_files = [f"{RUNS_PREFIX}{name}/*/shards/*-retry.jsonl" for name in sorted(pipelines)]
        job_control.add_to_role_policy(
            iam.PolicyStatement(
                sid="WriteOnDemandOutputs",
                actions=["s3:PutObject", "s3:PutObjectTagging"],
                resources=[output_bucket.arn_for_objects(p) for p in raw + retry_files],
            )
        )
        if key is not None:
            grant_data_key(job_control, key)

        policy = role_of(job_control).node.find_child("DefaultPolicy")
        acknowledge(
            policy,
            "AwsSolutions-IAM5",
            "Bedrock assigns model invocation job ids at creation, so jobs "
            "cannot be named in advance; the account's own jobs in this region only.",
            applies_to=f"Resource::{arn_evidence(self, 'bedrock', 'model-invocation-job/*')}",
        )
        acknowledge(
            policy,
            "AwsSolutions-IAM5",
            "bedrock:ListModelInvocationJobs has no resource-level permissions; X-Ray's trace APIs neither.",
            applies_to="Resource::*",
        )
        for pattern in shards + raw + retry_files:
            acknowledge(
                policy,
                "AwsSolutions-IAM5",
                "Run ids are created per upload; on-demand runs and retries read "
                "only job files and Bedrock's output, and write only raw/ and retry job files of Bedrock "
                "pipelines' runs.",
                applies_to=f"Resource::<{bucket_id}.Arn>/{pattern}",
            )

    def _model_grants(self, model: BedrockModel) -> tuple[list[str], list[str], str | None]:
        """(the identifier's ARNs, the foundation-model ARNs in every Region it routes to, the profile ARN or None)."""
        stack = cdk.Stack.of(self)
        if not model.is_profile:
            arn = stack.format_arn(
                service="bedrock", account="", resource="foundation-model", resource_name=model.model_id
            )
            return [arn], [], None
        if model.model_id.startswith("arn:"):
            profile = model.model_id  # an application inference profile
        else:
            profile = stack.format_arn(service="bedrock", resource="inference-profile", resource_name=model.model_id)
        routed = [
            f"arn:{stack.partition}:bedrock:{region}::foundation-model/{model.base_model_id}"
            for region in model.routes_to_regions or []
        ]
        return [profile], routed, profile


def _unique(models: Iterable[BedrockModel]) -> list[BedrockModel]:
    seen: dict[str, BedrockModel] = {}
    for model in models:
        seen.setdefault(model.model_id, model)
    return [seen[key] for key in sorted(seen)]
