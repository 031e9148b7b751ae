"""A Bedrock batch inference job as the stand-in keeps it: its statuses, its GetModelInvocationJob answer, its
state-change event, and the clock that moves unfinished jobs on.

Statuses (Bedrock API reference, ModelInvocationJobStatus): a job runs Submitted -> Validating -> Scheduled ->
InProgress and ends Completed, PartiallyCompleted, Failed, Stopped or Expired; StopModelInvocationJob moves it to
Stopping first. The emulator (bedrock_batch.py) decides when a job moves and how it ends; this module holds what a job
is and says.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from batch_pipeline_local.engines.service_model import validation_error

RUNNING = ("Submitted", "Validating", "Scheduled", "InProgress")
TERMINAL = ("Completed", "PartiallyCompleted", "Failed", "Stopped", "Expired")
FORCEABLE_END_STATES = ("Completed", "PartiallyCompleted", "Expired", "Failed")


def utc_now() -> datetime:
    return datetime.now(UTC)


def timestamp(moment: datetime | None) -> str | None:
    """A time as Bedrock's JSON gives it: ISO 8601 in UTC, with milliseconds."""
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(value: str | None) -> datetime | None:
    """A time from a request (ISO 8601 or epoch seconds); ValidationException if it is neither."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            moment = datetime.fromtimestamp(float(value), UTC)
        except ValueError:
            raise validation_error(f"Invalid timestamp {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class InputFile:
    key: str  # the S3 key
    relative: str  # the output name: the key below the input folder (the file name for a one-file input)
    records: list[dict[str, Any]]  # {"recordId", "modelInput"} in input order, recordId filled in
    raw_text: list[str]  # each record's line, for the markers


@dataclass
class InvocationJob:
    """One model invocation job as the emulator keeps it; `request` is the create request as botocore sent it."""

    job_id: str
    arn: str
    region: str
    request: dict[str, Any]
    submit_time: datetime
    last_modified_time: datetime
    path: list[str]  # the running statuses the job shows, one per Get, before it ends
    step: int = 0
    status: str = "Submitted"
    end_status: str | None = None
    message: str | None = None
    end_time: datetime | None = None
    validation_error: str | None = None
    files: list[InputFile] = field(default_factory=list)
    counts: dict[str, int] | None = None
    outputs: list[str] = field(default_factory=list)  # the S3 keys written
    stopped_while: str | None = None
    checked: bool = False  # a GetModelInvocationJob has answered for it: the job clock may advance it from now on

    @property
    def name(self) -> str:
        name: str = self.request["jobName"]  # required by the API: botocore checked it
        return name

    @property
    def model_id(self) -> str:
        model_id: str = self.request["modelId"]
        return model_id

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    @property
    def total_records(self) -> int:
        return sum(len(f.records) for f in self.files)

    def describe(self) -> dict[str, Any]:
        """The GetModelInvocationJob answer (ListModelInvocationJobs summaries carry the same fields)."""
        request = self.request
        answer_: dict[str, Any] = {
            "jobArn": self.arn,
            "jobName": self.name,
            "modelId": self.model_id,
            "clientRequestToken": request.get("clientRequestToken"),
            "roleArn": request["roleArn"],
            "status": self.status,
            "message": self.message,
            "submitTime": timestamp(self.submit_time),
            "lastModifiedTime": timestamp(self.last_modified_time),
            "endTime": timestamp(self.end_time),
            "inputDataConfig": request["inputDataConfig"],
            "outputDataConfig": request["outputDataConfig"],
            "vpcConfig": request.get("vpcConfig"),
            "timeoutDurationInHours": request.get("timeoutDurationInHours"),
            "modelInvocationType": request.get("modelInvocationType"),
        }
        if request.get("timeoutDurationInHours"):
            expires = self.submit_time + timedelta(hours=request["timeoutDurationInHours"])
            answer_["jobExpirationTime"] = timestamp(expires)
        if self.status != "Submitted" and self.validation_error is None:
            answer_["totalRecordCount"] = self.total_records
        if self.counts is not None:
            answer_.update(
                {
                    k: self.counts[k]
                    for k in ("totalRecordCount", "processedRecordCount", "successRecordCount", "errorRecordCount")
                }
            )
        return {k: v for k, v in answer_.items() if v is not None}


def job_state_event(job: InvocationJob) -> dict[str, Any]:
    """The job's state-change event in EventBridge's envelope, as Bedrock publishes it
    (https://docs.aws.amazon.com/bedrock/latest/userguide/monitoring-eventbridge-how-it-works.html)."""
    account = job.arn.split(":")[4]
    detail: dict[str, Any] = {
        "version": "0.0",
        "accountId": account,
        "batchJobName": job.name,
        "batchJobArn": job.arn,
        "batchModelId": job.model_id,
        "status": job.status,
    }
    if job.message:
        detail["failureMessage"] = job.message
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Batch Inference Job State Change",
        "source": "aws.bedrock",
        "account": account,
        "time": timestamp(utc_now()),
        "region": job.region,
        "resources": [job.arn],
        "detail": detail,
    }


class JobClock:
    """Calls `tick` every `seconds` on a thread of its own, from `start()` until `stop()`."""

    def __init__(self, seconds: float, tick: Callable[[], None]) -> None:
        self.seconds = seconds
        self._tick = tick
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start ticking (once: a clock already started keeps its thread)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="bedrock-job-clock", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.wait(self.seconds):
            self._tick()
