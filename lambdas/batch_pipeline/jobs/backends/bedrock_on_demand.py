"""On-demand invocation: a Bedrock job file under the batch minimum (intake route "on-demand") runs its records
through InvokeModel (or Converse) inside the submit step, at most `on_demand_concurrency` at a time.

The output is written in the batch layout (`<output uri>/on-demand/<input file>.out` and `manifest.json.out`), so
collect reads both alike. Each record is sent once, whatever Step Functions retries: answers are checkpointed in
parts of ON_DEMAND_PART_RECORDS records (`<output>/on-demand/parts/`, keys from storage.layout), each carrying the
requests it cost, so a
retried or re-driven step sends only the records no earlier attempt answered, and a step that already wrote
manifest.json.out sends nothing.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from batch_pipeline.config.runtime import RuntimePipeline
from batch_pipeline.contracts import Job, JobState, JobStateName
from batch_pipeline.jobs.backends import error_code, error_message
from batch_pipeline.results.outputs import OutputParseError, parse_output_line
from batch_pipeline.storage import s3io
from batch_pipeline.storage.jsonl import body_lines
from batch_pipeline.storage.layout import (
    INTERMEDIATE_TAGGING,
    RunFolder,
    on_demand_folder,
    on_demand_part_key,
    on_demand_parts,
)

# InvokeModel errors worth another try inside the on-demand step, before the record is reported failed.
TRANSIENT_INVOKE_ERRORS = {
    "ThrottlingException",
    "ServiceUnavailableException",
    "ModelNotReadyException",
    "InternalServerException",
    "ModelTimeoutException",
}
ON_DEMAND_ATTEMPTS = 5
# Bedrock's own summary beside a job's output (the batch layout the on-demand step writes too).
MANIFEST_OUT = "manifest.json.out"
# On-demand answers are checkpointed in parts this size, so a retried step never sends a record twice.
ON_DEMAND_PART_RECORDS = 25
ON_DEMAND_SENT_METADATA = "model-invocations"
# Bedrock's manifest.json.out fields, carried into our manifest as the backend's own counts.
RECORD_COUNT_FIELDS = ("totalRecordCount", "processedRecordCount", "successRecordCount", "errorRecordCount")
MANIFEST_FIELDS = (*RECORD_COUNT_FIELDS, "inputTokenCount", "outputTokenCount")


def invocation_type(pipeline: RuntimePipeline) -> str:
    settings = pipeline.pipeline.bedrock
    return "Converse" if settings is not None and settings.converse else "InvokeModel"


def converse_output(response: dict[str, Any]) -> dict[str, Any]:
    """A Converse runtime response as the batch job's modelOutput: the response without the HTTP metadata."""
    return {key: value for key, value in response.items() if key != "ResponseMetadata"}


def _http_status(error: Exception) -> int:
    return int(getattr(error, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode") or 500)


class OnDemandRunner:
    """Runs one on-demand job: every record of its job file through the runtime API, answers in the batch layout."""

    def __init__(self, pipeline: RuntimePipeline, runtime: Any, s3: Any, sleep: Callable[[float], None]) -> None:
        if pipeline.pipeline.bedrock is None:
            raise ValueError(f"pipeline {pipeline.name!r} has no bedrock settings")
        self.pipeline = pipeline
        self.settings = pipeline.pipeline.bedrock
        self.runtime = runtime
        self.s3 = s3
        self._sleep = sleep
        self._lock = threading.Lock()
        self._requests_sent = 0

    def run(self, folder: RunFolder, job: Job, name: str) -> JobState:
        """The job's normalised end state, with its record counts and the requests it was billed for."""
        bucket = folder.bucket
        if not job.input_uri:
            raise ValueError(f"on-demand job {name} has no input_uri")
        input_key = folder.key_of(job.input_uri)
        output_uri = folder.job_output_uri(job.output_uri, name)
        answers = on_demand_folder(folder.key_of(output_uri))
        output_key = answers + input_key.rsplit("/", 1)[-1] + ".out"
        records = [json.loads(line) for line in s3io.lines(self.s3, bucket, input_key)]
        answered, sent_before, part_index = self._parts(bucket, on_demand_parts(answers))
        pending = [record for record in records if record.get("recordId") not in answered]
        with ThreadPoolExecutor(max_workers=self.settings.on_demand_concurrency) as pool:
            for start in range(0, len(pending), ON_DEMAND_PART_RECORDS):
                self._requests_sent = 0
                lines = list(pool.map(self._invoke_one, pending[start : start + ON_DEMAND_PART_RECORDS]))
                key = on_demand_part_key(answers, part_index)
                part_index += 1
                self._put(
                    bucket,
                    key,
                    _jsonl(lines),
                    "application/x-ndjson",
                    metadata={ON_DEMAND_SENT_METADATA: str(self._requests_sent)},
                )
                sent_before += self._requests_sent
                answered.update((line.get("recordId"), line) for line in lines)
        lines = [answered[record.get("recordId")] for record in records]
        self._put(bucket, output_key, _jsonl(lines), "application/x-ndjson")
        counts = count_lines(lines)
        self._put(bucket, answers + MANIFEST_OUT, json.dumps(counts).encode(), "application/json")
        errors = counts["errorRecordCount"]
        state: JobStateName
        reason: str | None
        if records and errors == len(records):
            first = next(line["error"] for line in lines if "error" in line)
            state, status = "failed", "Failed"
            reason = f"every on-demand request failed; first error {first['errorCode']}: {first['errorMessage']}"
        elif errors:
            state, status = "partial", "PartiallyCompleted"
            reason = f"{errors} of {len(records)} on-demand requests failed"
        else:
            state, status, reason = "succeeded", "Completed", None
        return JobState(
            name=name,
            arn=None,
            status=status,
            state=state,
            failure_reason=reason,
            output_uri=output_uri,
            invocation_type=invocation_type(self.pipeline),
            record_counts={k: counts[k] for k in RECORD_COUNT_FIELDS},
            model_invocations=sent_before,
        )

    def _parts(self, bucket: str, prefix: str) -> tuple[dict[Any, dict[str, Any]], int, int]:
        """Earlier attempts of this on-demand step: their answers by recordId, the requests they were billed
        for, and how many parts they wrote (none on the first attempt)."""
        answered: dict[Any, dict[str, Any]] = {}
        sent = parts = 0
        for key in s3io.list_keys(self.s3, bucket, prefix):
            response = s3io.get_object(self.s3, bucket, key)
            if response is None:
                continue  # listed, then gone: nothing of it to reuse
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
                    modelId=self.pipeline.bedrock_model_id,
                    body=json.dumps(record["modelInput"]).encode(),
                    contentType="application/json",
                    accept="application/json",
                )
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
                    self._sleep(random.uniform(0, min(20.0, 2.0**attempt)))
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

    def _put(
        self, bucket: str, key: str, body: bytes, content_type: str, metadata: dict[str, str] | None = None
    ) -> None:
        # The tag lets the lifecycle rule expire raw output like Bedrock's.
        s3io.put_bytes(self.s3, bucket, key, body, content_type, tagging=INTERMEDIATE_TAGGING, metadata=metadata)


def _jsonl(lines: Iterable[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()


def count_lines(lines: list[dict[str, Any]]) -> dict[str, int]:
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
