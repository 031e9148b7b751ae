"""Amazon Bedrock batch inference (CreateModelInvocationJob) behind the backend interface.

One planned job is one model invocation job over one job file that intake wrote and sized to the
quotas (shards/job-NNNNN.jsonl). Bedrock writes `<output uri>/<job id>/<input file>.out`, one line per
record in no guaranteed order (joined on recordId), and `manifest.json.out` with the job's record and
token counts.

- Queueing: the concurrent-job quota is per account and per model and shared by every run, so a
  ServiceQuotaExceededException or throttling on submit raises SubmitDeferred; the job loop submits
  again after a jittered backoff wait (batch_pipeline.jobs.loop) instead of failing the run.
- Idempotency: the job name and the clientRequestToken are derived from the run id and job index, so a
  retried submit (Lambda retry, replayed Map iteration) gets the job it already started.
- Files under the batch minimum (intake route "on-demand") run through InvokeModel inside the submit step
  (backends/bedrock_on_demand.py), their output in the batch layout.
- Failed records are resubmitted once when the pipeline sets `retry_failed_records` (backends/bedrock_retry.py);
  collect merges the retry's answers in.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from batch_pipeline import settings
from batch_pipeline.config.app import ConfigError
from batch_pipeline.config.runtime import RuntimePipeline
from batch_pipeline.contracts import Job, JobState, JobStateName
from batch_pipeline.jobs.backends import BatchBackend, RawOutput, SubmitDeferred, error_code, error_message
from batch_pipeline.jobs.backends.bedrock_on_demand import (
    MANIFEST_FIELDS,
    MANIFEST_OUT,
    RECORD_COUNT_FIELDS,
    OnDemandRunner,
    invocation_type,
)
from batch_pipeline.jobs.backends.bedrock_retry import end_retry, in_retry, retry_index, start_retry
from batch_pipeline.jobs.backends.sagemaker import transform_job_name
from batch_pipeline.observability import local_stand_in
from batch_pipeline.storage import s3io
from batch_pipeline.storage.layout import OWNER_TAG_KEY, RunFolder, as_folder, on_demand_folder

STATUS_TO_STATE: dict[str, JobStateName] = {
    # Accepted by Bedrock and on their way: not "queued" (which means "not submitted yet, submit again").
    "Submitted": "running",
    "Validating": "running",
    "Scheduled": "running",
    "InProgress": "running",
    # Still writing output until it reaches Stopped.
    "Stopping": "running",
    "Completed": "succeeded",
    # Both still have output for the records that were processed.
    "PartiallyCompleted": "partial",
    "Expired": "partial",
    "Failed": "failed",
    "Stopped": "stopped",
}
# Refusals that pass with time: the job stays queued and the job loop submits it again.
DEFERRABLE = {"ServiceQuotaExceededException", "ThrottlingException", "TooManyRequestsException"}
# Bedrock tag values may not hold parentheses ([a-zA-Z0-9\s._:/=+@-]*), so this says it without them.
STAND_IN_TAG = ("batch-pipeline:engine", "local stand-in engine - not a model")


def bedrock_job_name(run_id: str, index: int | str) -> str:
    """The same `<prefix><run id head>-<hash>-<index>` scheme as transform jobs.

    It also fits Bedrock's jobName pattern."""
    return transform_job_name(run_id, index)


def client_request_token(run_id: str, index: int | str) -> str:
    """Stable per (run, job index): Bedrock answers a repeated CreateModelInvocationJob with the job it already made."""
    return hashlib.sha256(f"{run_id}:{index}".encode()).hexdigest()[:64]


def job_id_of(arn: str) -> str:
    """arn:aws:bedrock:<region>:<account>:model-invocation-job/<job id> -> <job id> (Bedrock's output folder)."""
    return arn.rsplit("/", 1)[-1]


