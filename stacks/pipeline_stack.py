"""The one deployable stack, composed of one construct per concern."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_logs as logs
from constructs import Construct

from batch_pipeline.config.app import AppConfig
from batch_pipeline.config.runtime import dump_runtime_pipelines, dump_runtime_prices, runtime_pipelines, runtime_prices

from .analytics import Analytics
from .bedrock import BedrockBatchAccess, bedrock_pipelines
from .endpoints import RealtimeEndpoints
from .functions import FunctionFactory
from .intake import Intake
from .job_events import JobEvents
from .models import SageMakerModels
from .monitoring import Monitoring
from .notifications import Notifications
from .storage import Storage
from .workflow import JOB_NAME_PREFIX, Workflow

# Lambda allows 4 KB of environment variables per function, all names and values together.
LAMBDA_ENVIRONMENT_LIMIT = 4096

RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    731: logs.RetentionDays.TWO_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


class BatchPipelineStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        env: cdk.Environment | None = None,
        description: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id, env=env, description=description)
        self.config = config
        region = self.node.try_get_context("region") or self.region
        if cdk.Token.is_unresolved(region):
            # Catalog artifacts are per region; an environment-agnostic synth uses the first configured one.
            region = "us-east-1"

        self.storage = Storage(self, "Storage", use_kms=config.encryption == "kms")
        self.models = SageMakerModels(
            self, "Models", config=config, region=region, output_bucket=self.storage.output_bucket, key=self.storage.key
        )

        pipelines_json = dump_runtime_pipelines(runtime_pipelines(config, self.models.model_names))
        # The manifest function carries the most: PIPELINES and the catalog's PRICES (stacks/workflow.py).
        prices_bytes = len(dump_runtime_prices(runtime_prices(config)))
        if len(pipelines_json) + prices_bytes > LAMBDA_ENVIRONMENT_LIMIT - 512:
            raise ValueError(
                f"the pipelines configuration is {len(pipelines_json)} bytes as JSON and the prices {prices_bytes}; "
                f"Lambda environment variables are limited to {LAMBDA_ENVIRONMENT_LIMIT} bytes in all. Remove unused "
                "pipelines or parameters."
            )
        self.functions = FunctionFactory(
            self,
            "Functions",
            key=self.storage.key,
            log_retention=RETENTION[config.log_retention_days],
            common_environment={
                "PIPELINES": pipelines_json,
                "INPUT_BUCKET": self.storage.input_bucket.bucket_name,
                "OUTPUT_BUCKET": self.storage.output_bucket.bucket_name,
            },
        )

        self.notifications = Notifications(self, "Notifications", key=self.storage.key, email=config.notification_email)
        self.workflow = Workflow(
            self,
            "Workflow",
            config=config,
            functions=self.functions,
            output_bucket=self.storage.output_bucket,
            key=self.storage.key,
            topic=self.notifications.topic,
            log_retention=RETENTION[config.log_retention_days],
        )
        self.job_events = JobEvents(
            self,
            "JobEvents",
            functions=self.functions,
            output_bucket=self.storage.output_bucket,
            job_name_prefix=JOB_NAME_PREFIX,
            bedrock=bool(bedrock_pipelines(config)),
            job_control=self.workflow.job_control_fn,
            key=self.storage.key,
        )
        self.bedrock: BedrockBatchAccess | None = None
        if bedrock_pipelines(config):
            self.bedrock = BedrockBatchAccess(
                self,
                "BedrockBatch",
                config=config,
                output_bucket=self.storage.output_bucket,
                key=self.storage.key,
                job_control=self.workflow.job_control_fn,
            )
        self.intake = Intake(
            self,
            "Intake",
            config=config,
            functions=self.functions,
            input_bucket=self.storage.input_bucket,
            output_bucket=self.storage.output_bucket,
            key=self.storage.key,
            topic=self.notifications.topic,
            state_machine=self.workflow.state_machine,
        )

        self.endpoints = RealtimeEndpoints(
            self,
            "Endpoints",
            config=config,
            region=region,
            output_bucket=self.storage.output_bucket,
            key=self.storage.key,
        )
        self.analytics = Analytics(
            self,
            "Analytics",
            pipelines=list(config.pipelines),
            output_bucket=self.storage.output_bucket,
            key=self.storage.key,
        )
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            state_machine=self.workflow.state_machine,
            functions=self.functions.functions,
            dead_letter_queue=self.functions.dead_letter_queue,
            topic=self.notifications.topic,
        )

        cdk.CfnOutput(
            self,
            "StateMachineArn",
            value=self.workflow.state_machine.state_machine_arn,
            description="Watch runs in the Step Functions console; execution name = run id",
        )
        cdk.CfnOutput(
            self,
            "InputBucketName",
            value=self.storage.input_bucket.bucket_name,
            description="Upload JSONL files to s3://<this bucket>/<pipeline>/<name>.jsonl",
        )
        cdk.CfnOutput(
            self,
            "OutputBucketName",
            value=self.storage.output_bucket.bucket_name,
            description="Runs appear under runs/<pipeline>/<run-id>/, rejected files under rejected/",
        )
