"""The run's state machine: run the planned jobs (submit, wait for the job's end), collect and score, manifest, notify.

Step Functions has no `.sync` integration for Bedrock batch jobs, so job control is a Lambda submit step plus a
`.waitForTaskToken` wait for both backends: the backend's EventBridge job-state event resumes the iteration
(stacks/job_events.py), and the wait's timeout is the backstop that checks the job directly if an event is lost.
The same shape runs unchanged on moto's interpreter in local mode. Every task's failure is caught and ends in a
failure manifest and a notification, never in a silently failed execution.
"""

from __future__ import annotations

from typing import Unpack

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from batch_pipeline.config.app import AppConfig
from batch_pipeline.config.runtime import dump_runtime_prices, runtime_prices
from batch_pipeline.storage.layout import RUNS_PREFIX, TOKENS_PREFIX

from .functions import FunctionFactory, FunctionSpec, Sizing, role_of
from .models import RAW_PATTERN, SHARDS_PATTERN, grant_data_key
from .nag import acknowledge, arn_evidence, logical_id
from .naming import stack_scoped_name
from .notifications import grant_publish

JOB_NAME_PREFIX = "llmbp-"
# Step Functions state machine names: 1-80 characters.
STATE_MACHINE_NAME_MAX = 80
# Lambda errors Step Functions reports for a failure of the Lambda service, not of our code: retried on every task.
# https://docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html
TRANSIENT_LAMBDA_ERRORS = (
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
)
SANDBOX_TIMEOUT = "Sandbox.Timedout"
# The run fields job control reads (jobs.backends, jobs.loop); intake always sets all four.
JOB_RUN_FIELDS = ("run_id", "pipeline", "output_bucket", "run_prefix")