def model_invocation_job_request(folder: RunFolder, job: Job, pipeline: RuntimePipeline) -> dict[str, Any]:
    """The exact CreateModelInvocationJob request for one planned job."""
    options = pipeline.pipeline.bedrock
    if options is None or pipeline.backend != "bedrock" or not pipeline.bedrock_model_id:
        raise ConfigError(f"pipeline {pipeline.name!r} is not a Bedrock pipeline")
    env = settings.current()
    role_arn = env.require("bedrock_role_arn")  # the Bedrock service role
    # A retry of failed records takes its token and index tag from its own index (jobs.backends.bedrock_retry).
    index = job.token_index if job.token_index is not None else job.index
    name = job.name or bedrock_job_name(folder.run_id, index)
    if not job.input_uri:
        raise ValueError(f"job {name} has no input_uri")
    folder.key_of(job.input_uri)
    output: dict[str, Any] = {"s3Uri": folder.job_output_uri(job.output_uri, name)}
    if env.output_kms_key_arn:
        output["s3EncryptionKeyId"] = env.output_kms_key_arn
    tags = [
        {"key": "batch-pipeline:run-id", "value": folder.run_id},
        {"key": "batch-pipeline:pipeline", "value": pipeline.name},
        {"key": "batch-pipeline:job-index", "value": str(index)},
    ]
    if env.owner_stack:
        # Job control may only read, stop and tag jobs carrying its stack's tag (stacks/bedrock.py).
        tags.append({"key": OWNER_TAG_KEY, "value": env.owner_stack})
    if local_stand_in():
        tags.append({"key": STAND_IN_TAG[0], "value": STAND_IN_TAG[1]})
    return {
        "jobName": name,
        "roleArn": role_arn,
        # Converse: each modelInput is a Converse request body; InvokeModel: the model's native body.
        "modelInvocationType": invocation_type(pipeline),
        "clientRequestToken": client_request_token(folder.run_id, index),
        "modelId": pipeline.bedrock_model_id,
        "inputDataConfig": {"s3InputDataConfig": {"s3Uri": job.input_uri, "s3InputFormat": "JSONL"}},
        "outputDataConfig": {"s3OutputDataConfig": output},
        "timeoutDurationInHours": options.timeout_hours,
        "tags": tags,
    }


