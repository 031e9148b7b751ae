"""Amazon Bedrock batch inference (CreateModelInvocationJob) behind the backend interface.

One planned job is one model invocation job over one job file that intake wrote and sized to the
quotas (shards/job-NNNNN.jsonl). Bedrock writes `<output uri>/<job id>/<input file>.out`, one line per
record in no guaranteed order (joined on recordId), and `manifest.json.out` with the job's record and
token counts.

- Queueing: the concurrent-job quota is per account and per model and shared by every run, so a
  ServiceQuotaExceededException or throttling on submit raises SubmitDeferred; the workflow's poll loop
  submits again with jittered backoff (batch_pipeline.jobs) instead of failing the run.
- Idempotency: the job name and the clientRequestToken are derived from the run id and job index, so a
  retried submit (Lambda retry, replayed Map iteration) gets the job it already started.
- Files under the batch minimum (intake route "on-demand"): the records run through InvokeModel, at most
  `on_demand_concurrency` at a time, inside the submit step; the output is written in the batch layout
  (`<output uri>/on-demand/<input file>.out` and `manifest.json.out`) so collect reads both alike.
- Failed records are resubmitted once when the pipeline sets `retry_failed_records` (see `finish`).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from batch_pipeline.backends import (
    BatchBackend,
    RawOutput,
    State,
    SubmitDeferred,
    error_code,
    error_message,
    job_state,
)
from batch_pipeline.backends.runs import job_output_uri, key_in_run_bucket, run_bucket, s3_uri
from batch_pipeline.backends.sagemaker import transform_job_name
from batch_pipeline.config import ConfigError, RuntimePipeline
from batch_pipeline.layout import INTERMEDIATE_TAGGING, OWNER_TAG_ENV, OWNER_TAG_KEY
from batch_pipeline.observability import local_stand_in
from batch_pipeline.outputs import OutputParseError, parse_output_line

from ..jsonl import body_lines

STATUS_TO_STATE: dict[str, State] = {
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
# Refusals that pass with time: the job stays queued and the poll loop submits it again.
DEFERRABLE = {"ServiceQuotaExceededException", "ThrottlingException", "TooManyRequestsException"}
# InvokeModel errors worth another try inside the on-demand step, before the record is reported failed.
TRANSIENT_INVOKE_ERRORS = {"ThrottlingException", "ServiceUnavailableException", "ModelNotReadyException",
                           "InternalServerException", "ModelTimeoutException"}
ON_DEMAND_ATTEMPTS = 5
MANIFEST_OUT = "manifest.json.out"
ON_DEMAND_FOLDER = "on-demand"
# On-demand answers are checkpointed in parts this size, so a retried step never sends a record twice.
ON_DEMAND_PARTS = "parts"
ON_DEMAND_PART_RECORDS = 25
ON_DEMAND_SENT_METADATA = "model-invocations"
# Bedrock's manifest.json.out fields, carried into our manifest as the backend's own counts.
RECORD_COUNT_FIELDS = ("totalRecordCount", "processedRecordCount", "successRecordCount", "errorRecordCount")
MANIFEST_FIELDS = (*RECORD_COUNT_FIELDS, "inputTokenCount", "outputTokenCount")
# Bedrock tag values may not hold parentheses ([a-zA-Z0-9\s._:/=+@-]*), so this says it without them.
STAND_IN_TAG = ("batch-pipeline:engine", "local stand-in engine - not a model")


def bedrock_job_name(run_id: str, index: int | str) -> str:
    """The same `<prefix><run id head>-<hash>-<index>` scheme as transform jobs.

    It also fits Bedrock's jobName pattern.
    """
    return transform_job_name(run_id, index)


def client_request_token(run_id: str, index: int | str) -> str:
    """Stable per (run, job index): Bedrock answers a repeated CreateModelInvocationJob with the job it already made."""
    return hashlib.sha256(f"{run_id}:{index}".encode()).hexdigest()[:64]


def job_id_of(arn: str) -> str:
    """arn:aws:bedrock:<region>:<account>:model-invocation-job/<job id> -> <job id> (Bedrock's output folder)."""
    return arn.rsplit("/", 1)[-1]


def _http_status(error: Exception) -> int:
    return int(getattr(error, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode") or 500)


def model_invocation_job_request(run: dict[str, Any], job: dict[str, Any], pipeline: RuntimePipeline) -> dict[str, Any]:
    """The exact CreateModelInvocationJob request for one planned job."""
    settings = pipeline.pipeline.bedrock
    if settings is None or pipeline.backend != "bedrock" or not pipeline.bedrock_model_id:
        raise ConfigError(f"pipeline {pipeline.name!r} is not a Bedrock pipeline")
    role_arn = os.environ.get("BEDROCK_ROLE_ARN")
    if not role_arn:
        raise ConfigError("the BEDROCK_ROLE_ARN environment variable is not set (the Bedrock service role)")
    index = job.get("token_index", job["index"])
    name = job.get("name") or bedrock_job_name(run["run_id"], index)
    if not job.get("input_uri"):
        raise ValueError(f"job {name} has no input_uri")
    key_in_run_bucket(run, job["input_uri"])
    output: dict[str, Any] = {"s3Uri": job_output_uri(run, job, name)}
    kms_key = os.environ.get("OUTPUT_KMS_KEY_ARN")
    if kms_key:
        output["s3EncryptionKeyId"] = kms_key
    tags = [
        {"key": "batch-pipeline:run-id", "value": str(run["run_id"])},
        {"key": "batch-pipeline:pipeline", "value": pipeline.name},
        {"key": "batch-pipeline:job-index", "value": str(index)},
    ]
    if os.environ.get(OWNER_TAG_ENV):
        # Job control may only read, stop and tag jobs carrying its stack's tag (stacks/bedrock.py).
        tags.append({"key": OWNER_TAG_KEY, "value": os.environ[OWNER_TAG_ENV]})
    if local_stand_in():
        tags.append({"key": STAND_IN_TAG[0], "value": STAND_IN_TAG[1]})
    return {
        "jobName": name,
        "roleArn": role_arn,
        # Converse: each modelInput is a Converse request body; InvokeModel: the model's native body.
        "modelInvocationType": invocation_type(pipeline),
        "clientRequestToken": client_request_token(run["run_id"], index),
        "modelId": pipeline.bedrock_model_id,
        "inputDataConfig": {"s3InputDataConfig": {"s3Uri": job["input_uri"], "s3InputFormat": "JSONL"}},
        "outputDataConfig": {"s3OutputDataConfig": output},
        "timeoutDurationInHours": settings.timeout_hours,
        "tags": tags,
    }


def invocation_type(pipeline: RuntimePipeline) -> str:
    settings = pipeline.pipeline.bedrock
    return "Converse" if settings is not None and settings.converse else "InvokeModel"


def converse_output(response: dict[str, Any]) -> dict[str, Any]:
    """A Converse runtime response as the batch job's modelOutput: the response without the HTTP metadata."""
    return {key: value for key, value in response.items() if key != "ResponseMetadata"}


class BedrockBackend(BatchBackend):
    name = "bedrock"
    CLIENTS = ("bedrock", "bedrock-runtime", "s3")

    def __init__(self, pipeline: RuntimePipeline, bedrock: Any = None, bedrock_runtime: Any = None, s3: Any = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(pipeline)
        self._clients = {"bedrock": bedrock, "bedrock-runtime": bedrock_runtime, "s3": s3}
        self._sleep = sleep
        self._lock = threading.Lock()
        self._requests_sent = 0
        if pipeline.pipeline.bedrock is None:
            raise ConfigError(f"pipeline {pipeline.name!r} has no bedrock settings")
        self.settings = pipeline.pipeline.bedrock

    def _client(self, service: str) -> Any:
        if self._clients[service] is None:
            import boto3

            self._clients[service] = boto3.client(service)
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

    def job_name(self, run: dict[str, Any], job: dict[str, Any]) -> str:
        return job.get("name") or bedrock_job_name(run["run_id"], job["index"])

    # ------------------------------------------------------------------ submit, status, stop

    def submit(self, run: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
        if job.get("route") == "on-demand":
            return self.run_on_demand(run, job)
        name = self.job_name(run, job)
        request = model_invocation_job_request(run, {**job, "name": name}, self.pipeline)
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
        state = job_state(
            name=name,
            arn=arn,
            status="Submitted",
            state="running",
            output_uri=request["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"],
        )
        state["invocation_type"] = request["modelInvocationType"]
        return state

    def _find_arn(self, name: str) -> str | None:
        paginator = self.bedrock.get_paginator("list_model_invocation_jobs")
        for page in paginator.paginate(nameContains=name):
            for summary in page.get("invocationJobSummaries", []):
                if summary["jobName"] == name:
                    arn: str = summary["jobArn"]
                    return arn
        return None

    def status(self, run: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
        if job.get("route") == "on-demand" or not job.get("arn"):
            raise LookupError(f"job {self.job_name(run, job)} has no Bedrock job to look up")
        described = self.bedrock.get_model_invocation_job(jobIdentifier=job["arn"])
        status = described["status"]
        state = job_state(
            name=described.get("jobName") or self.job_name(run, job),
            arn=described["jobArn"],
            status=status,
            state=STATUS_TO_STATE.get(status, "running"),
            failure_reason=described.get("message") if status in ("Failed", "Stopped", "Expired", "PartiallyCompleted")
            else None,
            output_uri=described["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"],
        )
        counts = {field: described[field] for field in RECORD_COUNT_FIELDS if field in described}
        if counts:
            state["record_counts"] = counts
        return state

    def find(self, run: dict[str, Any], job: dict[str, Any]) -> dict[str, Any] | None:
        if job.get("route") == "on-demand":
            return None  # no Bedrock job: it ran (or not) inside its submit step
        arn = job.get("arn") or self._find_arn(self.job_name(run, job))
        return self.status(run, {**job, "arn": arn}) if arn else None

    def stop(self, run: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
        try:
            self.bedrock.stop_model_invocation_job(jobIdentifier=job["arn"])
        except Exception as error:
            # A job that already ended (or is stopping) cannot be stopped; its state is the answer.
            if error_code(error) not in ("ValidationException", "ConflictException"):
                raise
        return self.status(run, job)

    # ------------------------------------------------------------------ on demand (below the batch minimum)

    def run_on_demand(self, run: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
        """InvokeModel (or Converse) for every record of the job file, at most on_demand_concurrency at a time;
        output in the batch layout so collect needs no second reader.

        Each record is sent once, whatever Step Functions retries: answers are checkpointed in parts of
        ON_DEMAND_PART_RECORDS records (`<output>/on-demand/parts/`), each carrying the requests it cost, so a
        retried or re-driven step sends only the records no earlier attempt answered, and a step that already
        wrote manifest.json.out sends nothing."""
        name = self.job_name(run, job)
        bucket = run_bucket(run)
        input_key = key_in_run_bucket(run, job["input_uri"])
        output_uri = job_output_uri(run, job, name)
        folder = key_in_run_bucket(run, output_uri) + ON_DEMAND_FOLDER + "/"
        output_key = folder + input_key.rsplit("/", 1)[-1] + ".out"
        records = [json.loads(line) for line in self._stream_lines(bucket, input_key)]
        answered, sent_before, part_index = self._on_demand_parts(bucket, folder + ON_DEMAND_PARTS + "/")
        pending = [record for record in records if record.get("recordId") not in answered]
        with ThreadPoolExecutor(max_workers=self.settings.on_demand_concurrency) as pool:
            for start in range(0, len(pending), ON_DEMAND_PART_RECORDS):
                self._requests_sent = 0
                lines = list(pool.map(self._invoke_one, pending[start:start + ON_DEMAND_PART_RECORDS]))
                key = f"{folder}{ON_DEMAND_PARTS}/part-{part_index:05d}.jsonl"
                part_index += 1
                self._put(bucket, key, _jsonl(lines), "application/x-ndjson",
                          metadata={ON_DEMAND_SENT_METADATA: str(self._requests_sent)})
                sent_before += self._requests_sent
                answered.update((line.get("recordId"), line) for line in lines)
        lines = [answered[record.get("recordId")] for record in records]
        self._put(bucket, output_key, _jsonl(lines), "application/x-ndjson")
        counts = _count_lines(lines)
        self._put(bucket, folder + MANIFEST_OUT, json.dumps(counts).encode(), "application/json")
        errors = counts["errorRecordCount"]
        state: State
        if records and errors == len(records):
            first = next(line["error"] for line in lines if "error" in line)
            state, status = "failed", "Failed"
            reason = f"every on-demand request failed; first error {first['errorCode']}: {first['errorMessage']}"
        elif errors:
            state, status, reason = (
                "partial",
                "PartiallyCompleted",
                f"{errors} of {len(records)} on-demand requests failed",
            )
        else:
            state, status, reason = "succeeded", "Completed", None
        result = job_state(
            name=name, arn=None, status=status, state=state, failure_reason=reason, output_uri=output_uri
        )
        result["mode"] = "on-demand"
        result["invocation_type"] = invocation_type(self.pipeline)
        result["record_counts"] = {k: counts[k] for k in RECORD_COUNT_FIELDS}
        result["model_invocations"] = sent_before
        return result

    def _on_demand_parts(self, bucket: str, prefix: str) -> tuple[dict[Any, dict[str, Any]], int, int]:
        """Earlier attempts of this on-demand step: their answers by recordId, the requests they were billed
        for, and how many parts they wrote (none on the first attempt)."""
        answered: dict[Any, dict[str, Any]] = {}
        sent = parts = 0
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                response = self.s3.get_object(Bucket=bucket, Key=item["Key"])
                sent += int(response.get("Metadata", {}).get(ON_DEMAND_SENT_METADATA, "0"))
                for line in body_lines(response["Body"]):
                    if line.strip():
                        record = json.loads(line)
                        answered[record.get("recordId")] = record
                parts += 1
        return answered, sent, parts

    def _invoke_one(self, record: dict[str, Any]) -> dict[str, Any]:
        line: dict[str, Any] = {"recordId": record.get("recordId"), "modelInput": record.get("modelInput")}
        converse = invocation_type(self.pipeline) == "Converse"
        for attempt in range(ON_DEMAND_ATTEMPTS):
            try:
                if converse:
                    # The same identifier as the batch job (foundation model or inference profile).
                    response = self.runtime.converse(modelId=self.pipeline.bedrock_model_id, **record["modelInput"])
                    self._count_requests(response)
                    line["modelOutput"] = converse_output(response)
                    return line
                response = self.runtime.invoke_model(
                    modelId=self.pipeline.bedrock_model_id, body=json.dumps(record["modelInput"]).encode(),
                    contentType="application/json", accept="application/json")
                self._count_requests(response)
                line["modelOutput"] = json.loads(response["body"].read())
                return line
            except Exception as error:
                self._count_requests(getattr(error, "response", None))
                code = error_code(error)
                if not code:
                    raise
                if code in TRANSIENT_INVOKE_ERRORS and attempt + 1 < ON_DEMAND_ATTEMPTS:
                    # Full jitter: concurrent workers that were throttled together do not retry together.
                    self._sleep(random.uniform(0, min(20.0, 2.0 ** attempt)))
                    continue
                # The shape of Bedrock's own per-record error in a batch .out line.
                line["error"] = {"errorCode": _http_status(error), "errorMessage": f"{code}: {error_message(error)}"}
                return line
        raise AssertionError("unreachable")  # pragma: no cover

    def _count_requests(self, response: dict[str, Any] | None) -> None:
        """InvokeModel/Converse requests sent, botocore's own retries included (the manifest's model_invocations)."""
        if response is None:
            return
        sent = 1 + int(response.get("ResponseMetadata", {}).get("RetryAttempts") or 0)
        with self._lock:
            self._requests_sent += sent

    # ------------------------------------------------------------------ resubmitting failed records once

    def finish(self, run: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
        """With `retry_failed_records`, an ended job whose output has error records is followed by one retry of
        just those records (a batch job when they reach the minimum, else on demand). When the retry ends, the
        first output with the retried answers in place of the errors is written to raw/<job>/merged/, and the job
        reads as the original again, with the retry under "retry"."""
        if not self.settings.retry_failed_records:
            return job
        if "first_attempt" in job:
            return self._merge_retry(run, job)
        if job.get("retry") or job["state"] not in ("succeeded", "partial"):
            return job
        bucket = run_bucket(run)
        input_key = key_in_run_bucket(run, job["input_uri"])
        output_key = next(iter(self.raw_outputs(run, job))).output_key
        retry_key = input_key.rsplit(".", 1)[0] + "-retry.jsonl"
        # Disk-backed, so a job whose every record failed does not hold them all in memory.
        with RecordSpool() as failed, tempfile.NamedTemporaryFile("wb", suffix=".jsonl") as retry_file:
            for output in self._output_lines(bucket, output_key):
                if "error" in output:
                    failed.add(str(output["recordId"]), b"")
            if not len(failed):
                return job
            records = 0
            for line in self._stream_lines(bucket, input_key):
                if str(json.loads(line).get("recordId")) in failed:
                    retry_file.write(line + b"\n")
                    records += 1
            retry_file.flush()
            self.s3.upload_file(retry_file.name, bucket, retry_key,
                                ExtraArgs={"ContentType": "application/x-ndjson", "Tagging": INTERMEDIATE_TAGGING})
        index = f"{job['index']}r"
        first = {k: job.get(k) for k in ("name", "arn", "status", "state", "failure_reason", "output_uri", "input_uri",
                                         "route", "mode", "record_counts", "model_invocations")}
        retry_job = {key: value for key, value in job.items() if key not in ("queued_at", "submitted_at", "mode",
                                                                             "record_counts", "last_refusal")}
        retry_job.update(job_state(name=bedrock_job_name(run["run_id"], index), arn=None, status="NotSubmitted",
                                   state="queued", output_uri=job["output_uri"]))
        retry_job.update(
            first_attempt=first, token_index=index, input_uri=s3_uri(bucket, retry_key), records=records,
            route="batch" if records >= self.settings.min_records_per_job else "on-demand",
        )
        return retry_job

    def _merge_retry(self, run: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
        bucket = run_bucket(run)
        first = job["first_attempt"]
        retry_output_key = next(iter(self.raw_outputs(run, job))).output_key
        retry_folder = self._output_folder(run, job)
        original = {**job, **first}
        original_output_key = next(iter(self.raw_outputs(run, original))).output_key
        merged_key = (f"{key_in_run_bucket(run, job_output_uri(run, original, first['name']))}merged/"
                      f"{original_output_key.rsplit('/', 1)[-1]}")
        recovered = 0
        # Both sides stream: the retried answers go to a disk-backed spool keyed by recordId, the merged output to a
        # local file (a job's output can be hundreds of MB), so memory does not grow with the number of records.
        with RecordSpool() as answers, tempfile.NamedTemporaryFile("wb", suffix=".out") as merged:
            for output in self._output_lines(bucket, retry_output_key):
                if "error" not in output:
                    answers.add(str(output["recordId"]), json.dumps(output, ensure_ascii=False).encode())
            for line in self._output_lines(bucket, original_output_key):
                answer = answers.get(str(line.get("recordId"))) if "error" in line else None
                if answer is not None:
                    merged.write(answer + b"\n")
                    recovered += 1
                else:
                    merged.write(json.dumps(line, ensure_ascii=False).encode() + b"\n")
            merged.flush()
            self.s3.upload_file(merged.name, bucket, merged_key,
                                ExtraArgs={"ContentType": "application/x-ndjson", "Tagging": INTERMEDIATE_TAGGING})
        result = {key: value for key, value in job.items() if key not in ("first_attempt", "token_index")}
        result.update(first)
        result.update(
            done=True, merged_output_key=merged_key,
            retry={"name": job["name"], "arn": job.get("arn"), "status": job["status"], "state": job["state"],
                   "route": job.get("route"), "records": job.get("records"), "recovered": recovered,
                   "failure_reason": job.get("failure_reason"), "model_invocations": job.get("model_invocations"),
                   "manifest_key": retry_folder + MANIFEST_OUT if retry_folder else None},
        )
        return result

    def _stream_lines(self, bucket: str, key: str) -> Iterable[bytes]:
        """The object's non-blank lines, read as they stream; GetObject runs now, so a missing object raises here."""
        body = self.s3.get_object(Bucket=bucket, Key=key)["Body"]
        return (line for line in body_lines(body) if line.strip())

    def _output_lines(self, bucket: str, key: str) -> Iterable[dict[str, Any]]:
        """The readable lines of an output object, one at a time; none when the object does not exist."""
        try:
            lines = self._stream_lines(bucket, key)
        except Exception as error:
            if error_code(error) in ("NoSuchKey", "404"):
                return
            raise
        for line in lines:
            try:
                yield json.loads(line)
            except ValueError:
                continue  # collect reports unreadable lines; the retry only needs readable ones

    # ------------------------------------------------------------------ outputs

    def _output_folder(self, run: dict[str, Any], job: dict[str, Any]) -> str | None:
        """Key prefix of the folder Bedrock (or the on-demand step) wrote this job's output into."""
        base = key_in_run_bucket(run, job_output_uri(run, job, self.job_name(run, job)))
        if job.get("route") == "on-demand" or job.get("mode") == "on-demand":
            return base + ON_DEMAND_FOLDER + "/"
        if not job.get("arn"):
            return None  # never submitted: no output
        return base + job_id_of(job["arn"]) + "/"

    def raw_outputs(self, run: dict[str, Any], job: dict[str, Any]) -> Iterable[RawOutput]:
        input_key = key_in_run_bucket(run, job["input_uri"])
        folder = self._output_folder(run, job)
        if job.get("merged_output_key"):
            output_key = job["merged_output_key"]
        elif folder is None:
            output_key = f"{key_in_run_bucket(run, job_output_uri(run, job, self.job_name(run, job)))}not-submitted.out"
        else:
            output_key = folder + input_key.rsplit("/", 1)[-1] + ".out"
        yield RawOutput(input_key=input_key, output_key=output_key, join="id", input_id_field="recordId")

    def job_metrics(self, run: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
        """Bedrock's own counts from manifest.json.out (plus the retry's, when failed records were resubmitted)."""
        folder = self._output_folder(run, job)
        metrics = self._manifest_out(run_bucket(run), folder + MANIFEST_OUT) if folder else {}
        retry = job.get("retry") or {}
        if retry.get("manifest_key"):
            metrics = {**metrics, "retry": self._manifest_out(run_bucket(run), retry["manifest_key"])}
        return metrics

    def _manifest_out(self, bucket: str, key: str) -> dict[str, Any]:
        try:
            body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as error:
            if error_code(error) in ("NoSuchKey", "404"):
                return {}
            raise
        try:
            data = json.loads(body)
        except ValueError:
            return {"unreadable_manifest": key}
        return {field: data[field] for field in MANIFEST_FIELDS if isinstance(data.get(field), int)}

    # ------------------------------------------------------------------ S3 helpers

    def _put(
        self, bucket: str, key: str, body: bytes, content_type: str, metadata: dict[str, str] | None = None
    ) -> None:
        # The bucket's default encryption applies; the tag lets the lifecycle rule expire raw output like Bedrock's.
        self.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type, Tagging=INTERMEDIATE_TAGGING,
                           Metadata=metadata or {})


class RecordSpool:
    """recordId -> bytes on local disk (sqlite in a temporary file): a set or map that does not live in memory."""

    def __init__(self) -> None:
        import sqlite3

        # Lives as long as the spool: the database is in this file, deleted when the spool closes it.
        self._file = tempfile.NamedTemporaryFile(suffix=".sqlite")  # noqa: SIM115
        self._db = sqlite3.connect(self._file.name)
        self._db.execute("CREATE TABLE spool (id TEXT PRIMARY KEY, body BLOB)")

    def add(self, record_id: str, body: bytes) -> None:
        self._db.execute("INSERT OR REPLACE INTO spool VALUES (?, ?)", (record_id, body))

    def get(self, record_id: str) -> bytes | None:
        row = self._db.execute("SELECT body FROM spool WHERE id = ?", (record_id,)).fetchone()
        return None if row is None else bytes(row[0])

    def __contains__(self, record_id: object) -> bool:
        return self._db.execute("SELECT 1 FROM spool WHERE id = ?", (record_id,)).fetchone() is not None

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM spool").fetchone()[0])

    def __enter__(self) -> RecordSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self._db.close()
        self._file.close()


def _jsonl(lines: Iterable[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()


def _count_lines(lines: list[dict[str, Any]]) -> dict[str, int]:
    """manifest.json.out counts for lines written by the on-demand step (token counts from each modelOutput's usage)."""
    counts = dict.fromkeys(MANIFEST_FIELDS, 0)
    for line in lines:
        counts["totalRecordCount"] += 1
        counts["processedRecordCount"] += 1
        if "error" in line:
            counts["errorRecordCount"] += 1
            continue
        counts["successRecordCount"] += 1
        try:
            parsed = parse_output_line(json.dumps(line))
        except OutputParseError:
            continue
        counts["inputTokenCount"] += parsed.get("input_tokens") or 0
        counts["outputTokenCount"] += parsed.get("output_tokens") or 0
    return counts
