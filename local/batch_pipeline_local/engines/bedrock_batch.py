"""A local emulator of Amazon Bedrock batch inference and InvokeModel: it exercises the pipeline, not a model.

The emulator answers, over moto's S3, what moto 5 lacks: CreateModelInvocationJob, GetModelInvocationJob,
ListModelInvocationJobs, StopModelInvocationJob, InvokeModel and Converse. It is split by job:
  - bedrock_routes.py    which botocore request is which operation, and the HTTP answer (hooked in before moto's
                         URL table, emulator/moto_hooks.answering_requests; nothing is answered outside mock_aws);
  - service_model.py     request constraints botocore leaves to the service, answered as ValidationException;
  - bedrock_model.py     the stand-in "model" that answers each request in its model family's native shape;
  - bedrock_jobs.py      a job: its statuses, its GetModelInvocationJob answer, its event, the job clock;
  - bedrock_job_data.py  a job's input read and validated, its output and manifest written, as Bedrock does;
  - this module          the API itself: the options, the decisions (when a job moves, how it ends), install.

Behaviour, from the Bedrock user guide and API reference:
  - Statuses move one step per GetModelInvocationJob: Submitted -> Validating -> Scheduled -> InProgress -> end
    (`steps`, default 4, is how many Gets a job takes to end; 0 ends it inside Create; with `tick_seconds`, also one
    step per tick once the job was got once or `start_after_seconds` after its submit). Validation failures
    (fewer than `min_records` or more than `max_records` records, a line that is not a JSON object or has no
    object `modelInput`, no `.jsonl` input, a missing bucket) end the job Failed after Validating, with `message`.
    Failed records do not change the status: the job is Completed with errorRecordCount > 0 (PartiallyCompleted
    means "not all records could be processed in time"); `partial_on_record_errors=True` reports them
    PartiallyCompleted instead. Expired means it timed out before it began, so it writes no records.
    Stop: Stopping, then Stopped on the next Get; a job stopped InProgress keeps output for the records done.
  - The job id is the last segment of the ARN (12 lowercase alphanumerics).
  - A repeated clientRequestToken returns the job it made ("Amazon Bedrock ignores the request, but does not
    return an error"); a repeated jobName with another token is a ConflictException.

It says what it is: every log line, a marker object `<job output>/_LOCAL_STAND_IN`, and the Anthropic `model` field
say "local stand-in engine (not a model)".

Failure injection, by markers in a record's text: `[[error-record]]` (that record gets an error object,
errorCode 400; InvokeModel answers ValidationException) and `[[fail-job]]` (the job ends Failed with a message
naming the record). By options: `quota_errors_on_submit=N` / `throttle_on_submit=N` (the next N Create calls
answer ServiceQuotaExceededException 400 / ThrottlingException 429), `throttle_invocations=N` (InvokeModel),
`max_active_jobs=N` (a per-model cap on unfinished jobs, answered ServiceQuotaExceededException),
`end_state="PartiallyCompleted"|"Expired"|"Failed"|"Completed"`, `fail_jobs={job name: message}`.
The counters count HTTP requests, so botocore's own retries (ThrottlingException is retryable) use them up.

Use: `with install_bedrock_engine(steps=0) as emulator:` inside `mock_aws`; local mode installs one from
`emulator.session.install_engines` (options via `local_aws(bedrock_options={...})`), reachable as
`active_bedrock_emulator()`; `emulator.job(id | arn | name)` and `emulator.calls` show what happened.

Deviations: the role is not assumed or checked beyond its ARN pattern; KMS keys, VPC config, tags (kept and
not returned; there is no ListTagsForResource here) and s3BucketOwner are stored, not enforced;
file and job size quotas are one `max_job_bytes` check; per-model quota values are the defaults, not your
account's; a Converse-type job (`modelInvocationType="Converse"`) is answered in the Converse shape by the
same rule; the duplicate-name error code (ConflictException) and stopping an ended job (ValidationException)
are inferred, not documented; jobs live in the emulator instance and vanish with it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import boto3
from botocore.client import BaseClient

from batch_pipeline_local.emulator.moto_hooks import answering_requests, default_account_id
from batch_pipeline_local.engines.bedrock_job_data import read_input, write_output
from batch_pipeline_local.engines.bedrock_jobs import (
    FORCEABLE_END_STATES,
    RUNNING,
    InvocationJob,
    JobClock,
    job_state_event,
    parse_time,
    utc_now,
)
from batch_pipeline_local.engines.bedrock_model import RecordFailure, answer
from batch_pipeline_local.engines.bedrock_routes import HttpAnswer, answer_request
from batch_pipeline_local.engines.service_model import ApiError, check_request, validation_error
from batch_pipeline_local.engines.stand_in import ENGINE_LABEL

FAIL_JOB = "[[fail-job]]"
DEFAULT_MIN_RECORDS = 100
DEFAULT_MAX_RECORDS = 50_000
DEFAULT_MAX_JOB_BYTES = 1024 * 1024 * 1024

log = logging.getLogger(__name__)


class BedrockBatchEmulator:
    """Bedrock batch inference and InvokeModel over moto's S3; a context manager that undoes itself.

    steps: how many GetModelInvocationJob calls a job takes to end (0: it ends inside Create).
    min_records / max_records / max_job_bytes: the per-job quotas the job is validated against.
    shuffle: shuffle each output file's lines (seeded by the job id).
    partial_on_record_errors: end a job with failed records PartiallyCompleted instead of Completed.
    partial_fraction: the share of records a PartiallyCompleted job, or one stopped InProgress, processed.
    end_state: force every job's end (Completed | PartiallyCompleted | Expired | Failed).
    fail_jobs: job name -> message; that job ends Failed.
    quota_errors_on_submit / throttle_on_submit: answer the next N CreateModelInvocationJob requests with
        ServiceQuotaExceededException / ThrottlingException. throttle_invocations: the same for InvokeModel.
    max_active_jobs: at most this many unfinished jobs per model; beyond, ServiceQuotaExceededException.
    account_id: the account in job ARNs. s3_client: region -> boto3 S3 client (default boto3.client("s3")).
    on_event: receives each "Batch Inference Job State Change" event; lose_events: drop the first N.
    tick_seconds: a job clock (None: jobs advance per Get only); start_after_seconds: see the module docstring.
    """

    def __init__(
        self,
        *,
        steps: int = 4,
        min_records: int = DEFAULT_MIN_RECORDS,
        max_records: int = DEFAULT_MAX_RECORDS,
        max_job_bytes: int = DEFAULT_MAX_JOB_BYTES,
        shuffle: bool = True,
        partial_on_record_errors: bool = False,
        partial_fraction: float = 0.5,
        end_state: str | None = None,
        fail_jobs: dict[str, str] | None = None,
        quota_errors_on_submit: int = 0,
        throttle_on_submit: int = 0,
        throttle_invocations: int = 0,
        max_active_jobs: int | None = None,
        account_id: str | None = None,
        s3_client: Callable[[str], BaseClient] | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        tick_seconds: float | None = None,
        start_after_seconds: float = 2.0,
        lose_events: int = 0,
    ) -> None:
        if end_state is not None and end_state not in FORCEABLE_END_STATES:
            raise ValueError(f"end_state must be one of {FORCEABLE_END_STATES}, got {end_state!r}")
        if steps < 0:
            raise ValueError("steps must not be negative")
        self.steps = steps
        self.min_records, self.max_records, self.max_job_bytes = min_records, max_records, max_job_bytes
        self.shuffle = shuffle
        self.partial_on_record_errors = partial_on_record_errors
        self.partial_fraction = partial_fraction
        self.end_state = end_state
        self.fail_jobs = dict(fail_jobs or {})
        self.quota_errors_on_submit = quota_errors_on_submit
        self.throttle_on_submit = throttle_on_submit
        self.throttle_invocations = throttle_invocations
        self.max_active_jobs = max_active_jobs
        self.account_id = account_id
        self.s3_client = s3_client
        self.jobs: dict[str, InvocationJob] = {}  # by job id, in creation order
        self.calls: Counter[str] = Counter()  # HTTP requests answered, by operation
        self._lock = threading.RLock()
        self._s3_clients: dict[str, Any] = {}
        self._hooks: contextlib.ExitStack | None = None  # moto_hooks.answering_requests while installed
        # EventBridge: each status change becomes a "Batch Inference Job State Change" event handed to `on_event`,
        # which must not block (local mode's LocalEventBus.publish delivers on its own thread, as EventBridge
        # delivers asynchronously); the first `lose_events` are dropped.
        self.on_event = on_event
        self.lose_events = lose_events
        self.events_emitted: list[dict[str, Any]] = []
        # A job clock: with tick_seconds, unfinished jobs also advance one status per tick once they were checked once,
        # not only per Get, so a run that waits for events (and never polls) still sees its jobs end.
        self.tick_seconds = tick_seconds
        self.start_after_seconds = start_after_seconds
        self._clock = JobClock(tick_seconds, self._tick) if tick_seconds else None

    # ------------------------------------------------------------ for tests

    def job(self, identifier: str) -> InvocationJob:
        """A job by id, ARN or name."""
        with self._lock:
            job_id = identifier.rsplit("/", 1)[-1]
            if job_id in self.jobs:
                return self.jobs[job_id]
            for job in self.jobs.values():
                if job.name == identifier:
                    return job
        raise KeyError(identifier)

    # ------------------------------------------------------------ the hook

    def install(self) -> BedrockBatchEmulator:
        if self._hooks is not None:
            return self
        self._hooks = contextlib.ExitStack()
        self._hooks.enter_context(answering_requests(self.handle))
        _ACTIVE.append(self)
        return self

    def uninstall(self) -> None:
        if self._hooks is None:
            return
        self._hooks.close()
        self._hooks = None
        if self._clock is not None:
            self._clock.stop()
        with self._lock:
            self.jobs.clear()
            self._s3_clients.clear()
        if self in _ACTIVE:
            _ACTIVE.remove(self)

    def __enter__(self) -> BedrockBatchEmulator:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

    # ------------------------------------------------------------ HTTP

    def handle(self, request: Any) -> HttpAnswer | None:
        """Answer one botocore request, or None when it is not ours (bedrock_routes.py)."""
        return answer_request(request, self)

    def count_call(self, operation: str) -> None:
        with self._lock:
            self.calls[operation] += 1

    # ------------------------------------------------------------ the API

    def create_job(self, region: str, params: dict[str, Any]) -> dict[str, Any]:
        check_request("bedrock", "CreateModelInvocationJob", params)
        with self._lock:
            if self.throttle_on_submit > 0:
                self.throttle_on_submit -= 1
                raise ApiError("ThrottlingException", 429, "Too many requests, please wait before trying again.")
            if self.quota_errors_on_submit > 0:
                self.quota_errors_on_submit -= 1
                raise ApiError(
                    "ServiceQuotaExceededException",
                    400,
                    "The number of batch inference jobs exceeds the service quota. Resubmit your request later.",
                )
            token = params.get("clientRequestToken")
            for job in self.jobs.values():
                if token and job.region == region and job.request.get("clientRequestToken") == token:
                    log.info("%s: CreateModelInvocationJob repeated token of %s, same job", ENGINE_LABEL, job.name)
                    return {"jobArn": job.arn}
            if any(job.region == region and job.name == params["jobName"] for job in self.jobs.values()):
                raise ApiError(
                    "ConflictException", 400, f"A batch inference job with the name {params['jobName']} already exists."
                )
            if self.max_active_jobs is not None:
                active = sum(
                    1
                    for job in self.jobs.values()
                    if job.region == region and job.model_id == params["modelId"] and not job.done
                )
                if active >= self.max_active_jobs:
                    raise ApiError(
                        "ServiceQuotaExceededException",
                        400,
                        f"You have reached the quota of {self.max_active_jobs} submitted and in-progress "
                        f"batch inference jobs for model {params['modelId']}.",
                    )
            job_id = uuid.uuid4().hex[:12]
            account = self.account_id or default_account_id()
            now = utc_now()
            job = InvocationJob(
                job_id=job_id,
                arn=f"arn:aws:bedrock:{region}:{account}:model-invocation-job/{job_id}",
                region=region,
                request=params,
                submit_time=now,
                last_modified_time=now,
                path=[],
            )
            read_input(
                self._s3(job.region),
                job,
                min_records=self.min_records,
                max_records=self.max_records,
                max_job_bytes=self.max_job_bytes,
            )
            # A job that fails validation ends after Validating; one that expires never leaves Scheduled.
            path = RUNNING[:2] if job.validation_error else RUNNING[:3] if self.end_state == "Expired" else RUNNING
            job.path = list(path[: self.steps])
            self.jobs[job_id] = job
            log.info(
                "%s: created batch inference job %s (%s), %s",
                ENGINE_LABEL,
                job.name,
                job_id,
                job.validation_error or f"{job.total_records} records",
            )
            if not job.path:
                self._finish(job)
            else:
                job.status = job.path[0]
            self._emit(job)
            if self._clock is not None:
                self._clock.start()
            return {"jobArn": job.arn}

    def get_job(self, region: str, identifier: str) -> dict[str, Any]:
        check_request("bedrock", "GetModelInvocationJob", {"jobIdentifier": identifier})
        with self._lock:
            job = self._find(region, identifier)
            self._advance(job)
            job.checked = True
            return job.describe()

    def stop_job(self, region: str, identifier: str) -> dict[str, Any]:
        check_request("bedrock", "StopModelInvocationJob", {"jobIdentifier": identifier})
        with self._lock:
            job = self._find(region, identifier)
            if job.done or job.status == "Stopping":
                raise validation_error(f"The batch inference job {job.job_id} is {job.status} and cannot be stopped.")
            job.stopped_while = job.status
            job.status = "Stopping"
            job.last_modified_time = utc_now()
            self._emit(job)
            log.info("%s: stopping batch inference job %s (was %s)", ENGINE_LABEL, job.name, job.stopped_while)
            return {}

    def list_jobs(self, region: str, query: dict[str, str]) -> dict[str, Any]:
        params: dict[str, Any] = dict(query)
        if "maxResults" in params:
            try:
                params["maxResults"] = int(params["maxResults"])
            except ValueError:
                raise validation_error("maxResults must be an integer") from None
        check_request(
            "bedrock",
            "ListModelInvocationJobs",
            {k: v for k, v in params.items() if k not in ("submitTimeAfter", "submitTimeBefore")},
        )
        after = parse_time(query.get("submitTimeAfter"))
        before = parse_time(query.get("submitTimeBefore"))
        with self._lock:
            jobs = [
                j
                for j in self.jobs.values()
                if j.region == region
                and (not query.get("statusEquals") or j.status == query["statusEquals"])
                and (not query.get("nameContains") or query["nameContains"] in j.name)
                and (after is None or j.submit_time > after)
                and (before is None or j.submit_time < before)
            ]
            jobs.sort(key=lambda j: j.submit_time, reverse=query.get("sortOrder", "Descending") == "Descending")
            start = int(query["nextToken"]) if query.get("nextToken", "").isdigit() else 0
            size = params.get("maxResults") or 1000
            page = jobs[start : start + size]
            answer_: dict[str, Any] = {"invocationJobSummaries": [j.describe() for j in page]}
            if start + size < len(jobs):
                answer_["nextToken"] = str(start + size)
            return answer_

    def invoke_model(
        self, region: str, model_id: str, content_type: str | None, body: bytes
    ) -> tuple[bytes, dict[str, str]]:
        check_request("bedrock-runtime", "InvokeModel", {"modelId": model_id})
        with self._lock:
            if self.throttle_invocations > 0:
                self.throttle_invocations -= 1
                raise ApiError("ThrottlingException", 429, "Too many requests, please wait before trying again.")
        if content_type and content_type.split(";")[0].strip() != "application/json":
            raise validation_error(f"{ENGINE_LABEL} accepts contentType application/json only, got {content_type}")
        try:
            request = json.loads(body or b"null")
        except ValueError:
            raise validation_error(
                "Malformed input request: the body is not JSON, please reformat your input and try again."
            ) from None
        try:
            response, input_tokens, output_tokens = answer(model_id, request)
        except RecordFailure as failure:
            raise validation_error(str(failure)) from None
        log.info("%s: InvokeModel %s in %s", ENGINE_LABEL, model_id, region)
        return json.dumps(response).encode(), {
            "Content-Type": "application/json",
            "X-Amzn-Bedrock-Input-Token-Count": str(input_tokens),
            "X-Amzn-Bedrock-Output-Token-Count": str(output_tokens),
        }

    def converse(self, region: str, model_id: str, body: bytes) -> tuple[bytes, dict[str, str]]:
        """Converse (POST /model/{modelId}/converse): the request body is a Converse request, the answer is in
        Converse's response shape (output.message, stopReason, usage, metrics)."""
        check_request("bedrock-runtime", "Converse", {"modelId": model_id})
        with self._lock:
            if self.throttle_invocations > 0:
                self.throttle_invocations -= 1
                raise ApiError("ThrottlingException", 429, "Too many requests, please wait before trying again.")
        request = json.loads(body or b"{}")
        if "toolConfig" in request:
            raise validation_error("toolConfig is not supported by " + ENGINE_LABEL)
        try:
            response, _, _ = answer(model_id, request, "Converse")
        except RecordFailure as failure:
            raise validation_error(str(failure)) from None
        log.info("%s: Converse %s in %s", ENGINE_LABEL, model_id, region)
        return json.dumps(response).encode(), {"Content-Type": "application/json"}

    # ------------------------------------------------------------ job life

    def _find(self, region: str, identifier: str) -> InvocationJob:
        job = self.jobs.get(identifier.rsplit("/", 1)[-1])
        if job is None or job.region != region:
            raise ApiError("ResourceNotFoundException", 404, f"The batch inference job {identifier} was not found.")
        return job

    def _advance(self, job: InvocationJob) -> None:
        before = job.status
        self._advance_once(job)
        if job.status != before:
            self._emit(job)

    def _emit(self, job: InvocationJob) -> None:
        """Hand the job's state-change event to `on_event` (unless a lost event is being rehearsed)."""
        if self.on_event is None:
            return
        event = job_state_event(job)
        self.events_emitted.append(event)
        if self.lose_events > 0:
            self.lose_events -= 1
            log.info("%s: lost the %s event of %s (rehearsing a lost event)", ENGINE_LABEL, job.status, job.name)
            return
        self.on_event(event)

    def _tick(self) -> None:
        with self._lock:
            # Only jobs someone has looked at since they were made, or made `start_after_seconds` ago (a job
            # submitted by a wait step is not checked again before the wait sleeps): on Bedrock a job takes
            # minutes at least, so the first status check after the submit finds it running, and a run that
            # checks, then waits for the event, is resumed by the event, whatever the machine's speed.
            started = utc_now() - timedelta(seconds=self.start_after_seconds)
            for job in [j for j in self.jobs.values() if j.checked or j.submit_time <= started]:
                self._advance(job)

    def _advance_once(self, job: InvocationJob) -> None:
        if job.done:
            return
        if job.status == "Stopping":
            self._finish(job)
            return
        job.step += 1
        job.last_modified_time = utc_now()
        if job.step >= len(job.path):
            self._finish(job)
        else:
            job.status = job.path[job.step]

    def _s3(self, region: str) -> BaseClient:
        if self.s3_client is not None:
            return self.s3_client(region)
        if region not in self._s3_clients:
            self._s3_clients[region] = boto3.client("s3", region_name=region)
        return self._s3_clients[region]

    def _finish(self, job: InvocationJob) -> None:
        """Decide the end state and write what Bedrock would have written by then."""
        now = utc_now()
        job.end_time = job.last_modified_time = now
        if job.status == "Stopping":
            job.end_status, job.message = "Stopped", "The batch inference job was stopped."
            if job.stopped_while == "InProgress" and not job.validation_error:
                write_output(self._s3(job.region), job, self._share(job), shuffle=self.shuffle)
        elif job.validation_error:
            job.end_status, job.message = "Failed", job.validation_error
        elif job.name in self.fail_jobs:
            job.end_status, job.message = "Failed", self.fail_jobs[job.name]
        elif self.end_state == "Failed":
            job.end_status, job.message = "Failed", f"{ENGINE_LABEL} failed the job (end_state='Failed')."
        elif self.end_state == "Expired":
            hours = job.request.get("timeoutDurationInHours", 24)
            job.end_status = "Expired"
            job.message = f"The batch inference job did not start within its timeout of {hours} hours."
        else:
            marked = next(
                ((f, r) for f in job.files for r, line in zip(f.records, f.raw_text, strict=True) if FAIL_JOB in line),
                None,
            )
            if marked:
                job.end_status = "Failed"
                job.message = (
                    f"{ENGINE_LABEL} failed the job on purpose: record {marked[1]['recordId']!r} in "
                    f"{marked[0].relative} carries {FAIL_JOB}"
                )
            elif self.end_state == "PartiallyCompleted":
                write_output(self._s3(job.region), job, self._share(job), shuffle=self.shuffle)
                job.end_status = "PartiallyCompleted"
                job.message = "Not all of the records could be processed in time."
            else:
                counts = write_output(self._s3(job.region), job, job.total_records, shuffle=self.shuffle)
                errors = counts["errorRecordCount"]
                if errors and self.partial_on_record_errors:
                    job.end_status = "PartiallyCompleted"
                    job.message = f"{errors} of {counts['totalRecordCount']} records failed."
                else:
                    job.end_status = "Completed"
        job.status = job.end_status
        log.info(
            "%s: batch inference job %s %s%s",
            ENGINE_LABEL,
            job.name,
            job.status,
            f": {job.message}" if job.message else "",
        )

    def _share(self, job: InvocationJob) -> int:
        total = job.total_records
        return min(total - 1, max(1, math.floor(total * self.partial_fraction))) if total > 1 else 0


