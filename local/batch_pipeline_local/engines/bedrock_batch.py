"""A local emulator of Amazon Bedrock batch inference and InvokeModel: it exercises the pipeline, not a model.

moto 5 has no model-invocation-job APIs (its `bedrock` backend answers every unknown path with its own
catch-all) and its bedrock-runtime InvokeModel returns `{}`. This module answers, over moto's S3:

  - bedrock   CreateModelInvocationJob, GetModelInvocationJob, ListModelInvocationJobs, StopModelInvocationJob
  - bedrock-runtime   InvokeModel (POST /model/{modelId}/invoke) and Converse (POST /model/{modelId}/converse)

How it hooks in (moto_hooks.answering_requests): it wraps `process_request` of moto's one `BotocoreStubber` (the
`before-send` handler that `mock_aws` registers for every botocore client) and answers the six routes above before
moto's URL table is consulted; everything else falls through to moto unchanged. So botocore still validates
parameters and serializes a real rest-json HTTP request, and still parses our HTTP status, headers and JSON body
with the service model: errors arrive as `client.exceptions.ServiceQuotaExceededException` and the like. A botocore
`before-call` handler was the alternative, but a response returned there is handed back already parsed, so
response parsing (and the serialized request) would leave the loop.
Nothing is intercepted outside an active `mock_aws`, since the stubber is then disabled.

Behaviour, from the Bedrock user guide and API reference:
  - Input `inputDataConfig.s3InputDataConfig.s3Uri` is one `.jsonl` object or a folder holding `.jsonl`
    objects; each line `{"recordId", "modelInput"}`. A missing recordId is added in the output (11 characters).
  - Output `<output s3Uri>/<job id>/<input file relative to the input folder>.out`, job id = last segment of the
    ARN (12 lowercase alphanumerics). Lines `{"recordId", "modelInput", "modelOutput"}` or, for a failed record,
    `{"recordId", "modelInput", "error": {"errorCode", "errorMessage"}}`, in shuffled order (seeded by the job
    id): output order is not guaranteed. Plus `manifest.json.out`, one JSON object with totalRecordCount,
    processedRecordCount, successRecordCount, errorRecordCount, inputTokenCount, outputTokenCount.
  - Statuses move one step per GetModelInvocationJob: Submitted -> Validating -> Scheduled -> InProgress -> end
    (`steps`, default 4, is how many Gets a job takes to end; 0 ends it inside Create; with `tick_seconds`, also one
    step per tick once the job was got once or `start_after_seconds` after its submit). Validation failures
    (fewer than `min_records` or more than `max_records` records, a line that is not a JSON object or has no
    object `modelInput`, no `.jsonl` input, a missing bucket) end the job Failed after Validating, with `message`.
    Failed records do not change the status: the job is Completed with errorRecordCount > 0 (PartiallyCompleted
    means "not all records could be processed in time"); `partial_on_record_errors=True` reports them
    PartiallyCompleted instead. Expired means it timed out before it began, so it writes no records.
    Stop: Stopping, then Stopped on the next Get; a job stopped InProgress keeps output for the records done.
  - A repeated clientRequestToken returns the job it made ("Amazon Bedrock ignores the request, but does not
    return an error"); a repeated jobName with another token is a ConflictException. Request constraints that
    botocore does not check (patterns, maximum lengths and values, enums) are checked against botocore's own
    service model and answered as ValidationException, worded like AWS's.

The "model", chosen by the modelId family (anthropic., amazon.nova, amazon.titan-text; else by the body):
the answer is the first sentence of the last user text, a leading instruction such as "Summarize this call
transcript: " removed, cut to max tokens words; tokens are words. Outputs are in each family's native shape
(Anthropic Messages, Nova / Converse `output.message`, Titan `results`). A body that does not fit the family
is a 400 record error (a ValidationException from InvokeModel). It says what it is: every log line, a marker
object `<job output>/_LOCAL_STAND_IN`, and the Anthropic `model` field say "local stand-in engine (not a model)".

Failure injection, by markers in a record's text: `[[error-record]]` (that record gets an error object,
errorCode 400; InvokeModel answers ValidationException) and `[[fail-job]]` (the job ends Failed with a message
naming the record). By options: `quota_errors_on_submit=N` / `throttle_on_submit=N` (the next N Create calls
answer ServiceQuotaExceededException 400 / ThrottlingException 429), `throttle_invocations=N` (InvokeModel),
`max_active_jobs=N` (a per-model cap on unfinished jobs, answered ServiceQuotaExceededException),
`end_state="PartiallyCompleted"|"Expired"|"Failed"|"Completed"`, `fail_jobs={job name: message}`.
The counters count HTTP requests, so botocore's own retries (ThrottlingException is retryable) use them up.

Use: `with install_bedrock_engine(steps=0) as emulator:` inside `mock_aws`; local mode installs one from
`runner.install_engines` (options via `local_aws(bedrock_options={...})`), reachable as
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
import random
import re
import string
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from batch_pipeline.storage.jsonl import split_lines

ENGINE_LABEL = "local stand-in engine (not a model)"
MARKER_OBJECT = "_LOCAL_STAND_IN"
ERROR_RECORD = "[[error-record]]"
FAIL_JOB = "[[fail-job]]"
MANIFEST_OUT = "manifest.json.out"
DEFAULT_MIN_RECORDS = 100
DEFAULT_MAX_RECORDS = 50_000
DEFAULT_MAX_JOB_BYTES = 1024 * 1024 * 1024
DEFAULT_MAX_TOKENS = 512

RUNNING = ("Submitted", "Validating", "Scheduled", "InProgress")
TERMINAL = ("Completed", "PartiallyCompleted", "Failed", "Stopped", "Expired")
FORCEABLE_END_STATES = ("Completed", "PartiallyCompleted", "Expired", "Failed")

log = logging.getLogger(__name__)

_BEDROCK_URL = re.compile(r"^https?://bedrock\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?(?P<path>/[^?]*)")
_RUNTIME_URL = re.compile(r"^https?://bedrock-runtime\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?(?P<path>/[^?]*)")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# A short leading instruction such as "Summarize this call transcript: " is not part of the text: a phrase of
# two words or more, or one starting with an instruction verb, so that a speaker label such as "Agent: " stays.
_INSTRUCTION = re.compile(
    r"^(?:(?:summari[sz]e|classify|translate)\b[^.!?:\n]{0,80}|(?=[^:\n]*\s[^:\n]*:)[^.!?:\n]{1,80}):\s+", re.IGNORECASE
)
_TITAN_TURN = re.compile(r"^\s*User:\s*|\s*Bot:\s*$")


class ApiError(Exception):
    """An error answer: the exception shape's name, its HTTP status and message."""

    def __init__(self, code: str, status: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.status, self.message = code, status, message


def _validation(message: str) -> ApiError:
    return ApiError("ValidationException", 400, message)


class RecordFailure(Exception):
    """One record's inference failed (a 400 error line in batch, a ValidationException from InvokeModel)."""


# ---------------------------------------------------------------- the stand-in "model"


def summarize(text: str, max_words: int) -> tuple[str, bool]:
    """First sentence of `text` without a leading instruction, at most `max_words` words; (summary, was it cut)."""
    body = _INSTRUCTION.sub("", text.strip(), count=1)
    first = _SENTENCE_END.split(body, maxsplit=1)[0].strip()
    words = first.split()
    limit = max(1, int(max_words))
    return " ".join(words[:limit]), len(words) > limit


def _words(text: str) -> int:
    return len(text.split())


def _block_texts(content: Any, where: str, typed: bool) -> list[str]:
    """Texts of a message's content: a string (Anthropic only) or a list of content blocks."""
    if isinstance(content, str) and typed:
        return [content]
    if not isinstance(content, list) or not content:
        raise RecordFailure(f"Malformed input request: {where}.content must be a non-empty array")
    texts = []
    for block in content:
        if not isinstance(block, dict):
            raise RecordFailure(f"Malformed input request: {where}.content blocks must be objects")
        # Typed blocks count only when they are text blocks; untyped ones whenever they carry text.
        if isinstance(block.get("text"), str) and (not typed or block.get("type") == "text"):
            texts.append(block["text"])
    return texts


def _messages(body: dict, typed: bool) -> tuple[str, int]:
    """(text of the last user message, words in every message and the system prompt)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RecordFailure("Malformed input request: #: required key [messages] not found or empty")
    last_user, total = None, 0
    for number, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise RecordFailure(f"Malformed input request: messages.{number}.role must be user or assistant")
        texts = _block_texts(message.get("content"), f"messages.{number}", typed)
        total += sum(_words(t) for t in texts)
        if message["role"] == "user":
            last_user = " ".join(texts)
    if last_user is None:
        raise RecordFailure("Malformed input request: no user message")
    system = body.get("system")
    if isinstance(system, str):
        total += _words(system)
    elif isinstance(system, list):
        total += sum(_words(b.get("text", "")) for b in system if isinstance(b, dict))
    return last_user, total


def _max_tokens(value: Any, name: str, default: int | None) -> int:
    if value is None:
        if default is None:
            raise RecordFailure(f"Malformed input request: #: required key [{name}] not found")
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RecordFailure(f"Malformed input request: {name} must be a non-negative integer")
    return value


def family_of(model_id: str, body: Any, invocation_type: str = "InvokeModel") -> str:
    """anthropic | nova | titan-text | converse: by the model id where it tells, else by the body's shape."""
    if invocation_type == "Converse":
        return "converse"
    lowered = model_id.lower()
    if "anthropic." in lowered:
        return "anthropic"
    if "amazon.nova" in lowered or ".nova-" in lowered:
        return "nova"
    if "amazon.titan-text" in lowered:
        return "titan-text"
    if isinstance(body, dict):
        if "anthropic_version" in body:
            return "anthropic"
        if "inputText" in body:
            return "titan-text"
        if "messages" in body:
            return "nova"
    raise RecordFailure(f"Malformed input request: {ENGINE_LABEL} does not know the request format for {model_id!r}")


def answer(model_id: str, body: Any, invocation_type: str = "InvokeModel") -> tuple[dict, int, int]:
    """The native response body for one request, and its (input, output) token counts."""
    if not isinstance(body, dict):
        raise RecordFailure("Malformed input request: the request body must be a JSON object")
    if ERROR_RECORD in json.dumps(body, ensure_ascii=False):
        raise RecordFailure(f"Malformed input request: {ENGINE_LABEL} rejects requests carrying {ERROR_RECORD}")
    family = family_of(model_id, body, invocation_type)
    if family == "converse" and "toolConfig" in body:
        # Bedrock: records of a Converse-type job that include toolConfig fail with a 400 error.
        raise RecordFailure("Malformed input request: toolConfig is not supported for Converse batch inference")
    if family == "anthropic":
        if not isinstance(body.get("anthropic_version"), str):
            raise RecordFailure("Malformed input request: #: required key [anthropic_version] not found")
        limit = _max_tokens(body.get("max_tokens"), "max_tokens", None)
        text, input_tokens = _messages(body, typed=True)
        summary, cut = summarize(text, limit)
        output_tokens = _words(summary)
        return (
            {
                "id": f"msg_local_{uuid.uuid4().hex[:20]}",
                "type": "message",
                "role": "assistant",
                "model": f"{ENGINE_LABEL}: {model_id}",
                "content": [{"type": "text", "text": summary}],
                "stop_reason": "max_tokens" if cut else "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
            },
            input_tokens,
            output_tokens,
        )
    if family in ("nova", "converse"):
        config = body.get("inferenceConfig") if isinstance(body.get("inferenceConfig"), dict) else {}
        limit = _max_tokens(config.get("maxTokens", config.get("max_new_tokens")), "maxTokens", DEFAULT_MAX_TOKENS)
        text, input_tokens = _messages(body, typed=False)
        summary, cut = summarize(text, limit)
        output_tokens = _words(summary)
        response = {
            "output": {"message": {"role": "assistant", "content": [{"text": summary}]}},
            "stopReason": "max_tokens" if cut else "end_turn",
            "usage": {
                "inputTokens": input_tokens,
                "outputTokens": output_tokens,
                "totalTokens": input_tokens + output_tokens,
            },
        }
        if family == "converse":
            response["metrics"] = {"latencyMs": 0}
        return response, input_tokens, output_tokens
    text = body.get("inputText")
    if not isinstance(text, str):
        raise RecordFailure("Malformed input request: #: required key [inputText] not found")
    config = body.get("textGenerationConfig") if isinstance(body.get("textGenerationConfig"), dict) else {}
    limit = _max_tokens(config.get("maxTokenCount"), "maxTokenCount", DEFAULT_MAX_TOKENS)
    summary, cut = summarize(_TITAN_TURN.sub("", text), limit)
    input_tokens, output_tokens = _words(text), _words(summary)
    return (
        {
            "inputTextTokenCount": input_tokens,
            "results": [
                {
                    "tokenCount": output_tokens,
                    "outputText": summary,
                    "completionReason": "LENGTH" if cut else "FINISHED",
                }
            ],
        },
        input_tokens,
        output_tokens,
    )


# ---------------------------------------------------------------- request constraints from botocore's model


_SHAPES: dict[str, Any] = {}


def _input_shape(service: str, operation: str) -> Any:
    key = f"{service}:{operation}"
    if key not in _SHAPES:
        import botocore.session

        _SHAPES[key] = botocore.session.get_session().get_service_model(service).operation_model(operation).input_shape
    return _SHAPES[key]


def check_constraints(shape: Any, value: Any, path: str = "") -> list[str]:
    """What botocore leaves to the service: maximum lengths and values, patterns and enums."""
    problems: list[str] = []
    meta = shape.metadata
    where = path or shape.name
    if shape.type_name == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                problems += check_constraints(member, value[name], f"{path}.{name}" if path else name)
    elif shape.type_name == "list" and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            problems.append(
                f"Value at '{where}' failed to satisfy constraint: Member must have length less than "
                f"or equal to {meta['max']}"
            )
        for index, item in enumerate(value):
            problems += check_constraints(shape.member, item, f"{where}.{index + 1}")
    elif shape.type_name == "string" and isinstance(value, str):
        if "max" in meta and len(value) > meta["max"]:
            problems.append(
                f"Value at '{where}' failed to satisfy constraint: Member must have length less than "
                f"or equal to {meta['max']}"
            )
        if "pattern" in meta and not re.fullmatch(meta["pattern"], value):
            problems.append(
                f"Value '{value}' at '{where}' failed to satisfy constraint: Member must satisfy "
                f"regular expression pattern: {meta['pattern']}"
            )
        if shape.enum and value not in shape.enum:
            problems.append(
                f"Value '{value}' at '{where}' failed to satisfy constraint: Member must satisfy enum "
                f"value set: [{', '.join(shape.enum)}]"
            )
    elif shape.type_name in ("integer", "long") and isinstance(value, int) and "max" in meta and value > meta["max"]:
        problems.append(
            f"Value '{value}' at '{where}' failed to satisfy constraint: Member must have value "
            f"less than or equal to {meta['max']}"
        )
    return problems


def _check_request(service: str, operation: str, params: dict) -> None:
    problems = check_constraints(_input_shape(service, operation), params)
    if problems:
        count = len(problems)
        raise _validation(f"{count} validation error{'s' if count > 1 else ''} detected: " + "; ".join(problems))


# ---------------------------------------------------------------- jobs


def _now() -> datetime:
    return datetime.now(UTC)


def _timestamp(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


@dataclass
class InputFile:
    key: str  # the S3 key
    relative: str  # the output name: the key below the input folder (the file name for a one-file input)
    records: list[dict]  # {"recordId", "modelInput"} in input order, recordId filled in
    raw_text: list[str]  # each record's line, for the markers


@dataclass
class InvocationJob:
    """One model invocation job as the emulator keeps it; `request` is the create request as botocore sent it."""

    job_id: str
    arn: str
    region: str
    request: dict
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
        return self.request["jobName"]

    @property
    def model_id(self) -> str:
        return self.request["modelId"]

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    @property
    def total_records(self) -> int:
        return sum(len(f.records) for f in self.files)

    def describe(self) -> dict:
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
            "submitTime": _timestamp(self.submit_time),
            "lastModifiedTime": _timestamp(self.last_modified_time),
            "endTime": _timestamp(self.end_time),
            "inputDataConfig": request["inputDataConfig"],
            "outputDataConfig": request["outputDataConfig"],
            "vpcConfig": request.get("vpcConfig"),
            "timeoutDurationInHours": request.get("timeoutDurationInHours"),
            "modelInvocationType": request.get("modelInvocationType"),
        }
        if request.get("timeoutDurationInHours"):
            expires = self.submit_time + timedelta(hours=request["timeoutDurationInHours"])
            answer_["jobExpirationTime"] = _timestamp(expires)
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
        s3_client: Callable[[str], Any] | None = None,
        on_event: Callable[[dict], None] | None = None,
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
        self.events_emitted: list[dict] = []
        # A job clock: with tick_seconds, unfinished jobs also advance one status per tick once they were checked once,
        # not only per Get, so a run that waits for events (and never polls) still sees its jobs end.
        self.tick_seconds = tick_seconds
        self.start_after_seconds = start_after_seconds
        self._ticker: threading.Thread | None = None
        self._stop_ticking = threading.Event()

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
        from batch_pipeline_local.moto_hooks import answering_requests

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
        self._stop_ticking.set()
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

    def handle(self, request: Any) -> tuple[int, dict, bytes] | None:
        """Answer one botocore request, or None when it is not ours."""
        url = request.url
        method = request.method.upper()
        runtime = _RUNTIME_URL.match(url)
        if runtime:
            parts = runtime["path"].strip("/").split("/")
            if method == "POST" and len(parts) == 3 and parts[0] == "model" and parts[2] == "invoke":
                return self._respond(
                    "InvokeModel",
                    lambda: self.invoke_model(
                        runtime["region"], unquote(parts[1]), _header(request, "Content-Type"), _body(request)
                    ),
                )
            if method == "POST" and len(parts) == 3 and parts[0] == "model" and parts[2] == "converse":
                return self._respond(
                    "Converse", lambda: self.converse(runtime["region"], unquote(parts[1]), _body(request))
                )
            return None
        control = _BEDROCK_URL.match(url)
        if not control:
            return None
        region, parts = control["region"], control["path"].strip("/").split("/")
        if parts == ["model-invocation-job"] and method == "POST":
            return self._respond(
                "CreateModelInvocationJob", lambda: self.create_job(region, json.loads(_body(request) or b"{}"))
            )
        if len(parts) == 2 and parts[0] == "model-invocation-job" and method == "GET":
            return self._respond("GetModelInvocationJob", lambda: self.get_job(region, unquote(parts[1])))
        if len(parts) == 3 and parts[0] == "model-invocation-job" and parts[2] == "stop" and method == "POST":
            return self._respond("StopModelInvocationJob", lambda: self.stop_job(region, unquote(parts[1])))
        if parts == ["model-invocation-jobs"] and method == "GET":
            query = {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}
            return self._respond("ListModelInvocationJobs", lambda: self.list_jobs(region, query))
        return None

    def _respond(self, operation: str, call: Callable[[], Any]) -> tuple[int, dict, bytes]:
        headers = {"x-amzn-RequestId": str(uuid.uuid4())}
        with self._lock:
            self.calls[operation] += 1
        try:
            result = call()
        except ApiError as error:
            log.info("%s: %s answered %s: %s", ENGINE_LABEL, operation, error.code, error.message)
            headers.update({"Content-Type": "application/json", "x-amzn-ErrorType": error.code})
            return error.status, headers, json.dumps({"message": error.message}).encode()
        if isinstance(result, tuple):  # InvokeModel: (body bytes, extra headers)
            body, extra = result
            headers.update(extra)
            return 200, headers, body
        headers["Content-Type"] = "application/json"
        return 200, headers, json.dumps(result).encode()

    # ------------------------------------------------------------ the API

    def create_job(self, region: str, params: dict) -> dict:
        _check_request("bedrock", "CreateModelInvocationJob", params)
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
            account = self.account_id or _default_account()
            now = _now()
            job = InvocationJob(
                job_id=job_id,
                arn=f"arn:aws:bedrock:{region}:{account}:model-invocation-job/{job_id}",
                region=region,
                request=params,
                submit_time=now,
                last_modified_time=now,
                path=[],
            )
            self._validate_input(job)
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
            if self.tick_seconds and self._ticker is None:
                self._ticker = threading.Thread(target=self._tick, name="bedrock-job-clock", daemon=True)
                self._ticker.start()
            return {"jobArn": job.arn}

    def get_job(self, region: str, identifier: str) -> dict:
        _check_request("bedrock", "GetModelInvocationJob", {"jobIdentifier": identifier})
        with self._lock:
            job = self._find(region, identifier)
            self._advance(job)
            job.checked = True
            return job.describe()

    def stop_job(self, region: str, identifier: str) -> dict:
        _check_request("bedrock", "StopModelInvocationJob", {"jobIdentifier": identifier})
        with self._lock:
            job = self._find(region, identifier)
            if job.done or job.status == "Stopping":
                raise _validation(f"The batch inference job {job.job_id} is {job.status} and cannot be stopped.")
            job.stopped_while = job.status
            job.status = "Stopping"
            job.last_modified_time = _now()
            self._emit(job)
            log.info("%s: stopping batch inference job %s (was %s)", ENGINE_LABEL, job.name, job.stopped_while)
            return {}

    def list_jobs(self, region: str, query: dict[str, str]) -> dict:
        params: dict[str, Any] = dict(query)
        if "maxResults" in params:
            try:
                params["maxResults"] = int(params["maxResults"])
            except ValueError:
                raise _validation("maxResults must be an integer") from None
        _check_request(
            "bedrock",
            "ListModelInvocationJobs",
            {k: v for k, v in params.items() if k not in ("submitTimeAfter", "submitTimeBefore")},
        )
        after = _parse_time(query.get("submitTimeAfter"))
        before = _parse_time(query.get("submitTimeBefore"))
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

    def invoke_model(self, region: str, model_id: str, content_type: str | None, body: bytes) -> tuple[bytes, dict]:
        _check_request("bedrock-runtime", "InvokeModel", {"modelId": model_id})
        with self._lock:
            if self.throttle_invocations > 0:
                self.throttle_invocations -= 1
                raise ApiError("ThrottlingException", 429, "Too many requests, please wait before trying again.")
        if content_type and content_type.split(";")[0].strip() != "application/json":
            raise _validation(f"{ENGINE_LABEL} accepts contentType application/json only, got {content_type}")
        try:
            request = json.loads(body or b"null")
        except ValueError:
            raise _validation(
                "Malformed input request: the body is not JSON, please reformat your input and try again."
            ) from None
        try:
            response, input_tokens, output_tokens = answer(model_id, request)
        except RecordFailure as failure:
            raise _validation(str(failure)) from None
        log.info("%s: InvokeModel %s in %s", ENGINE_LABEL, model_id, region)
        return json.dumps(response).encode(), {
            "Content-Type": "application/json",
            "X-Amzn-Bedrock-Input-Token-Count": str(input_tokens),
            "X-Amzn-Bedrock-Output-Token-Count": str(output_tokens),
        }

    def converse(self, region: str, model_id: str, body: bytes) -> tuple[bytes, dict]:
        """Converse (POST /model/{modelId}/converse): the request body is a Converse request, the answer is in
        Converse's response shape (output.message, stopReason, usage, metrics)."""
        _check_request("bedrock-runtime", "Converse", {"modelId": model_id})
        with self._lock:
            if self.throttle_invocations > 0:
                self.throttle_invocations -= 1
                raise ApiError("ThrottlingException", 429, "Too many requests, please wait before trying again.")
        request = json.loads(body or b"{}")
        if "toolConfig" in request:
            raise _validation("toolConfig is not supported by " + ENGINE_LABEL)
        try:
            response, _, _ = answer(model_id, request, "Converse")
        except RecordFailure as failure:
            raise _validation(str(failure)) from None
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
        """The job's state-change event in EventBridge's envelope, as Bedrock publishes it
        (https://docs.aws.amazon.com/bedrock/latest/userguide/monitoring-eventbridge-how-it-works.html)."""
        if self.on_event is None:
            return
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
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Batch Inference Job State Change",
            "source": "aws.bedrock",
            "account": account,
            "time": _timestamp(_now()),
            "region": job.region,
            "resources": [job.arn],
            "detail": detail,
        }
        self.events_emitted.append(event)
        if self.lose_events > 0:
            self.lose_events -= 1
            log.info("%s: lost the %s event of %s (rehearsing a lost event)", ENGINE_LABEL, job.status, job.name)
            return
        self.on_event(event)

    def _tick(self) -> None:
        while not self._stop_ticking.wait(self.tick_seconds or 0):
            with self._lock:
                # Only jobs someone has looked at since they were made, or made `start_after_seconds` ago (a job
                # submitted by a wait step is not checked again before the wait sleeps): on Bedrock a job takes
                # minutes at least, so the first status check after the submit finds it running, and a run that
                # checks, then waits for the event, is resumed by the event, whatever the machine's speed.
                started = _now() - timedelta(seconds=self.start_after_seconds)
                for job in [j for j in self.jobs.values() if j.checked or j.submit_time <= started]:
                    self._advance(job)

    def _advance_once(self, job: InvocationJob) -> None:
        if job.done:
            return
        if job.status == "Stopping":
            self._finish(job)
            return
        job.step += 1
        job.last_modified_time = _now()
        if job.step >= len(job.path):
            self._finish(job)
        else:
            job.status = job.path[job.step]

    def _s3(self, region: str) -> Any:
        if self.s3_client is not None:
            return self.s3_client(region)
        if region not in self._s3_clients:
            import boto3

            self._s3_clients[region] = boto3.client("s3", region_name=region)
        return self._s3_clients[region]

    def _validate_input(self, job: InvocationJob) -> None:
        """What Bedrock checks while Validating; a problem fails the job with a message, not the request."""
        s3 = self._s3(job.region)
        uri = job.request["inputDataConfig"]["s3InputDataConfig"]["s3Uri"]
        bucket, key = _split(uri)
        out_bucket, _ = _split(job.request["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"])
        try:
            for name in {bucket, out_bucket}:
                s3.head_bucket(Bucket=name)
            objects = _input_objects(s3, bucket, key)
        except Exception as error:  # botocore ClientError: the bucket or object is not there
            job.validation_error = f"Unable to access the S3 location {uri}: {error}"
            return
        if not objects:
            job.validation_error = f"No .jsonl files were found at the input location {uri}."
            return
        if sum(size for _, _, size in objects) > self.max_job_bytes:
            job.validation_error = (
                f"The input at {uri} exceeds the maximum batch inference job size of {self.max_job_bytes} bytes."
            )
            return
        ids = _record_ids(job.job_id)
        for object_key, relative, _ in objects:
            data = s3.get_object(Bucket=bucket, Key=object_key)["Body"].read()
            records, raw = [], []
            for number, line in enumerate((b.decode("utf-8", errors="replace") for b in split_lines(data)), start=1):
                if not line.strip():
                    continue
                record, problem = _input_record(line)
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
        if total < self.min_records:
            job.validation_error = (
                f"The job has {total} records, fewer than the minimum of {self.min_records} "
                f"records per batch inference job."
            )
        elif total > self.max_records:
            job.validation_error = (
                f"The job has {total} records, more than the maximum of {self.max_records} "
                f"records per batch inference job."
            )

    def _finish(self, job: InvocationJob) -> None:
        """Decide the end state and write what Bedrock would have written by then."""
        now = _now()
        job.end_time = job.last_modified_time = now
        if job.status == "Stopping":
            job.end_status, job.message = "Stopped", "The batch inference job was stopped."
            if job.stopped_while == "InProgress" and not job.validation_error:
                self._write(job, self._share(job))
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
                self._write(job, self._share(job))
                job.end_status = "PartiallyCompleted"
                job.message = "Not all of the records could be processed in time."
            else:
                counts = self._write(job, job.total_records)
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

    def _write(self, job: InvocationJob, processed: int) -> dict[str, int]:
        """Output for the first `processed` records (input order), the manifest and the marker; returns the counts."""
        s3 = self._s3(job.region)
        bucket, prefix = _split(job.request["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"])
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
            if self.shuffle:
                rng.shuffle(lines)
            key = f"{folder}{input_file.relative}.out"
            s3.put_object(Bucket=bucket, Key=key, Body="".join(f"{line}\n" for line in lines).encode())
            job.outputs.append(key)
        s3.put_object(Bucket=bucket, Key=folder + MANIFEST_OUT, Body=json.dumps(counts).encode())
        s3.put_object(
            Bucket=bucket,
            Key=folder + MARKER_OBJECT,
            Body=f"{ENGINE_LABEL}: outputs of {job.name} were written by the local engine, not by a model.\n".encode(),
        )
        job.outputs += [folder + MANIFEST_OUT, folder + MARKER_OBJECT]
        job.counts = counts
        return counts


