"""A run in local mode: a file uploaded to the emulated input bucket, its S3 event delivered to intake as the
EventBridge rule delivers it, the execution waited for, and what it produced read back (`run_file` -> RunResult).

`RUN_OBSERVERS` are called with every RunResult: the e2e suite checks there that each run's manifest counts exactly
the model requests the stand-in engines received, and that every backend job's wait was resumed by its event.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from batch_pipeline.storage.jsonl import split_lines
from batch_pipeline.storage.layout import REJECTION_REPORT_SUFFIX, RunFolder, rejected_pipeline_prefix
from batch_pipeline_local.emulator.deploy import LocalApp, LocalRunError
from batch_pipeline_local.emulator.events import Event
from batch_pipeline_local.engines.bedrock_batch import active_bedrock_emulator
from batch_pipeline_local.engines.bedrock_batch import model_requests_received as bedrock_received
from batch_pipeline_local.engines.sagemaker_transform import active_sagemaker_engine
from batch_pipeline_local.template import ACCOUNT, REGION


def eventbridge_object_created(bucket: str, key: str, head: dict[str, Any]) -> Event:
    """The event S3 sends to EventBridge for a new object (the shape the intake rule delivers)."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    obj = {
        "key": key,
        "size": head["ContentLength"],
        "etag": head["ETag"].strip('"'),
        "sequencer": uuid.uuid4().hex[:18].upper(),
    }
    if head.get("VersionId") and head["VersionId"] != "null":
        obj["version-id"] = head["VersionId"]
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": ACCOUNT,
        "time": now,
        "region": REGION,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": obj,
            "request-id": uuid.uuid4().hex[:16].upper(),
            "requester": ACCOUNT,
            "source-ip-address": "127.0.0.1",
            "reason": "PutObject",
        },
    }


def upload(local: LocalApp, path: Path, pipeline: str, name: str | None = None) -> Event:
    s3 = boto3.client("s3", region_name=REGION)
    key = f"{pipeline}/{name or path.name}"
    s3.upload_file(str(path), local.input_bucket, key)
    head = s3.head_object(Bucket=local.input_bucket, Key=key)
    return eventbridge_object_created(local.input_bucket, key, head)


def deliver(local: LocalApp, event: Event) -> Any:
    """Deliver an S3 event to intake, as the EventBridge rule does."""
    intake = local.function_by_handler("batch_pipeline.handlers.intake.handler")
    return local.invoke(intake, event)


def wait_for_executions(local: LocalApp, timeout: float = 120.0) -> list[dict[str, Any]]:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    deadline = time.monotonic() + timeout
    while True:
        if local.event_bus is not None:
            local.event_bus.raise_failures()  # a job-state event's handler raised: fail now, with its traceback
        executions = sfn.list_executions(stateMachineArn=local.state_machine_arn)["executions"]
        if all(e["status"] != "RUNNING" for e in executions):
            return [sfn.describe_execution(executionArn=e["executionArn"]) for e in executions]
        if time.monotonic() > deadline:
            raise LocalRunError(
                f"executions still running after {timeout:.0f} s: "
                f"{[e['name'] for e in executions if e['status'] == 'RUNNING']}"
            )
        time.sleep(0.05)


def read_json(bucket: str, key: str) -> dict[str, Any] | None:
    s3 = boto3.client("s3", region_name=REGION)
    try:
        document: dict[str, Any] = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except s3.exceptions.NoSuchKey:
        return None
    return document


def read_lines(bucket: str, key: str) -> list[dict[str, Any]]:
    s3 = boto3.client("s3", region_name=REGION)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return [json.loads(line) for line in split_lines(body) if line.strip()]