_ACTIVE: list[BedrockBatchEmulator] = []


def active_bedrock_emulator() -> BedrockBatchEmulator:
    """The emulator installed last (e.g. by local mode's `install_engines`), to inspect its jobs from a test."""
    if not _ACTIVE:
        raise LookupError("no Bedrock emulator is installed")
    return _ACTIVE[-1]


def active_job_tags(arn: str) -> dict[str, str]:
    """The tags a job of the active emulator was created with, as Bedrock keeps them, by the job's ARN (none for
    another resource, a job the emulator never made, or no emulator: Bedrock answers those calls itself)."""
    if ":model-invocation-job/" not in arn:
        return {}
    try:
        job = active_bedrock_emulator().job(arn.rsplit("/", 1)[-1])  # the ARN ends in the job id, or in its name
    except (LookupError, KeyError):
        return {}
    return {tag["key"]: tag["value"] for tag in job.request.get("tags") or []}


def model_requests_received(emulator: BedrockBatchEmulator) -> int:
    """What this emulator was sent that Bedrock bills: every InvokeModel request it answered (throttled ones
    included, as botocore sent them), every Converse request, plus every record of every batch job it accepted."""
    with emulator._lock:
        return (
            emulator.calls["InvokeModel"]
            + emulator.calls["Converse"]
            + sum(job.total_records for job in emulator.jobs.values())
        )


def install_bedrock_engine(**options: Any) -> BedrockBatchEmulator:
    """Answer Bedrock batch inference and InvokeModel under `mock_aws`; use as `with install_bedrock_engine(...) as
    emulator:` (or call .uninstall()). Options: see BedrockBatchEmulator."""
    return BedrockBatchEmulator(**options).install()