def _input_objects(s3: Any, bucket: str, key: str) -> list[tuple[str, str, int]]:
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


def _record_ids(seed: str) -> Iterable[str]:
    """The 11-character alphanumeric recordIds Bedrock adds to records that have none."""
    rng = random.Random(seed)
    while True:
        yield "".join(rng.choices(string.ascii_uppercase + string.digits, k=11))


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            moment = datetime.fromtimestamp(float(value), UTC)
        except ValueError:
            raise _validation(f"Invalid timestamp {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _input_record(line: str) -> tuple[Any, str | None]:
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


def _header(request: Any, name: str) -> str | None:
    value = request.headers.get(name)
    return value.decode() if isinstance(value, bytes) else value


def _body(request: Any) -> bytes:
    body = request.body
    if body is None:
        return b""
    if hasattr(body, "read"):
        data = body.read()
        if hasattr(body, "seek"):
            body.seek(0)
        body = data
    return body.encode() if isinstance(body, str) else bytes(body)


def _default_account() -> str:
    from batch_pipeline_local.moto_hooks import default_account_id

    return default_account_id()


_ACTIVE: list[BedrockBatchEmulator] = []


def active_bedrock_emulator() -> BedrockBatchEmulator:
    """The emulator installed last (e.g. by local mode's `install_engines`), to inspect its jobs from a test."""
    if not _ACTIVE:
        raise LookupError("no Bedrock emulator is installed")
    return _ACTIVE[-1]


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