class BedrockBackend(BatchBackend):
    name = "bedrock"
    CLIENTS = ("bedrock", "bedrock-runtime", "s3")

    def __init__(
        self,
        pipeline: RuntimePipeline,
        bedrock: Any = None,
        bedrock_runtime: Any = None,
        s3: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(pipeline)
        self._clients = {"bedrock": bedrock, "bedrock-runtime": bedrock_runtime, "s3": s3}
        self._sleep = sleep
        if pipeline.pipeline.bedrock is None:
            raise ConfigError(f"pipeline {pipeline.name!r} has no bedrock settings")
        self.settings = pipeline.pipeline.bedrock

    def _client(self, service: str) -> Any:
        if self._clients[service] is None:
            self._clients[service] = settings.client(service)
        return self._clients[service]

    @property
    def bedrock(self) -> Any:
        return self._client("bedrock")

    @property
    def runtime(self) -> Any:
        return self._client("bedrock-runtime")

    @property
    def s3(self) -> Any:
        return self._client("s3")

    def job_name(self, folder: RunFolder, job: Job) -> str:
        return job.name or bedrock_job_name(folder.run_id, job.index)

    # ------------------------------------------------------------------ submit, status, stop

    def submit(self, folder: RunFolder, job: Job) -> JobState:
        if job.route == "on-demand":
            return self.run_on_demand(folder, job)
        name = self.job_name(folder, job)
        request = model_invocation_job_request(folder, job.changed(name=name), self.pipeline)
        try:
            arn = self.bedrock.create_model_invocation_job(**request)["jobArn"]
        except Exception as error:  # botocore ClientError, matched on its code
            code = error_code(error)
            if code in DEFERRABLE:
                raise SubmitDeferred(f"{code}: {error_message(error)}") from error
            if code != "ConflictException":
                raise
            # The name is taken: an earlier try made the job (with another token, e.g. after a redeploy).
            arn = self._find_arn(name)
            if arn is None:
                raise
        return JobState(
            name=name,
            arn=arn,
            status="Submitted",
            state="running",
            output_uri=request["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"],
            invocation_type=request["modelInvocationType"],
        )

    def run_on_demand(self, folder: RunFolder, job: Job) -> JobState:
        """A job file under the batch minimum, run through InvokeModel now (backends/bedrock_on_demand.py)."""
        runner = OnDemandRunner(self.pipeline, self.runtime, self.s3, self._sleep)
        return runner.run(folder, job, self.job_name(folder, job))

    def _find_arn(self, name: str) -> str | None:
        paginator = self.bedrock.get_paginator("list_model_invocation_jobs")
        for page in paginator.paginate(nameContains=name):
            for summary in page.get("invocationJobSummaries", []):
                if summary["jobName"] == name:
                    return str(summary["jobArn"])
        return None

    def status(self, folder: RunFolder, job: Job) -> JobState:
        if job.route == "on-demand" or not job.arn:
            raise LookupError(f"job {self.job_name(folder, job)} has no Bedrock job to look up")
        described = self.bedrock.get_model_invocation_job(jobIdentifier=job.arn)
        status = described["status"]
        reported = JobState(
            name=described.get("jobName") or self.job_name(folder, job),
            arn=described["jobArn"],
            status=status,
            state=STATUS_TO_STATE.get(status, "running"),
            failure_reason=described.get("message")
            if status in ("Failed", "Stopped", "Expired", "PartiallyCompleted")
            else None,
            output_uri=described["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"],
        )
        counts = {field: described[field] for field in RECORD_COUNT_FIELDS if field in described}
        return reported.model_copy(update={"record_counts": counts}) if counts else reported

    def find(self, folder: RunFolder, job: Job) -> JobState | None:
        if job.route == "on-demand":
            return None  # no Bedrock job: it ran (or not) inside its submit step
        arn = job.arn or self._find_arn(self.job_name(folder, job))
        return self.status(folder, job.changed(arn=arn)) if arn else None

    def stop(self, folder: RunFolder, job: Job) -> JobState:
        try:
            self.bedrock.stop_model_invocation_job(jobIdentifier=job.arn)
        except Exception as error:
            # A job that already ended (or is stopping) cannot be stopped; its state is the answer.
            if error_code(error) not in ("ValidationException", "ConflictException"):
                raise
        return self.status(folder, job)

    # ------------------------------------------------------------------ resubmitting failed records once

    def finish(self, folder: RunFolder, job: Job) -> Job:
        """With `retry_failed_records`, an ended job whose output has error records is followed by one retry of
        just those records; when the retry ends, the job reads as the original again, with the retry under
        "retry" (backends/bedrock_retry.py). Collect puts the retried answers in place of the errors."""
        if not self.settings.retry_failed_records:
            return job
        if in_retry(job):
            output_folder = self._output_folder(folder, job)
            manifest_key = output_folder + MANIFEST_OUT if output_folder else None
            return end_retry(job, self._output(folder, job), manifest_key)
        if job.retry or job.state not in ("succeeded", "partial"):
            return job
        retry = start_retry(
            self.s3,
            folder,
            job,
            self._output(folder, job),
            retry_name=bedrock_job_name(folder.run_id, retry_index(job)),
            min_records_per_job=self.settings.min_records_per_job,
        )
        return job if retry is None else retry

    # ------------------------------------------------------------------ outputs

    def _output_base(self, folder: RunFolder, job: Job) -> str:
        """Key prefix of the folder the job's output goes to (the plan's output_uri, else raw/<job name>/)."""
        return folder.key_of(folder.job_output_uri(job.output_uri, self.job_name(folder, job)))

    def _output_folder(self, folder: RunFolder, job: Job) -> str | None:
        """Key prefix of the folder Bedrock (or the on-demand step) wrote this job's output into."""
        base = self._output_base(folder, job)
        if job.route == "on-demand":
            return on_demand_folder(base)
        if not job.arn:
            return None  # never submitted: no output
        # Bedrock's own layout: <output uri>/<job id>/ (DESIGN, "Backend facts").
        return as_folder(base + job_id_of(job.arn))

    def _output(self, folder: RunFolder, job: Job) -> RawOutput:
        """Where this attempt's answers to its job file are (the file need not exist yet)."""
        if not job.input_uri:
            raise ValueError(f"job {self.job_name(folder, job)} has no input_uri")
        input_key = folder.key_of(job.input_uri)
        output_folder = self._output_folder(folder, job)
        if output_folder is None:
            output_key = f"{self._output_base(folder, job)}not-submitted.out"
        else:
            output_key = output_folder + input_key.rsplit("/", 1)[-1] + ".out"
        return RawOutput(input_key=input_key, output_key=output_key, join="id", input_id_field="recordId")

    def raw_outputs(self, folder: RunFolder, job: Job) -> Iterable[RawOutput]:
        output = self._output(folder, job)
        if job.merged_output_key:
            # A run from before collect merged retries itself: job control wrote the merged output.
            yield RawOutput(
                input_key=output.input_key, output_key=job.merged_output_key, join="id", input_id_field="recordId"
            )
            return
        retry = job.retry or {}
        yield RawOutput(
            input_key=output.input_key,
            output_key=output.output_key,
            join="id",
            input_id_field="recordId",
            retry_output_key=retry.get("output_key"),
        )

    def job_metrics(self, folder: RunFolder, job: Job) -> dict[str, Any]:
        """Bedrock's own counts from manifest.json.out (plus the retry's, when failed records were resubmitted)."""
        output_folder = self._output_folder(folder, job)
        metrics = self._manifest_out(folder.bucket, output_folder + MANIFEST_OUT) if output_folder else {}
        retry = job.retry or {}
        if retry.get("manifest_key"):
            metrics = {**metrics, "retry": self._manifest_out(folder.bucket, retry["manifest_key"])}
        return metrics

    def _manifest_out(self, bucket: str, key: str) -> dict[str, Any]:
        response = s3io.get_object(self.s3, bucket, key)
        if response is None:
            return {}
        try:
            data = json.loads(response["Body"].read())
        except ValueError:
            return {"unreadable_manifest": key}
        return {field: data[field] for field in MANIFEST_FIELDS if isinstance(data.get(field), int)}
