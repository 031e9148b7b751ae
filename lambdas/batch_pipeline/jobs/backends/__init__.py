"""The one interface the workflow drives, whatever runs the model.

A backend turns a planned job (contracts.Job) into a running batch job and reports its state as one
contracts.JobState: its name and ARN, the backend's own status, and the normalised state ("queued", "running",
"succeeded", "partial", "failed", "stopped"), so the job loop (batch_pipeline.jobs.loop) and collect never branch on
the backend. The loop merges each report into the job (Job.with_state).

"queued" means the backend refused the submission for a reason that passes with time (a quota on
concurrent jobs or instances, throttling): the job loop submits again after a backoff wait instead of failing the run.

For collect, a backend also says where a job's raw output lives (`raw_outputs`) and how each output
object joins to its input object, so collect reads every layout with one streaming join.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from batch_pipeline import settings
from batch_pipeline.config.app import ConfigError
from batch_pipeline.config.runtime import RuntimePipeline
from batch_pipeline.contracts import ENDED, Job, JobState, JobStateName
from batch_pipeline.storage.layout import RunFolder

# The backends match AWS errors on their code; the storage module owns the helper.
from batch_pipeline.storage.s3io import error_code as error_code

# States whose output collect reads: every ended one ("failed" and "stopped" jobs may still have written some objects).
OUTPUT_STATES: tuple[JobStateName, ...] = ENDED


class SubmitDeferred(Exception):
    """The backend cannot take the job now (quota, throttling); submit again after a wait."""


def error_message(error: Exception) -> str:
    message: str = getattr(error, "response", {}).get("Error", {}).get("Message", str(error))
    return message


@dataclass(frozen=True)
class RawOutput:
    """One backend output object and the input object it answers.

    join="id": output lines carry the record id in `output_id_field` (read by outputs.parse_output_line);
    order is free. join="position": output lines carry no id; line i answers input line i of the same
    object. `check_field` names an input field the output echoes (zero-shot `sequences` -> `sequence`), used
    to notice a dropped line instead of shifting every later answer onto the wrong record.
    """

    input_key: str
    output_key: str
    join: Literal["id", "position"]
    input_id_field: str = "id"
    check_field: str | None = None
    # The output of one retry of this object's failed records (join="id" only): collect puts its answers in place
    # of the errors in output_key (Bedrock retry_failed_records, backends/bedrock_retry.py).
    retry_output_key: str | None = None


class BatchBackend(ABC):
    """What job control and collect need from a backend, for one job of the run whose folder is `folder` (its run id
    names the jobs; its keys say where they read and write). Implementations take their boto3 clients as
    keyword arguments so tests can hand in moto or Stubber clients: CLIENTS lists boto3 service names,
    and the keyword is the service name with "-" replaced by "_" (bedrock-runtime -> bedrock_runtime)."""

    name: str
    CLIENTS: tuple[str, ...] = ()

    def __init__(self, pipeline: RuntimePipeline) -> None:
        self.pipeline = pipeline

    @abstractmethod
    def job_name(self, folder: RunFolder, job: Job) -> str:
        """Deterministic per (run, job index): a retried submit finds the job instead of starting another."""

    @abstractmethod
    def submit(self, folder: RunFolder, job: Job) -> JobState:
        """Start the job, or return the state of the one already started under this name.
        Raise SubmitDeferred when the backend says "not now"."""

    @abstractmethod
    def status(self, folder: RunFolder, job: Job) -> JobState:
        """The job's normalised state."""

    @abstractmethod
    def stop(self, folder: RunFolder, job: Job) -> JobState:
        """Ask the backend to stop the job; returns the normalised state after the request."""

    @abstractmethod
    def raw_outputs(self, folder: RunFolder, job: Job) -> Iterable[RawOutput]:
        """Every (input object, output object) pair of a job that ended, in a stable order."""

    def find(self, folder: RunFolder, job: Job) -> JobState | None:
        """The job's state, looked up on the backend by what the plan knows (its deterministic name); None
        when the backend has no such job (it was never submitted). Used to stop a failed run's jobs."""
        try:
            return self.status(folder, job)
        except LookupError:
            return None

    @property
    def max_runtime_seconds(self) -> int | None:
        """How long a job may run before job control stops it; None when the backend enforces its own limit."""
        return None

    def finish(self, folder: RunFolder, job: Job) -> Job:
        """Called with every job that reached an end state; may return the job with a follow-up phase that is not
        done yet (Bedrock: resubmit failed records once), which the job loop then runs. It never rewrites a job's
        output (collect merges a retry's answers), so job control stays a quick step. Default: the job as is."""
        return job

    def job_metrics(self, folder: RunFolder, job: Job) -> dict[str, Any]:
        """Counts the backend reports for an ended job (Bedrock's manifest.json.out); merged into collect's result."""
        return {}


# Backends by name -> "module:Class", imported on first use so a handler only loads the SDK code it needs.
BACKENDS: dict[str, str] = {
    "sagemaker": "batch_pipeline.jobs.backends.sagemaker:SageMakerBackend",
    "bedrock": "batch_pipeline.jobs.backends.bedrock:BedrockBackend",
}


def backend_class(backend: str) -> type[BatchBackend]:
    try:
        target = BACKENDS[backend]
    except KeyError:
        raise ConfigError(f"unknown backend {backend!r}; known: {', '.join(sorted(BACKENDS))}") from None
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise
        raise ConfigError(f"backend {backend!r} is not part of this build ({module_name} is missing)") from None
    backend_class: type[BatchBackend] = getattr(module, class_name)
    return backend_class


def backend_for(pipeline: RuntimePipeline, **clients: Any) -> BatchBackend:
    """The backend of a runtime pipeline. Pass boto3 clients by service name (sagemaker=, s3=, bedrock=);
    missing ones are created with boto3's defaults. Clients a backend does not use are ignored."""
    cls = backend_class(pipeline.backend)
    wanted = {service.replace("-", "_") for service in cls.CLIENTS}
    return cls(pipeline, **{name: client for name, client in clients.items() if name in wanted})


def backend_for_run(folder: RunFolder) -> BatchBackend:
    """The backend of the run's pipeline (from PIPELINES) with this container's clients (batch_pipeline.settings)."""
    pipeline = settings.current().pipeline(folder.pipeline)
    services = backend_class(pipeline.backend).CLIENTS
    return backend_for(pipeline, **{service.replace("-", "_"): settings.client(service) for service in services})