class Workflow(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        functions: FunctionFactory,
        output_bucket: s3.IBucket,
        key: kms.IKey | None,
        topic: sns.ITopic,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self._functions = functions
        self._output_bucket = output_bucket
        self._key = key
        self._run_objects = output_bucket.arn_for_objects(f"{RUNS_PREFIX}*")
        self._output_id = logical_id(output_bucket)

        self.job_control_fn = self._function(
            "JobControl",
            "batch_pipeline.handlers.job_control.handler",
            "Submits one backend job idempotently (a small Bedrock file runs on demand here), or reports its status "
            "and the next poll delay",
            # A poll takes well under a second; a Bedrock file under the batch minimum runs its InvokeModel calls here,
            # and a retry of failed records writes its input file through /tmp (collect merges the retry's answers).
            timeout=cdk.Duration.minutes(15),
            ephemeral_storage_mb=4096,
            read=True,
            write=True,
            environment={
                "JOB_NAME_PREFIX": JOB_NAME_PREFIX,
                "POLL_INITIAL_SECONDS": "30",
                "POLL_MAX_SECONDS": "600",
                **({"OUTPUT_KMS_KEY_ARN": key.key_arn} if key else {}),
            },
        )
        self.collect_fn = self._function(
            "CollectOutputs",
            "batch_pipeline.handlers.collect.handler",
            "Joins backend outputs to input records by id and scores them (ROUGE or classification) in one pass; "
            "writes predictions.jsonl, errors.jsonl and evaluation.json",
            read=True,
            write=True,
            memory_mb=2048,
            timeout=cdk.Duration.minutes(15),
            ephemeral_storage_mb=10240,
        )
        self.finalize_fn = self._function(
            "WriteManifest",
            "batch_pipeline.handlers.finalize.handler",
            "Writes manifest.json and summary.md for a finished or failed run",
            read=True,
            write=True,
            # The catalog's prices, from which the manifest computes the run's cost (only this function needs them).
            environment={"PRICES": dump_runtime_prices(runtime_prices(config))},
        )
        self.notify_fn = self._function(
            "Notify",
            "batch_pipeline.handlers.notify.handler",
            "Publishes the run's outcome to the notification topic",
            environment={"TOPIC_ARN": topic.topic_arn},
        )
        grant_publish(topic, key, self.notify_fn)
        self._grant_sagemaker_job_control(self.job_control_fn)
        self._grant_job_outputs(self.job_control_fn)
        # The wait step leaves each waiting job's task token under job-tokens/<job name>.json for the event handler,
        # and deletes it once the job ended (storage.job_store); the lifecycle rule expires what a failed run leaves.
        self.job_control_fn.add_to_role_policy(
            iam.PolicyStatement(
                sid="WriteJobTokens",
                actions=["s3:PutObject", "s3:DeleteObject"],
                resources=[output_bucket.arn_for_objects(f"{TOKENS_PREFIX}*")],
            )
        )
        acknowledge(
            role_of(self.job_control_fn).node.find_child("DefaultPolicy"),
            "AwsSolutions-IAM5",
            "One token object per job, named by the job at run time; writes and deletes stay inside job-tokens/.",
            applies_to=f"Resource::<{self._output_id}.Arn>/{TOKENS_PREFIX}*",
        )

        definition = self._definition(config)
        log_group = logs.LogGroup(
            self, "ExecutionLogs", retention=log_retention, encryption_key=key, removal_policy=cdk.RemovalPolicy.DESTROY
        )
        self.state_machine = sfn.StateMachine(
            self,
            "RunStateMachine",
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            tracing_enabled=True,
            encryption_configuration=sfn.CustomerManagedEncryptionConfiguration(key) if key else None,
            comment="One uploaded file: run backend jobs, collect and score, write the manifest, notify",
            # Named: CDK conditions the role's key grant on kms:EncryptionContext:aws:states:stateMachineArn built
            # from this name; unnamed, the condition ends in "stateMachine:" and never matches.
            state_machine_name=stack_scoped_name(stack.stack_name, "runs", STATE_MACHINE_NAME_MAX),
        )
        acknowledge(
            self.state_machine.role.node.find_child("DefaultPolicy"),
            "AwsSolutions-IAM5",
            "Lambda invoke grants cover the function's versions (ARN:*); X-Ray and log delivery APIs "
            "have no resource-level permissions.",
            applies_to="Resource::*",
        )
        for fn in (self.job_control_fn, self.collect_fn, self.finalize_fn, self.notify_fn):
            acknowledge(
                self.state_machine.role.node.find_child("DefaultPolicy"),
                "AwsSolutions-IAM5",
                "Invoking any published version of the app's own function.",
                applies_to=f"Resource::<{logical_id(fn)}.Arn>:*",
            )

    # ------------------------------------------------------------------ functions and grants

    def _function(
        self,
        name: str,
        handler: str,
        description: str,
        *,
        read: bool = False,
        write: bool = False,
        environment: dict[str, str] | None = None,
        **sizing: Unpack[Sizing],
    ) -> lambda_.Function:
        fn = self._functions.create(
            FunctionSpec(name=name, handler=handler, description=description, environment=environment or {}, **sizing)
        )
        actions = (["s3:GetObject", "s3:ListBucket"] if read else []) + (
            ["s3:PutObject", "s3:PutObjectTagging", "s3:AbortMultipartUpload"] if write else []
        )
        if actions:
            object_actions = [a for a in actions if a != "s3:ListBucket"]
            fn.add_to_role_policy(
                iam.PolicyStatement(sid="RunFolder", actions=object_actions, resources=[self._run_objects])
            )
            if read:
                fn.add_to_role_policy(
                    iam.PolicyStatement(
                        sid="ListRunFolder",
                        actions=["s3:ListBucket"],
                        resources=[self._output_bucket.bucket_arn],
                        conditions={"StringLike": {"s3:prefix": [f"{RUNS_PREFIX}*"]}},
                    )
                )
            acknowledge(
                role_of(fn).node.find_child("DefaultPolicy"),
                "AwsSolutions-IAM5",
                "Run folders are named per upload at run time; access stays inside runs/.",
                applies_to=f"Resource::<{self._output_id}.Arn>/{RUNS_PREFIX}*",
            )
            if self._key is not None:
                grant_data_key(fn, self._key)
        return fn

    def _grant_job_outputs(self, fn: lambda_.Function) -> None:
        """Tell a missing job output (404 NoSuchKey) from a forbidden one, and clean up a failed multipart upload.

        S3 answers GetObject of a missing key with NoSuchKey only to a caller with s3:ListBucket on the bucket
        (GetObject API reference); retry_failed_records reads outputs that may be missing. The rule names the
        bucket, so no s3:prefix condition; it lists key names, never reads contents.
        """
        fn.add_to_role_policy(
            iam.PolicyStatement(
                sid="TellMissingJobOutputs", actions=["s3:ListBucket"], resources=[self._output_bucket.bucket_arn]
            )
        )
        fn.add_to_role_policy(
            iam.PolicyStatement(
                sid="AbortJobOutputUploads",
                actions=["s3:AbortMultipartUpload"],
                resources=[
                    self._output_bucket.arn_for_objects(RAW_PATTERN),
                    self._output_bucket.arn_for_objects(SHARDS_PATTERN),
                ],
            )
        )
        for pattern in (RAW_PATTERN, SHARDS_PATTERN):
            acknowledge(
                role_of(fn).node.find_child("DefaultPolicy"),
                "AwsSolutions-IAM5",
                "Run ids are created per upload; aborts only job control's own uploads under raw/ and shards/.",
                applies_to=f"Resource::<{self._output_id}.Arn>/{pattern}",
            )

    def _grant_sagemaker_job_control(self, fn: lambda_.Function) -> None:
        stack = cdk.Stack.of(self)
        jobs = stack.format_arn(service="sagemaker", resource="transform-job", resource_name=f"{JOB_NAME_PREFIX}*")
        fn.add_to_role_policy(
            iam.PolicyStatement(
                sid="ControlOwnTransformJobs",
                actions=[
                    "sagemaker:CreateTransformJob",
                    "sagemaker:DescribeTransformJob",
                    "sagemaker:StopTransformJob",
                    "sagemaker:AddTags",
                ],
                resources=[jobs],
            )
        )
        acknowledge(
            role_of(fn).node.find_child("DefaultPolicy"),
            "AwsSolutions-IAM5",
            "Transform job names are made per run; all start with this app's prefix.",
            applies_to=f"Resource::{arn_evidence(self, 'sagemaker', f'transform-job/{JOB_NAME_PREFIX}*')}",
        )

    # ------------------------------------------------------------------ the state machine

    def _invoke(
        self, name: str, fn: lambda_.Function, payload: dict[str, object], result_path: str | None
    ) -> tasks.LambdaInvoke:
        task = tasks.LambdaInvoke(
            self,
            name,
            lambda_function=fn,
            payload=sfn.TaskInput.from_object(payload),
            payload_response_only=True,
            result_path=result_path,
            retry_on_service_exceptions=False,
        )
        self._retry(task)
        return task

    @staticmethod
    def _retry(task: tasks.LambdaInvoke) -> None:
        # The transient errors AWS documents for Lambda tasks (Step Functions best practices, "Handle Lambda service
        # exceptions"): retried on every task, with the interval, attempts and backoff that page recommends.
        task.add_retry(
            errors=list(TRANSIENT_LAMBDA_ERRORS),
            interval=cdk.Duration.seconds(2),
            max_attempts=6,
            backoff_rate=2,
            jitter_strategy=sfn.JitterType.FULL,
        )
        # A function that ran out of time once gets one more try, not six: each try can cost up to its timeout.
        task.add_retry(errors=[SANDBOX_TIMEOUT], interval=cdk.Duration.seconds(2), max_attempts=1)

    def _caught(self, task: sfn.TaskStateBase | sfn.Map, on_failure: sfn.IChainable, jobs_path: str | None) -> None:
        """Any failure of `task` goes to the failure path with the jobs known at that point (the plan's, or the
        ended ones), so the run's jobs are stopped and listed in the failure manifest."""
        state = task.state_id
        record = sfn.Pass(
            self,
            f"{state} failed",
            parameters={
                "run.$": "$.run",
                **({"jobs.$": jobs_path} if jobs_path else {"jobs": []}),
                "failure": {"state": state, "error.$": "$.error.Error", "cause.$": "$.error.Cause"},
            },
        )
        record.next(on_failure)
        task.add_catch(record, errors=["States.ALL"], result_path="$.error")

    def _definition(self, config: AppConfig) -> sfn.IChainable:
        # ---- the failure path: stop what still runs, write the failure manifest, notify, end red.
        stop_jobs = self._invoke(
            "Stop the run's jobs",
            self.job_control_fn,
            {"action": "stop_all", "run.$": "$.run", "jobs.$": "$.jobs"},
            "$.stopped",
        )
        write_failure = self._invoke(
            "Write failure manifest",
            self.finalize_fn,
            {"run.$": "$.run", "failure.$": "$.failure", "jobs.$": "$.stopped.jobs"},
            "$.manifest",
        )
        notify_failed = self._invoke(
            "Notify run failed", self.notify_fn, {"run.$": "$.run", "manifest.$": "$.manifest"}, sfn.JsonPath.DISCARD
        )
        run_failed = sfn.Fail(self, "Run failed", cause_path="$.manifest.cause", error_path="$.manifest.error")
        # Stopping failed too: the manifest still lists every job, as last seen by the workflow.
        stop_failed = sfn.Pass(self, "Stopping jobs failed", parameters={"jobs.$": "$.jobs"}, result_path="$.stopped")
        stop_jobs.add_catch(stop_failed, errors=["States.ALL"], result_path="$.stop_error")
        stop_failed.next(write_failure)
        no_manifest = sfn.Fail(
            self,
            "Run failed without a manifest",
            error="ManifestNotWritten",
            cause="the failure manifest could not be written; see the Write failure manifest step",
        )
        write_failure.add_catch(no_manifest, errors=["States.ALL"], result_path="$.manifest_error")
        # A notification that cannot be sent is its own failed step; the run's outcome and manifest stand.
        failure_unsent = sfn.Pass(self, "Failure notification failed", result_path=sfn.JsonPath.DISCARD)
        notify_failed.add_catch(failure_unsent, errors=["States.ALL"], result_path="$.notify_error")
        failure_unsent.next(run_failed)
        failure_path = stop_jobs.next(write_failure).next(notify_failed).next(run_failed)

        # Intake planned the run: the execution input is the run and one reference per job (contracts.ExecutionInput),
        # each job already in <run>/jobs/<index>.json, so no step reads a plan back from S3.
        start = sfn.Pass(self, "Start run", parameters={"run.$": "$.run", "plan.$": "$.plan"})

        # ---- one Map iteration per job: submit once, then wait for the job's end (event or backstop).
        submit = self._invoke(
            "Submit job",
            self.job_control_fn,
            {"action": "submit", "run.$": "$.run", "job.$": "$.job", "attempt.$": "$.attempt"},
            "$",
        )
        # The job control function stores the task token for the job-state event handler and checks the job once;
        # the iteration then sleeps until SendTaskSuccess (the event, or the function itself for a job that already
        # ended). Its timeout is the backstop: a lost event costs one check per backstop period, not a poll loop.
        wait_for_end = tasks.LambdaInvoke(
            self,
            "Wait for job to end",
            lambda_function=self.job_control_fn,
            integration_pattern=sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
            payload=sfn.TaskInput.from_object(
                {
                    "action": "wait",
                    "run.$": "$.run",
                    "job.$": "$.job",
                    "attempt.$": "$.attempt",
                    "task_token": sfn.JsonPath.task_token,
                }
            ),
            task_timeout=sfn.Timeout.at("$.backstop_seconds"),
            result_path="$",
            retry_on_service_exceptions=False,
        )
        self._retry(wait_for_end)
        backstop = sfn.Pass(self, "No job event: check the job", result_path=sfn.JsonPath.DISCARD)
        wait_for_end.add_catch(backstop, errors=["States.Timeout"], result_path="$.backstop")
        backstop.next(wait_for_end)
        # A submission the backend refused for now (quota, throttling) waits with backoff before it is tried again.
        wait = sfn.Wait(self, "Wait before submitting again", time=sfn.WaitTime.seconds_path("$.wait_seconds"))
        wait.next(wait_for_end)
        # The iteration's result is the job's index alone: its state is in the run's jobs/ folder (job_store).
        ended = sfn.Pass(self, "Job ended", parameters={"index.$": "$.job.index"})
        # Submit goes to the Choice, not to the wait: a job that ends inside its submit step (on demand) is done
        # there, and checking it would run it again.
        loop = (
            sfn.Choice(self, "Job finished?")
            .when(sfn.Condition.boolean_equals("$.job.done", True), ended)
            .when(sfn.Condition.string_equals("$.job.state", "queued"), wait)
            .otherwise(wait_for_end)
        )
        wait_for_end.next(loop)
        run_jobs = sfn.Map(
            self,
            "Run jobs",
            items_path="$.plan.jobs",
            max_concurrency=config.max_concurrent_jobs_per_run,
            # One job reference and the small run reference job control reads (where the run lives, which pipeline).
            item_selector={
                "run": {key + ".$": f"$.run.{key}" for key in JOB_RUN_FIELDS},
                "job.$": "$$.Map.Item.Value",
                "attempt": 0,
            },
            result_path="$.jobs",
        )
        run_jobs.item_processor(submit.next(loop))

        # The plan is done with once every job ended: from here the state carries the run and the ended jobs once.
        jobs_ended = sfn.Pass(self, "Jobs ended", parameters={"run.$": "$.run", "jobs.$": "$.jobs"})
        # Collect joins the outputs to the records and scores them in the same pass (evaluation.json): the state
        # carries the evaluation's headline, and nothing reads predictions.jsonl back.
        collect = self._invoke(
            "Collect and score outputs", self.collect_fn, {"run.$": "$.run", "jobs.$": "$.jobs"}, "$.collect"
        )
        manifest = self._invoke(
            "Write manifest",
            self.finalize_fn,
            {"run.$": "$.run", "jobs.$": "$.jobs", "collect.$": "$.collect"},
            "$.manifest",
        )
        notify_done = self._invoke(
            "Notify run finished", self.notify_fn, {"run.$": "$.run", "manifest.$": "$.manifest"}, sfn.JsonPath.DISCARD
        )
        outcome = (
            sfn.Choice(self, "Did the run fail?")
            .when(sfn.Condition.string_equals("$.manifest.status", "FAILED"), run_failed)
            .otherwise(sfn.Succeed(self, "Run finished"))
        )
        unsent = sfn.Pass(self, "Notification failed", result_path=sfn.JsonPath.DISCARD)
        notify_done.add_catch(unsent, errors=["States.ALL"], result_path="$.notify_error")
        unsent.next(outcome)

        # A failed Map iteration fails the Map, and the other iterations' states are lost: the plan's jobs are
        # looked up on the backend by name instead.
        self._caught(run_jobs, failure_path, "$.plan.jobs")
        for task in (collect, manifest):
            self._caught(task, failure_path, "$.jobs")
        # A FAILED status (all jobs failed) still notifies before the execution ends red.
        return start.next(run_jobs).next(jobs_ended).next(collect).next(manifest).next(notify_done).next(outcome)
