"""The typed state contract: what each state of the run's state machine receives and returns.

Handlers parse their event with these models at the edge, so a state that is handed the wrong shape fails
with a validation error naming the field, instead of a KeyError three calls deep. Models allow extra fields
where a backend adds its own (Bedrock's `record_counts`, a `retry` phase), so the contract says what every
state can rely on, not everything a backend may carry.

Flow (see stacks/workflow.py):
  execution input = ExecutionInput (run=RunRef, plan=PlanReferences): intake planned the jobs, wrote each PlannedJob
    to <run>/jobs/<i>.json and started the run with one JobRef per job, so planning reads nothing back from S3
  Map item = (run=RunRef, job=JobRef, attempt=0)  ->  Submit job / Wait for job to end -> JobStep
  (job control reads the job from S3 and writes its latest JobState back; batch_pipeline.storage.job_store)
  iteration result = JobRef (the `Job ended` state keeps only the index)
  Collect and score outputs: (run, jobs=[JobRef]) -> CollectSummary (reads the JobStates from <run>/jobs/; scores
    each record and writes evaluation.json, evaluation_key, in the same pass; writes the per-job tallies and the
    JobStates to <run>/collect.json, details_key, where the manifest step reads them; carries the
    EvaluationHeadline and the bounded ReportAggregates)
  Write manifest: (run, jobs, collect) or (run, failure, jobs) -> RunOutcome (reads evaluation.json; writes
    manifest.json and report.html)
  Notify: (run, manifest) -> {"message_id"}
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

JobStateName = Literal["queued", "running", "succeeded", "partial", "failed", "stopped"]
# How a job's records reach the model: a batch job (Batch Transform, Bedrock batch inference) or, for a Bedrock file
# under the batch minimum, one InvokeModel/Converse request per record (jobs.backends.bedrock_on_demand).
Route = Literal["batch", "on-demand"]
RunStatus = Literal["SUCCEEDED", "PARTIAL", "FAILED"]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class RunRef(_Open):
    """The run reference every state carries: where the run lives and what it is (the execution input)."""

    run_id: str = Field(min_length=1)
    pipeline: str = Field(min_length=1)
    backend: str | None = None
    model: str | None = None
    output_bucket: str | None = None
    run_prefix: str | None = None
    input: dict[str, Any] | None = None
    counts: dict[str, int | None] = Field(default_factory=dict)
    ids_assigned: bool = False
    started_at: str | None = None


class PlannedJob(_Open):
    """One backend job as planned (batch_pipeline.jobs.planning)."""

    index: int | str
    name: str | None = None
    input_uri: str | None = None
    output_uri: str | None = None
    records: int = Field(default=0, ge=0)
    bytes: int = Field(default=0, ge=0)
    shard_keys: list[str] = Field(default_factory=list)
    route: Route = "batch"


class JobState(PlannedJob):
    """A planned job plus its normalised backend state (batch_pipeline.jobs.backends.job_state)."""

    name: str
    arn: str | None = None
    status: str
    state: JobStateName
    done: bool
    failure_reason: str | None = None
    model_invocations: int = Field(default=0, ge=0)


class JobStep(BaseModel):
    """Input and output of `Submit job` and `Wait for job to end` (the Map iteration's state)."""

    run: RunRef
    job: PlannedJob | JobState
    attempt: int = Field(default=0, ge=0)
    wait_seconds: int | None = Field(default=None, ge=0)
    # The task-token wait's TimeoutSecondsPath: when the iteration checks the job itself if no event came.
    backstop_seconds: int | None = Field(default=None, ge=1)


class JobRef(BaseModel):
    """A Map item or iteration result: the job's index; the job itself is in `<run>/jobs/<index>.json`.

    The one shape a list of the run's jobs has in the state (the plan's items, the Map's result, the stopped jobs).
    A whole job (name and state, e.g. from a manifest for `batch-pipeline recollect`) is a JobRef too, and is used
    as it is instead of being read back (batch_pipeline.storage.job_store.resolve_jobs)."""

    model_config = ConfigDict(extra="allow")
    index: int | str


class RunJobs(BaseModel):
    """`{"run", "jobs"}`: what Collect and score outputs, Write manifest and Stop the run's jobs receive."""

    model_config = ConfigDict(extra="allow")
    run: RunRef
    jobs: list[JobRef] = Field(default_factory=list)


class JobControlEvent(BaseModel):
    action: Literal["submit", "status", "wait"]
    run: RunRef
    job: JobRef | PlannedJob | JobState
    attempt: int = Field(default=0, ge=0)
    # Only for "wait": the iteration's `$$.Task.Token`.
    task_token: str | None = None


class JobStateEvent(BaseModel):
    """What the job-state event handler needs from a Bedrock or SageMaker EventBridge event."""

    job_name: str = Field(min_length=1)
    status: str
    terminal: bool


class StopJobsEvent(RunJobs):
    action: Literal["stop_all"]


class PlanResult(BaseModel):
    jobs: list[PlannedJob] = Field(min_length=1)
    backend: str


class PlanReferences(BaseModel):
    """The planned jobs as the state carries them: references, one per job (jobs.planning.plan_references)."""

    jobs: list[JobRef] = Field(min_length=1)
    backend: str
    count: int = Field(ge=1)


class ExecutionInput(BaseModel):
    """The StartExecution input intake sends: the run and its planned jobs, as references.

    StartExecution's input is at most 256 KB like every state's (Step Functions quotas), which is why the jobs travel
    as `{"index"}` references: 1,000 jobs are about 14 KB (tests/infrastructure/test_state_payloads.py)."""

    run: RunRef
    plan: PlanReferences


class ReportExample(BaseModel):
    """One of the best or worst records, its texts clipped (batch_pipeline.results.report.aggregate)."""

    id: str
    score: float | None = None
    prediction: str
    reference: str
    correct: bool | None = None


class ReportErrorCode(BaseModel):
    code: str
    records: int = Field(ge=0)
    example: str | None = None


class ReportHistogram(BaseModel):
    bins: int = Field(ge=1)
    low: float
    high: float
    counts: list[int]


class ReportAggregates(BaseModel):
    """What collect gathered for report.html in its one pass; bounded in size whatever the run's size."""

    records: int = Field(ge=0)
    failed: int = Field(ge=0)
    score: Literal["rougeL F1", "confidence"] | None = None
    scored: int = Field(ge=0)
    histogram: ReportHistogram | None = None
    best: list[ReportExample] = Field(max_length=10)
    worst: list[ReportExample] = Field(max_length=10)
    errors_by_code: list[ReportErrorCode] = Field(max_length=51)


class EvaluationHeadline(BaseModel):
    """The few numbers of evaluation.json a notification, the manifest and the console show
    (batch_pipeline.results.evaluation.streaming.headline)."""

    metric: Literal["rouge", "classification"]
    records: int = Field(ge=0)
    scored: int = Field(ge=0)
    missing: int = Field(ge=0)
    errors: int = Field(ge=0)
    accuracy: float | None = None
    macro_f1: float | None = None
    rouge_f: dict[str, float | None] | None = None


class CollectSummary(_Open):
    processed: int = Field(default=0, ge=0)
    succeeded: int = Field(default=0, ge=0)
    failed: int = Field(default=0, ge=0)
    report: ReportAggregates | None = None
    # Where the per-job tallies are (batch_pipeline.results.collect.PER_JOB_FIELDS): never in the state itself.
    details_key: str | None = None
    jobs_collected: int = Field(default=0, ge=0)
    # Scored in the same pass: the headline here, the whole evaluation in evaluation.json (None: nothing scored).
    evaluation: EvaluationHeadline | None = None
    evaluation_key: str | None = None

    @model_validator(mode="after")
    def _no_per_job_lists(self) -> CollectSummary:
        if "jobs" in (self.model_extra or {}):
            raise ValueError("collect's per-job tallies belong at details_key, not in the state")
        return self


class Failure(BaseModel):
    state: str
    error: str | None = None
    cause: str | None = None
    cost: RunCost | None = None


class ModelInvocations(BaseModel):
    total: int = Field(ge=0)
    by_job: dict[str, int]


class RunCost(BaseModel):
    """manifest["cost"]: what the run cost at the catalog's prices (results.pricing), with where the prices
    come from and how the number was computed (`basis`)."""

    usd: float = Field(ge=0)
    input_usd: float = Field(ge=0)
    output_usd: float = Field(ge=0)
    instance_usd: float | None = Field(default=None, ge=0)
    # SageMaker Batch Transform is "batch", priced by instance time (instance_usd) instead of tokens.
    route: Route
    model: str
    prices_as_of: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    source: str = Field(pattern=r"^https://")
    basis: str


class RunOutcome(_Open):
    """What Write manifest returns (batch_pipeline.results.finish.state_summary): manifest.json without what grows
    with the number of jobs. The state machine reads status, error and cause; Notify the rest."""

    manifest_version: int
    run_id: str
    pipeline: str
    status: RunStatus
    counts: dict[str, int | None]
    outputs: dict[str, str]
    error: str | None = None
    cause: str | None = None
    cost: RunCost | None = None
    evaluation: EvaluationHeadline | None = None


class Manifest(RunOutcome):
    """manifest.json (batch_pipeline.results.manifest): the outcome with every job and its billed requests."""

    jobs: list[dict[str, Any]] = Field(default_factory=list)
    model_invocations: ModelInvocations


class NotifyEvent(BaseModel):
    """Notify run finished / Notify run failed: `{"run", "manifest"}`."""

    run: RunRef
    manifest: RunOutcome
