"""A Bedrock batch job's data in S3, read and written as Bedrock does (Bedrock User Guide, batch inference data).

- Input (`read_input`, what Bedrock checks while a job is Validating): `inputDataConfig.s3InputDataConfig.s3Uri` is
  one `.jsonl` object or a folder holding `.jsonl` objects; each line `{"recordId", "modelInput"}`. A missing
  recordId is added (11 characters). A line that is not a JSON object or has no object `modelInput`, no `.jsonl`
  input, a missing bucket, or a record count or size outside the job quotas fails the job with a message.
- Output (`write_output`): `<output s3Uri>/<job id>/<input file relative to the input folder>.out`, lines
  `{"recordId", "modelInput", "modelOutput"}` or, for a failed record, `{"recordId", "modelInput", "error":
  {"errorCode", "errorMessage"}}`, shuffled (seeded by the job id: output order is not guaranteed); plus
  `manifest.json.out`, one JSON object with totalRecordCount, processedRecordCount, successRecordCount,
  errorRecordCount, inputTokenCount, outputTokenCount; plus the stand-in's marker object.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Iterator
from typing import Any

from botocore.client import BaseClient

from batch_pipeline.storage.jsonl import split_lines
from batch_pipeline_local.engines.bedrock_jobs import InputFile, InvocationJob
from batch_pipeline_local.engines.bedrock_model import RecordFailure, answer
from batch_pipeline_local.engines.stand_in import MARKER_OBJECT, marker_body

MANIFEST_OUT = "manifest.json.out"


def split_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def read_input(s3: BaseClient, job: InvocationJob, *, min_records: int, max_records: int, max_job_bytes: int) -> None:
    """Read the job's input into `job.files`, as Bedrock does while Validating; a problem is kept in
    `job.validation_error` (the job then fails with it) rather than raised: it fails the job, not the request."""
    uri = job.request["inputDataConfig"]["s3InputDataConfig"]["s3Uri"]
    bucket, key = split_uri(uri)
    out_bucket, _ = split_uri(job.request["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"])
    try:
        for name in {bucket, out_bucket}:
            s3.head_bucket(Bucket=name)
        objects = input_objects(s3, bucket, key)
    except Exception as error:  # botocore ClientError: the bucket or object is not there
        job.validation_error = f"Unable to access the S3 location {uri}: {error}"
        return
    if not objects:
        job.validation_error = f"No .jsonl files were found at the input location {uri}."
        return
    if sum(size for _, _, size in objects) > max_job_bytes:
        job.validation_error = (
            f"The input at {uri} exceeds the maximum batch inference job size of {max_job_bytes} bytes."
        )
        return
    ids = record_ids(job.job_id)
    for object_key, relative, _ in objects:
        data = s3.get_object(Bucket=bucket, Key=object_key)["Body"].read()
        records, raw = [], []
        for number, line in enumerate((b.decode("utf-8", errors="replace") for b in split_lines(data)), start=1):
            if not line.strip():
                continue
            record, problem = input_record(line)
            if problem:
                job.validation_error = (
                    f"Line {number} of {object_key} {problem}. Each record must be a JSON "
                    f"object with a recordId and a modelInput."
                )
                return
            records.append({"recordId": record.get("recordId") or next(ids), "modelInput": record["modelInput"]})
            raw.append(line)
        job.files.append(InputFile(object_key, relative, records, raw))
    total = job.total_records
    if total < min_records:
        job.validation_error = (
            f"The job has {total} records, fewer than the minimum of {min_records} records per batch inference job."
        )
    elif total > max_records:
        job.validation_error = (
            f"The job has {total} records, more than the maximum of {max_records} records per batch inference job."
        )


def write_output(s3: BaseClient, job: InvocationJob, processed: int, *, shuffle: bool) -> dict[str, int]:
    """Output for the first `processed` records (input order), the manifest and the marker; returns the counts."""
    bucket, prefix = split_uri(job.request["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"])
    folder = f"{prefix.rstrip('/')}/{job.job_id}/" if prefix.strip("/") else f"{job.job_id}/"
    invocation_type = job.request.get("modelInvocationType", "InvokeModel")
    counts = dict.fromkeys(
        (
            "totalRecordCount",
            "processedRecordCount",
            "successRecordCount",
            "errorRecordCount",
            "inputTokenCount",
            "outputTokenCount",
        ),
        0,
    )
    counts["totalRecordCount"] = job.total_records
    rng = random.Random(job.job_id)
    left = processed
    for input_file in job.files:
        if left <= 0:
            break
        lines = []
        for record in input_file.records[:left]:
            line: dict[str, Any] = {"recordId": record["recordId"], "modelInput": record["modelInput"]}
            try:
                output, input_tokens, output_tokens = answer(job.model_id, record["modelInput"], invocation_type)
            except RecordFailure as failure:
                line["error"] = {"errorCode": 400, "errorMessage": str(failure)}
                counts["errorRecordCount"] += 1
            else:
                line["modelOutput"] = output
                counts["successRecordCount"] += 1
                counts["inputTokenCount"] += input_tokens
                counts["outputTokenCount"] += output_tokens
            counts["processedRecordCount"] += 1
            lines.append(json.dumps(line, ensure_ascii=False))
        left -= len(lines)
        if shuffle:
            rng.shuffle(lines)
        key = f"{folder}{input_file.relative}.out"
        s3.put_object(Bucket=bucket, Key=key, Body="".join(f"{line}\n" for line in lines).encode())
        job.outputs.append(key)
    s3.put_object(Bucket=bucket, Key=folder + MANIFEST_OUT, Body=json.dumps(counts).encode())
    s3.put_object(
        Bucket=bucket,
        Key=folder + MARKER_OBJECT,
        Body=marker_body(job.name),
    )
    job.outputs += [folder + MANIFEST_OUT, folder + MARKER_OBJECT]
    job.counts = counts
    return counts


def input_objects(s3: BaseClient, bucket: str, key: str) -> list[tuple[str, str, int]]:
    """(key, output name, size) of the job's .jsonl input: the object itself, or the .jsonl objects in the folder."""
    if key and not key.endswith("/"):
        try:
            head = s3.head_object(Bucket=bucket, Key=key)
        except Exception:  # not an object: a folder
            pass
        else:
            return [(key, key.rsplit("/", 1)[-1], head["ContentLength"])] if key.endswith(".jsonl") else []
    folder = key if not key or key.endswith("/") else key + "/"
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder):
        for item in page.get("Contents", []):
            if item["Key"].endswith(".jsonl"):
                found.append((item["Key"], item["Key"][len(folder) :], item["Size"]))
    return sorted(found)


def record_ids(seed: str) -> Iterator[str]:
    """The 11-character alphanumeric recordIds Bedrock adds to records that have none."""
    rng = random.Random(seed)
    while True:
        yield "".join(rng.choices(string.ascii_uppercase + string.digits, k=11))


def input_record(line: str) -> tuple[Any, str | None]:
    """An input line's record and, if Bedrock's validation would refuse it, what is wrong with it."""
    try:
        record = json.loads(line)
    except ValueError:
        return None, "is not valid JSON"
    if not isinstance(record, dict):
        return record, "is not a JSON object"
    if not isinstance(record.get("modelInput"), dict):
        return record, "has no modelInput object"
    if "recordId" in record and not isinstance(record["recordId"], str):
        return record, "has a recordId that is not a string"
    return record, None