@dataclass
class RunResult:
    """What one local run produced: the manifest, or the rejection report, and the execution."""

    pipeline: str
    key: str
    execution: dict[str, Any] | None
    manifest: dict[str, Any] | None
    rejection: dict[str, Any] | None
    seconds: float
    # Billed model requests the emulators received during this run (an independent count: the manifest's
    # model_invocations must equal it).
    model_requests_received: int = 0
    # Jobs whose wait a job-state event resumed during this run (the event handler answered "resumed"), by event
    # source: what tells an event-driven run from one that found its jobs ended or fell back on the backstop.
    resumed_by_event: dict[str, list[str]] = field(default_factory=dict)

    @property
    def status(self) -> str:
        if self.manifest:
            status: str = self.manifest["status"]
            return status
        return "REJECTED" if self.rejection else "NO RUN"


def model_requests_received() -> int:
    """Billed requests the installed stand-in engines received so far: InvokeModel requests, records of Bedrock
    batch jobs and records of transform jobs. Counted where the requests arrive, not where they are sent."""
    total = 0
    with contextlib.suppress(LookupError):
        total += bedrock_received(active_bedrock_emulator())
    with contextlib.suppress(LookupError):
        total += active_sagemaker_engine().records_received
    return total


# Called with every RunResult run_file returns (the e2e suite checks each run's billed requests here).
RUN_OBSERVERS: list[Callable[[RunResult], None]] = []


def run_file(local: LocalApp, path: Path, pipeline: str, *, timeout: float = 120.0) -> RunResult:
    result = _run_file(local, path, pipeline, timeout=timeout)
    for observer in RUN_OBSERVERS:
        observer(result)
    return result


def _run_file(local: LocalApp, path: Path, pipeline: str, *, timeout: float) -> RunResult:
    started = time.monotonic()
    received_before = model_requests_received()
    delivered_before = len(local.event_bus.delivered) if local.event_bus is not None else 0
    event = upload(local, path, pipeline)
    before = {
        e["executionArn"]
        for e in boto3.client("stepfunctions", region_name=REGION).list_executions(
            stateMachineArn=local.state_machine_arn
        )["executions"]
    }
    deliver(local, event)
    executions = [e for e in wait_for_executions(local, timeout) if e["executionArn"] not in before]
    key = event["detail"]["object"]["key"]
    if not executions:
        return RunResult(
            pipeline, key, None, None, _find_rejection(local, pipeline, path.name), time.monotonic() - started
        )
    execution = executions[0]
    run = json.loads(execution["input"])["run"]  # contracts.ExecutionInput
    folder = RunFolder.of(run)
    manifest = read_json(folder.bucket, folder.manifest_key)
    return RunResult(
        pipeline,
        key,
        execution,
        manifest,
        None,
        time.monotonic() - started,
        model_requests_received() - received_before,
        _resumed_by_event(local, delivered_before),
    )


def _resumed_by_event(local: LocalApp, since: int) -> dict[str, list[str]]:
    """Job names whose wait an event delivery resumed (after the `since`-th delivery), by the event's source."""
    if local.event_bus is None:
        return {}
    local.event_bus.drain()  # a delivery that resumed the run records its result just after SendTaskSuccess
    resumed: dict[str, list[str]] = {}
    for _, event, result in local.event_bus.delivered[since:]:
        if isinstance(result, dict) and result.get("outcome") == "resumed":
            resumed.setdefault(event["source"], []).append(result["job_name"])
    return resumed


def _find_rejection(local: LocalApp, pipeline: str, name: str) -> dict[str, Any] | None:
    s3 = boto3.client("s3", region_name=REGION)
    listing = s3.list_objects_v2(Bucket=local.output_bucket, Prefix=rejected_pipeline_prefix(pipeline))
    reports = sorted(
        (o for o in listing.get("Contents", []) if o["Key"].endswith(name + REJECTION_REPORT_SUFFIX)),
        key=lambda o: o["LastModified"],
    )
    if not reports:
        return None
    report = read_json(local.output_bucket, reports[-1]["Key"])
    if report is None:  # deleted since it was listed
        return None
    return dict(report, report_uri=f"s3://{local.output_bucket}/{reports[-1]['Key']}")
