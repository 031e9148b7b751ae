"""SageMaker Batch Transform behind the backend interface.

One planned job is one transform job over the run's shards (S3Prefix shards/), with one `.out`
object per shard under raw/<job-name>/. SageMaker hands whole objects to instances, which is why
intake writes at least one shard per instance.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

from batch_pipeline import settings
from batch_pipeline.config.app import ConfigError
from batch_pipeline.config.runtime import RuntimePipeline
from batch_pipeline.contracts import Job, JobState, JobStateName
from batch_pipeline.jobs.backends import BatchBackend, RawOutput, SubmitDeferred, error_code, error_message
from batch_pipeline.observability import local_stand_in
from batch_pipeline.storage import s3io
from batch_pipeline.storage.layout import RunFolder

CONTENT_TYPE = "application/jsonlines"
_JOB_NAME_MAX = 63
# The JumpStart HuggingFace containers in the catalog run with SAGEMAKER_MODEL_SERVER_TIMEOUT=3600, so a
# mini-batch of long articles may legitimately take that long; one retry absorbs a transient container hiccup.
INVOCATIONS_TIMEOUT_SECONDS = 3600
INVOCATIONS_MAX_RETRIES = 1
# Instance families with local NVMe storage: SageMaker encrypts it in hardware and refuses a VolumeKmsKeyId.
_LOCAL_STORAGE_FAMILY = re.compile(r"^(g4dn|g5|g6|g6e|p3dn|p4de?|p5e?n?|trn1n?|[a-z]+\d+[a-z]*d)$")
STAND_IN_TAG = ("batch-pipeline:engine", "local stand-in engine (not a model)")

STATUS_TO_STATE: dict[str, JobStateName] = {
    "InProgress": "running",
    # Not done yet: the job still writes output until it reaches Stopped.
    "Stopping": "running",
    "Completed": "succeeded",
    "Failed": "failed",
    "Stopped": "stopped",
}
# Errors that pass with time: the job loop submits again instead of failing the run.
_DEFERRABLE = {"ResourceLimitExceeded", "ThrottlingException", "Throttling", "TooManyRequestsException"}


def job_name_prefix() -> str:
    """JOB_NAME_PREFIX: job names share it so IAM can scope job control to this app's jobs
    (arn:...:transform-job/<prefix>*); names are lower case because SageMaker lower-cases them in ARNs, which IAM
    patterns match against."""
    return settings.current().job_name_prefix


def transform_job_name(run_id: str, index: int | str, prefix: str | None = None) -> str:
    """`<prefix><readable run id head>-<10 hex of sha256(run id)>-<index>`, lower case, at most 63 characters.

    The hash keeps names unique per run even when two run ids share their first characters."""
    prefix = (prefix if prefix is not None else job_name_prefix()).lower()
    prefix = prefix if prefix.endswith("-") else prefix + "-"
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:10]
    index_text = str(index)
    if not re.fullmatch(r"[0-9]+[a-z]?", index_text):
        raise ValueError(f"job index must be a number with an optional letter suffix, got {index!r}")
    tail = f"{digest}-{index_text}"
    budget = _JOB_NAME_MAX - len(prefix) - len(tail) - 1
    head = re.sub(r"[^a-z0-9]+", "-", run_id.lower()).strip("-")[: max(budget, 0)].rstrip("-")
    name = f"{prefix}{head}-{tail}" if head else f"{prefix}{tail}"
    if len(name) > _JOB_NAME_MAX or not re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*", name):
        raise ConfigError(f"JOB_NAME_PREFIX {prefix!r} leaves no valid transform job name (got {name!r})")
    return name


def job_input_prefix(folder: RunFolder, job: Job) -> str:
    """The key prefix a job reads: the plan's `input_uri`, else the run's shards/."""
    if job.input_uri:
        return folder.key_of(job.input_uri)
    return folder.shards_prefix


def has_local_storage(instance_type: str) -> bool:
    parts = instance_type.split(".")
    return len(parts) == 3 and bool(_LOCAL_STORAGE_FAMILY.match(parts[1]))


def transform_job_request(folder: RunFolder, job: Job, pipeline: RuntimePipeline) -> dict[str, Any]:
    """The exact CreateTransformJob request for one planned job."""
    options = pipeline.pipeline.sagemaker
    if options is None or pipeline.backend != "sagemaker":
        raise ConfigError(f"pipeline {pipeline.name!r} is not a SageMaker pipeline")
    if not pipeline.sagemaker_model_name:
        raise ConfigError(f"pipeline {pipeline.name!r} has no sagemaker_model_name in PIPELINES")
    name = job.name or transform_job_name(folder.run_id, job.index)
    kms_key = settings.current().output_kms_key_arn

    request: dict[str, Any] = {
        "TransformJobName": name,
        "ModelName": pipeline.sagemaker_model_name,
        "BatchStrategy": options.batch_strategy,
        "MaxPayloadInMB": options.max_payload_mb,
        "ModelClientConfig": {
            "InvocationsTimeoutInSeconds": INVOCATIONS_TIMEOUT_SECONDS,
            "InvocationsMaxRetries": INVOCATIONS_MAX_RETRIES,
        },
        "TransformInput": {
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": folder.uri(job_input_prefix(folder, job))}
            },
            "ContentType": CONTENT_TYPE,
            "CompressionType": "None",
            # Line/Line: each JSON line is a record and each answer one line of <shard>.out, in input order.
            "SplitType": "Line",
        },
        "TransformOutput": {
            "S3OutputPath": folder.job_output_uri(job.output_uri, name),
            "Accept": CONTENT_TYPE,
            "AssembleWith": "Line",
        },
        "TransformResources": {"InstanceType": options.instance_type, "InstanceCount": options.instance_count},
        "Tags": [
            {"Key": "batch-pipeline:run-id", "Value": folder.run_id},
            {"Key": "batch-pipeline:pipeline", "Value": pipeline.name},
            {"Key": "batch-pipeline:job-index", "Value": str(job.index)},
        ],
    }
    if options.max_concurrent_transforms > 0:
        # 0 in configuration means "let SageMaker ask the container", so the field is left out.
        request["MaxConcurrentTransforms"] = options.max_concurrent_transforms
    if options.hyper_params is not None:
        # str(dict), a Python literal, is what the JumpStart container parses (see the FLAN-T5 batch article).
        request["Environment"] = {"HYPER_PARAMS": str(options.hyper_params)}
    if kms_key:
        request["TransformOutput"]["KmsKeyId"] = kms_key
        if not has_local_storage(options.instance_type):
            request["TransformResources"]["VolumeKmsKeyId"] = kms_key
    if local_stand_in():
        request["Tags"].append({"Key": STAND_IN_TAG[0], "Value": STAND_IN_TAG[1]})
    return request


def _is_not_found(error: Exception) -> bool:
    # DescribeTransformJob answers ValidationException "Could not find requested job with name ..."
    # (moto: "... job '<arn>'").
    return (
        error_code(error) in ("ValidationException", "ResourceNotFound")
        and "could not find" in error_message(error).lower()
    )


def _is_name_taken(error: Exception) -> bool:
    message = error_message(error).lower()
    return error_code(error) == "ResourceInUse" or (
        error_code(error) == "ValidationException" and ("already exists" in message or "must be unique" in message)
    )


class SageMakerBackend(BatchBackend):
    name = "sagemaker"
    CLIENTS = ("sagemaker", "s3")

    def __init__(self, pipeline: RuntimePipeline, sagemaker: Any = None, s3: Any = None) -> None:
        super().__init__(pipeline)
        self._sagemaker = sagemaker
        self._s3 = s3

    @property
    def sagemaker(self) -> Any:
        if self._sagemaker is None:
            self._sagemaker = settings.client("sagemaker")
        return self._sagemaker

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            self._s3 = settings.client("s3")
        return self._s3

    @property
    def max_runtime_seconds(self) -> int | None:
        # CreateTransformJob has no stopping condition of its own, so job control enforces this one.
        options = self.pipeline.pipeline.sagemaker
        return options.max_runtime_hours * 3600 if options else None

    def job_name(self, folder: RunFolder, job: Job) -> str:
        return job.name or transform_job_name(folder.run_id, job.index)

    def submit(self, folder: RunFolder, job: Job) -> JobState:
        name = self.job_name(folder, job)
        # Describe first: a retried submit must find the job it already started (moto, unlike SageMaker,
        # would silently replace a job created twice under one name).
        existing = self._describe(name)
        if existing is not None:
            return self._state(existing)
        request = transform_job_request(folder, job.changed(name=name), self.pipeline)
        try:
            response = self.sagemaker.create_transform_job(**request)
        except Exception as error:  # botocore ClientError; matched on its code so botocore stays a lazy import
            if _is_name_taken(error):
                described = self._describe(name)
                if described is not None:
                    return self._state(described)
            if error_code(error) in _DEFERRABLE:
                raise SubmitDeferred(f"{error_code(error)}: {error_message(error)}") from error
            raise
        return JobState(
            name=name,
            arn=response["TransformJobArn"],
            status="InProgress",
            state="running",
            output_uri=request["TransformOutput"]["S3OutputPath"],
        )

    def status(self, folder: RunFolder, job: Job) -> JobState:
        name = self.job_name(folder, job)
        described = self._describe(name)
        if described is None:
            raise LookupError(f"transform job {name!r} does not exist")
        return self._state(described)

    def stop(self, folder: RunFolder, job: Job) -> JobState:
        name = self.job_name(folder, job)
        try:
            self.sagemaker.stop_transform_job(TransformJobName=name)
        except Exception as error:
            # A job that already ended cannot be stopped; its final state is the answer.
            if error_code(error) != "ValidationException":
                raise
        return self.status(folder, job)

    def raw_outputs(self, folder: RunFolder, job: Job) -> Iterable[RawOutput]:
        """Each shard answered by `<S3OutputPath>/<shard path relative to the input prefix>.out`."""
        input_prefix = job_input_prefix(folder, job)
        output_prefix = folder.key_of(folder.job_output_uri(job.output_uri, self.job_name(folder, job)))
        positional = self.pipeline.task == "zero-shot"
        for key in self._input_keys(folder, job, input_prefix):
            yield RawOutput(
                input_key=key,
                output_key=f"{output_prefix}{key[len(input_prefix) :]}.out",
                # The zero-shot container answers without the id: line i answers line i of the same object.
                join="position" if positional else "id",
                input_id_field="id",
                check_field="sequences" if positional else None,
            )

    def _input_keys(self, folder: RunFolder, job: Job, input_prefix: str) -> list[str]:
        if job.shard_keys:
            return list(job.shard_keys)
        return sorted(key for key in s3io.list_keys(self.s3, folder.bucket, input_prefix) if not key.endswith("/"))

    def _describe(self, name: str) -> dict[str, Any] | None:
        try:
            description: dict[str, Any] = self.sagemaker.describe_transform_job(TransformJobName=name)
            return description
        except Exception as error:
            if _is_not_found(error):
                return None
            raise

    @staticmethod
    def _state(described: dict[str, Any]) -> JobState:
        status = described["TransformJobStatus"]
        # When the instances ran (what Batch Transform bills; the manifest's cost uses them), as ISO-8601 strings
        # because the state travels as JSON. Absent until SageMaker reports them.
        times = {
            key: value.isoformat() if hasattr(value, "isoformat") else str(value)
            for field, key in (("TransformStartTime", "started_at"), ("TransformEndTime", "ended_at"))
            if (value := described.get(field)) is not None
        }
        return JobState.model_validate(
            {
                "name": described["TransformJobName"],
                "arn": described.get("TransformJobArn"),
                "status": status,
                "state": STATUS_TO_STATE.get(status, "running"),
                "failure_reason": described.get("FailureReason"),
                "output_uri": described.get("TransformOutput", {}).get("S3OutputPath"),
                **times,
            }
        )
