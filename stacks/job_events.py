"""Event-driven job completion: EventBridge rules for the backends' job-state events, and the handler that resumes
the Map iteration waiting on the job through its task token (lambdas/batch_pipeline/handlers/job_events.py).

Events are best effort (EventBridge's Bedrock and SageMaker event references say so); the state machine's wait has a
backstop timeout that checks the job directly, so a lost event delays a run by at most that, and never loses it.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from batch_pipeline.storage.layout import TOKENS_PREFIX

from .functions import FunctionFactory, FunctionSpec, role_of
from .models import grant_data_key
from .nag import acknowledge, logical_id


@dataclass(frozen=True)
class JobEndedPattern:
    """One backend's job-state-change event: where its detail names the job and its status, and which statuses end
    a job."""

    source: str
    detail_type: str
    name_field: str
    status_field: str
    terminal: tuple[str, ...]

    @property
    def rule_id(self) -> str:
        """`BedrockJobEnded`, `SagemakerJobEnded`: the rule's construct id."""
        return f"{self.source.split('.')[1].title()}JobEnded"


# https://docs.aws.amazon.com/bedrock/latest/userguide/monitoring-eventbridge-how-it-works.html
BEDROCK_PATTERN = JobEndedPattern(
    source="aws.bedrock",
    detail_type="Batch Inference Job State Change",
    name_field="batchJobName",
    status_field="status",
    terminal=("Completed", "PartiallyCompleted", "Failed", "Stopped", "Expired"),
)
# https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html
SAGEMAKER_PATTERN = JobEndedPattern(
    source="aws.sagemaker",
    detail_type="SageMaker Transform Job State Change",
    name_field="TransformJobName",
    status_field="TransformJobStatus",
    terminal=("Completed", "Failed", "Stopped"),
)


class JobEvents(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: FunctionFactory,
        output_bucket: s3.IBucket,
        job_name_prefix: str,
        bedrock: bool,
        job_control: lambda_.Function,
        key: kms.IKey | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.handler = functions.create(
            FunctionSpec(
                name="JobEvents",
                handler="batch_pipeline.handlers.job_events.handler",
                description=(
                    "Resumes the run waiting on a backend job when the job's EventBridge state-change event "
                    "says it ended"
                ),
            )
        )
        tokens = output_bucket.arn_for_objects(f"{TOKENS_PREFIX}*")
        self.handler.add_to_role_policy(
            iam.PolicyStatement(sid="ReadJobTokens", actions=["s3:GetObject"], resources=[tokens])
        )
        # An event for a job with no token (another run's, or one already resumed) must read as NoSuchKey, which S3
        # answers only to a caller with s3:ListBucket on the bucket (GetObject API reference); else AccessDenied.
        self.handler.add_to_role_policy(
            iam.PolicyStatement(
                sid="TellMissingTokens", actions=["s3:ListBucket"], resources=[output_bucket.bucket_arn]
            )
        )
        if key is not None:
            # Token objects are SSE-KMS like everything in the output bucket: reading one decrypts with the key.
            grant_data_key(self.handler, key)
        # SendTaskSuccess/Failure/Heartbeat have no resource types in the Service Authorization Reference (Step
        # Functions): a statement naming the state machine or its executions would never allow them. The token itself
        # is the capability, and only this app's waits hand theirs out (job-tokens/ in the output bucket).
        self.handler.add_to_role_policy(
            iam.PolicyStatement(
                sid="ResumeWaitingRuns",
                actions=["states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"],
                resources=["*"],
            )
        )
        # Job control's wait resumes its own iteration when the job already ended. A policy of its own, not the
        # function's default policy: the function depends on that one, and the state machine on the function.
        resume_own = iam.Policy(
            self,
            "JobControlResumesOwnWait",
            roles=[role_of(job_control)],
            statements=[iam.PolicyStatement(sid="ResumeOwnWait", actions=["states:SendTaskSuccess"], resources=["*"])],
        )
        callback_reason = (
            "Step Functions task-token callbacks have no resource-level permissions (Service "
            "Authorization Reference); the token, kept under job-tokens/, is the capability."
        )
        acknowledge(resume_own, "AwsSolutions-IAM5", callback_reason, applies_to="Resource::*")
        policy = role_of(self.handler).node.find_child("DefaultPolicy")
        acknowledge(
            policy,
            "AwsSolutions-IAM5",
            "One token object per job, named by the job at run time; reads stay inside job-tokens/.",
            applies_to=f"Resource::<{logical_id(output_bucket)}.Arn>/{TOKENS_PREFIX}*",
        )
        acknowledge(policy, "AwsSolutions-IAM5", callback_reason, applies_to="Resource::*")
        patterns = [BEDROCK_PATTERN, SAGEMAKER_PATTERN] if bedrock else [SAGEMAKER_PATTERN]
        self.rules: list[events.Rule] = []
        for pattern in patterns:
            rule = events.Rule(
                self,
                pattern.rule_id,
                description=f"{pattern.detail_type} for this stack's jobs, ended: resume the waiting run",
                event_pattern=events.EventPattern(
                    source=[pattern.source],
                    detail_type=[pattern.detail_type],
                    # Only this stack's jobs (their names start with the prefix), only terminal states.
                    detail={
                        pattern.name_field: [{"prefix": job_name_prefix}],
                        pattern.status_field: list(pattern.terminal),
                    },
                ),
            )
            rule.add_target(targets.LambdaFunction(self.handler, retry_attempts=4, max_event_age=cdk.Duration.hours(2)))
            self.rules.append(rule)
