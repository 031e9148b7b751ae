"""A local stand-in for a JumpStart transform container and its job: it exercises the pipeline, not a model.

moto accepts CreateTransformJob, reports it Completed at once, writes nothing, emits no event and has no
StopTransformJob. This engine (hooked in through emulator/moto_hooks.transform_job_hooks) reads the job's input
objects from (moto) S3 line by line and writes `<object name>.out` under the job's output path the way SageMaker Batch
Transform with SplitType=Line / AssembleWith=Line does, each line answered by the stand-in models of
sagemaker_model.py. text2text lines are shuffled within the object (seeded by the job name) so the pipeline has to
join by id; zero-shot lines, which carry no id, stay in input order.

Job life, as SageMaker's: InProgress, then Completed or Failed; StopTransformJob moves an InProgress job to Stopping,
then Stopped. Every status change is a "SageMaker Transform Job State Change" event (`on_event`). Local mode runs
jobs asynchronously, so a run's wait is resumed by the job's event; direct users get moto's timing (the job ends
inside CreateTransformJob) unless they ask for `asynchronous=True`.

It says what it is: every run logs "local stand-in engine (not a model)", writes a marker object
`<output path>/_LOCAL_STAND_IN`, and tags the moto job `batch-pipeline:engine`.

Failure injection, by a marker inside a record's text (so end-to-end tests need no extra wiring):
  - `[[fail-job]]`: the job ends Failed with a FailureReason naming the record. Objects processed before
    the one holding the marker keep their `.out` and that object gets none: SageMaker uploads an object's
    `.out` only when the whole object succeeded (TransformOutput.S3OutputPath in the API reference).
  - `[[drop-output]]`: that record's output line is left out (the job still Completes).
  - `[[bad-output]]`: that record's output line is written unreadable.
or by hook arguments: `fail_jobs={job name: reason}` fails a job before it writes anything.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.client import BaseClient

from batch_pipeline.storage.jsonl import body_lines
from batch_pipeline_local.emulator.moto_hooks import StopRefused, TransformJobRecord, transform_job_hooks
from batch_pipeline_local.engines.sagemaker_model import EngineFailure, answer, hyper_params_of
from batch_pipeline_local.engines.stand_in import ENGINE_LABEL, MARKER_OBJECT, marker_body

STAND_IN_TAG = {"Key": "batch-pipeline:engine", "Value": ENGINE_LABEL}
FAIL_JOB = "[[fail-job]]"
DROP_OUTPUT = "[[drop-output]]"
BAD_OUTPUT = "[[bad-output]]"

log = logging.getLogger(__name__)


@dataclass
class TransformResult:
    job_name: str
    status: str
    failure_reason: str | None = None
    outputs: list[str] = field(default_factory=list)
    records_in: int = 0
    # Every non-blank line of every input object the job was handed, counted before any record is answered: what
    # the job was sent, even when it fails part-way (records_in stops where it failed).
    records_received: int = 0
    lines_out: int = 0
    dropped: int = 0


# ---------------------------------------------------------------- one transform job


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def run_transform(
    s3: BaseClient,
    *,
    job_name: str,
    transform_input: Mapping[str, Any],
    transform_output: Mapping[str, Any],
    environment: Mapping[str, str] | None = None,
    task: str | None = None,
    shuffle: bool = True,
    fail_reason: str | None = None,
) -> TransformResult:
    """Run one job over (moto) S3 and return its final status; never raises for a job failure."""
    result = TransformResult(job_name=job_name, status="InProgress")
    out_bucket, out_prefix = _split(transform_output["S3OutputPath"])
    out_prefix = out_prefix if out_prefix.endswith("/") or not out_prefix else out_prefix + "/"
    log.info("%s: running transform job %s", ENGINE_LABEL, job_name)
    s3.put_object(
        Bucket=out_bucket,
        Key=f"{out_prefix}{MARKER_OBJECT}",
        Body=marker_body(job_name),
    )
    try:
        if fail_reason:
            raise EngineFailure(fail_reason)
        _check_request(transform_input, transform_output)
        hyper_params = hyper_params_of(environment)
        source = transform_input["DataSource"]["S3DataSource"]
        in_bucket, in_prefix = _split(source["S3Uri"])
        keys = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=in_bucket, Prefix=in_prefix):
            keys += [item["Key"] for item in page.get("Contents", []) if not item["Key"].endswith("/")]
        if not keys:
            raise EngineFailure(f"ClientError: no input objects under {source['S3Uri']}")
        for key in keys:
            result.records_received += sum(
                1 for raw in body_lines(s3.get_object(Bucket=in_bucket, Key=key)["Body"]) if raw.strip()
            )
        rng = random.Random(job_name)
        for key in sorted(keys):
            lines = _transform_object(s3, in_bucket, key, task, hyper_params, result)
            if shuffle and (task == "text2text" or (task is None and all(line.startswith("{'") for line in lines))):
                rng.shuffle(lines)
            relative = key[len(in_prefix) :].lstrip("/")
            output_key = f"{out_prefix}{relative}.out"
            s3.put_object(Bucket=out_bucket, Key=output_key, Body="".join(line + "\n" for line in lines).encode())
            result.outputs.append(output_key)
            result.lines_out += len(lines)
    except EngineFailure as failure:
        result.status, result.failure_reason = "Failed", str(failure)
        log.info("%s: transform job %s Failed: %s", ENGINE_LABEL, job_name, failure)
        return result
    result.status = "Completed"
    log.info(
        "%s: transform job %s Completed, %d records in, %d lines out",
        ENGINE_LABEL,
        job_name,
        result.records_in,
        result.lines_out,
    )
    return result


def _check_request(transform_input: Mapping[str, Any], transform_output: Mapping[str, Any]) -> None:
    """Refuse what the real container would mishandle, so a wrong request shape fails loudly here too."""
    source = transform_input.get("DataSource", {}).get("S3DataSource", {})
    if source.get("S3DataType") != "S3Prefix":
        raise EngineFailure(
            f"ClientError: {ENGINE_LABEL} reads S3DataType=S3Prefix only, got {source.get('S3DataType')!r}"
        )
    if transform_input.get("SplitType") != "Line":
        raise EngineFailure("ClientError: SplitType must be Line for JSON Lines input")
    if transform_input.get("ContentType") != "application/jsonlines":
        raise EngineFailure(f"ClientError: unsupported ContentType {transform_input.get('ContentType')!r}")
    if transform_output.get("AssembleWith") != "Line":
        raise EngineFailure("ClientError: AssembleWith must be Line to get one output line per record")


def _transform_object(
    s3: BaseClient,
    bucket: str,
    key: str,
    task: str | None,
    hyper_params: dict[str, Any] | None,
    result: TransformResult,
) -> list[str]:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    lines: list[str] = []
    for number, raw in enumerate(body_lines(body), start=1):
        text = raw.decode("utf-8")
        if not text.strip():
            continue
        result.records_in += 1
        try:
            record = json.loads(text)
        except ValueError:
            raise EngineFailure(f"ClientError: {key} line {number} is not JSON") from None
        if FAIL_JOB in text:
            raise EngineFailure(
                f"AlgorithmError: {ENGINE_LABEL} failed the job on purpose: record {record.get('id')!r} "
                f"in {key.rsplit('/', 1)[-1]} carries {FAIL_JOB}"
            )
        if DROP_OUTPUT in text:
            result.dropped += 1
            continue
        if BAD_OUTPUT in text:
            lines.append(f"<<{ENGINE_LABEL}: unreadable output for record {record.get('id')!r}>>")
            continue
        lines.append(answer(record, task, hyper_params, number, key))
    return lines


# ---------------------------------------------------------------- the moto hook


def transform_job_event(job: TransformJobRecord) -> dict[str, Any]:
    """The job's state-change event in EventBridge's envelope, as SageMaker publishes it: detail-type "SageMaker
    Transform Job State Change", source aws.sagemaker, and a detail that mirrors DescribeTransformJob
    (TransformJobName, TransformJobArn, TransformJobStatus, FailureReason, ModelName, TransformInput, TransformOutput,
    TransformResources, CreationTime, TransformStartTime, TransformEndTime, Tags); timestamps in epoch milliseconds
    and Tags as a map, as in the examples of
    https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html
    (event list: https://docs.aws.amazon.com/eventbridge/latest/ref/events-ref-sagemaker.html)."""
    described = job.describe()
    detail: dict[str, Any] = {}
    for key, value in described.items():
        if key == "Tags":
            detail["Tags"] = {tag["Key"]: tag["Value"] for tag in value or []} if isinstance(value, list) else value
        elif isinstance(value, datetime):
            detail[key] = int(value.timestamp() * 1000)
        elif value not in (None, ""):
            detail[key] = value
    detail.setdefault("Tags", {})
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "SageMaker Transform Job State Change",
        "source": "aws.sagemaker",
        "account": job.account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": job.region,
        "resources": [job.arn],
        "detail": detail,
    }


class SageMakerEngineHook:
    """Makes moto's transform jobs run the engine; a context manager that undoes itself (hooks: moto_hooks).

    task_for_model: SageMaker model name -> "text2text" | "zero-shot" (a dict or a callable); when it does
        not know a model, the task is read off each record (`text_inputs` or `sequences`).
    fail_jobs: transform job name -> FailureReason, to fail a job without touching its records.
    s3_client: a boto3 S3 client factory (default: boto3.client("s3") in the job's region).
    on_event: receives each job's "SageMaker Transform Job State Change" event on every status change (InProgress,
        Stopping, and how it ended); it must not block (local mode's LocalEventBus.publish delivers on a thread).
    asynchronous: False (default): the job runs inside CreateTransformJob, as moto ends jobs at once. True: it is
        InProgress when created and runs on a thread of its own after its first DescribeTransformJob (a real job
        takes minutes to start, so a status check right after the submit always sees it InProgress), or after
        `start_after_seconds` if nobody checks; StopTransformJob stops it.
    """

    def __init__(
        self,
        *,
        task_for_model: Mapping[str, str] | Callable[[str], str | None] | None = None,
        shuffle: bool = True,
        fail_jobs: Mapping[str, str] | None = None,
        s3_client: Callable[[str], BaseClient] | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        asynchronous: bool = False,
        run_delay_seconds: float = 0.05,
        start_after_seconds: float = 2.0,
    ) -> None:
        self.task_for_model = task_for_model
        self.shuffle = shuffle
        self.fail_jobs = dict(fail_jobs or {})
        self.s3_client = s3_client
        self.on_event = on_event
        self.asynchronous = asynchronous
        self.run_delay_seconds = run_delay_seconds
        self.start_after_seconds = start_after_seconds
        self.runs: list[TransformResult] = []
        self.events_emitted: list[dict[str, Any]] = []
        self._checked: dict[str, threading.Event] = {}  # job name -> set once the job was described
        self._workers: list[threading.Thread] = []
        self._closed = False
        self._lock = threading.RLock()
        self._hooks: contextlib.ExitStack | None = None

    def _task(self, model_name: str) -> str | None:
        if callable(self.task_for_model):
            return self.task_for_model(model_name)
        return (self.task_for_model or {}).get(model_name)

    def _s3(self, region: str) -> BaseClient:
        if self.s3_client is not None:
            return self.s3_client(region)
        return boto3.client("s3", region_name=region)

    # ------------------------------------------------------------ job life

    def _set_status(self, job: TransformJobRecord, status: str, failure_reason: str | None = None) -> None:
        with self._lock:
            job.set_status(status, failure_reason)
            event = transform_job_event(job)
            self.events_emitted.append(event)
        if self.on_event is not None:
            self.on_event(event)

    def _created(self, job: TransformJobRecord) -> None:
        job.add_tag(STAND_IN_TAG)
        self._set_status(job, "InProgress")
        if not self.asynchronous:
            self._run(job)
            return
        self._checked[job.name] = threading.Event()
        worker = threading.Thread(target=self._run_when_checked, args=(job,), name=f"transform-{job.name}", daemon=True)
        self._workers.append(worker)
        worker.start()

    def _described(self, job: TransformJobRecord) -> None:
        checked = self._checked.get(job.name)
        if checked is not None:
            checked.set()

    def _run_when_checked(self, job: TransformJobRecord) -> None:
        self._checked[job.name].wait(self.start_after_seconds)
        time.sleep(self.run_delay_seconds)
        if self._closed:  # the session ended first: its S3 is gone, and no run waits on the job any more
            return
        try:
            self._run(job)
        except Exception as error:
            # A bug here, not a job failure (those are EngineFailure): the job ends Failed, so no run waits on it for
            # its backstop, and the error goes on to the thread's excepthook (pytest fails the test that made it).
            with self._lock:
                self._set_status(job, "Failed", f"InternalServerError: {ENGINE_LABEL} raised {error!r}"[:1024])
            raise

    def _run(self, job: TransformJobRecord) -> None:
        with self._lock:
            if job.status == "Stopping":  # stopped before it started: it wrote nothing
                self._set_status(job, "Stopped")
                return
        result = run_transform(
            self._s3(job.region),
            job_name=job.name,
            transform_input=job.transform_input,
            transform_output=job.transform_output,
            environment=job.environment,
            task=self._task(job.model_name),
            shuffle=self.shuffle,
            fail_reason=self.fail_jobs.get(job.name),
        )
        with self._lock:
            self.runs.append(result)
            # Stopped while it ran: SageMaker keeps what the job uploaded before it stopped.
            status = "Stopped" if job.status == "Stopping" else result.status
            self._set_status(job, status, result.failure_reason if status == "Failed" else None)

    def _stop(self, job: TransformJobRecord) -> None:
        with self._lock:
            if job.status != "InProgress":
                # SageMaker: stopping a job that is not InProgress answers ValidationException.
                raise StopRefused(f"Transform job {job.name} is {job.status} and cannot be stopped.")
            self._set_status(job, "Stopping")
        log.info("%s: stopping transform job %s", ENGINE_LABEL, job.name)

    # ------------------------------------------------------------ install

    def install(self) -> SageMakerEngineHook:
        if self._hooks is not None:
            return self
        self._hooks = contextlib.ExitStack()
        self._hooks.enter_context(transform_job_hooks(self._created, self._described, self._stop))
        _ACTIVE.append(self)
        return self

    def uninstall(self) -> None:
        if self._hooks is None:
            return
        self._hooks.close()
        self._hooks = None
        self._closed = True
        for checked in self._checked.values():
            checked.set()  # jobs still waiting for their first check give up now
        for worker in self._workers:
            worker.join(10)  # a job still running finishes while moto's S3 is still there
        if self in _ACTIVE:
            _ACTIVE.remove(self)

    @property
    def records_received(self) -> int:
        """Records sent to every transform job this hook ran (what the manifest's model_invocations counts)."""
        with self._lock:
            return sum(run.records_received for run in self.runs)

    def __enter__(self) -> SageMakerEngineHook:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()


_ACTIVE: list[SageMakerEngineHook] = []


def active_sagemaker_engine() -> SageMakerEngineHook:
    """The hook installed last (e.g. by local mode's `install_engines`), to inspect its runs from a test."""
    if not _ACTIVE:
        raise LookupError("no SageMaker engine is installed")
    return _ACTIVE[-1]


def install_sagemaker_engine(**options: Any) -> SageMakerEngineHook:
    """Patch moto so CreateTransformJob runs the local engine; use as `with install_sagemaker_engine(...):`
    (or call .uninstall()). Options: see SageMakerEngineHook."""
    return SageMakerEngineHook(**options).install()
