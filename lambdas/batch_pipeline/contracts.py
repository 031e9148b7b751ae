"""The typed state contract: what each state of the run's state machine receives and returns.

Handlers parse their event with these models at the edge, so a state that is handed the wrong shape fails
with a validation error naming the field, instead of a KeyError three calls deep. Models allow extra fields
where a backend adds its own (Bedrock's `record_counts`, a `retry` phase), so the contract says what every
state can rely on, not everything a backend may carry.

One name per concept on the job side: a backend reports a job's state as a JobState (its normalised `state` is a
JobStateName); job control merges each report into the Job (Job.with_state), which is what the run's jobs/ folder
and the Map iteration hold; a list of the run's jobs in the state is a list of JobRef, one shape everywhere.

Flow (see stacks/workflow.py):
  execution input = ExecutionInput (run=RunRef, plan=PlanReferences): intake planned the jobs, wrote each Job to
    <run>/jobs/<i>.json and started the run with one JobRef per job, so planning reads nothing back from S3
  Map item = (run=RunRef, job=JobRef, attempt=0)  ->  Submit job / Wait for job to end (JobControlEvent) -> JobStep
  (job control reads the Job from S3 and writes it back with its latest JobState; batch_pipeline.jobs.loop.run_step)
  iteration result = JobRef (the `Job ended` state keeps only the index)
  Collect and score outputs: RunJobs (run, jobs=[JobRef]) -> CollectSummary (reads the Jobs from <run>/jobs/; scores
    each record and writes evaluation.json, evaluation_key, in the same pass; writes the per-job tallies and the
    Jobs to <run>/collect.json, details_key, where the manifest step reads them; carries the EvaluationHeadline and
    the bounded ReportAggregates)
  Write manifest: RunJobs with collect, or with failure (the failure path's Stop the run's jobs: StopJobsEvent) ->
    RunOutcome (reads evaluation.json; writes manifest.json and report.html)
  Notify: NotifyEvent (run, manifest=RunOutcome) -> {"message_id"}
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# A job's normalised state, whatever its backend calls it. "queued": not submitted yet, or refused for now (a quota,
# throttling) and submitted again after a wait; "running": accepted and not ended; the other four are ended.
JobStateName = Literal["queued", "running", "succeeded", "partial", "failed", "stopped"]
JOB_STATES: tuple[JobStateName, ...] = get_args(JobStateName)
ENDED: tuple[JobStateName, ...] = ("succeeded", "partial", "failed", "stopped")
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


class JobState(BaseModel):
    """A job's state as its backend reports it now, in the one shape every backend answers in (batch_pipeline.jobs
    .backends): its name and ARN, the backend's own status and the normalised `state`. A backend may add what it
    alone knows (Bedrock's record counts, SageMaker's instance times, an on-demand job's billed requests)."""

    name: str = Field(min_length=1)
    arn: str | None
    status: str
    state: JobStateName
    failure_reason: str | None = None
    output_uri: str | None = None
    # Bedrock: the job summary's processed/succeeded/failed record counts, and how its records are invoked.
    record_counts: dict[str, int] | None = None
    invocation_type: str | None = None
    # SageMaker: when the instances ran (TransformStartTime, TransformEndTime) as ISO 8601, what Batch Transform bills.
    started_at: str | None = None
    ended_at: str | None = None
    # The requests the job is billed for, when the backend counts them itself (on demand: InvokeModel requests).
    model_invocations: int | None = Field(default=None, ge=0)

    @field_validator("failure_reason", mode="before")
    @classmethod
    def _no_empty_reason(cls, value: Any) -> Any:
        return value or None  # a backend's empty message is no reason

    @property
    def done(self) -> bool:
        return self.state in ENDED


class Job(_Open):
    """A backend job: as planned (batch_pipeline.jobs.planning: where its records are and where its output goes),
    then as job control last saw it, with its latest JobState merged in and job control's own bookkeeping. It is what
    `<run>/jobs/<index>.json` holds and what the Map iteration carries (`$.job.done`, `$.job.state`); before its
    first step it is the planned job alone (no state, not done)."""

    # As planned.
    index: int | str
    name: str | None = None
    input_uri: str | None = None
    output_uri: str | None = None
    records: int = Field(default=0, ge=0)
    bytes: int = Field(default=0, ge=0)
    shard_keys: list[str] = Field(default_factory=list)
    route: Route = "batch"
    # As job control last saw it (its latest JobState).
    arn: str | None = None
    status: str | None = None
    state: JobStateName | None = None
    done: bool = False
    failure_reason: str | None = None
    record_counts: dict[str, int] | None = None
    invocation_type: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    # Billed requests: records sent for a batch job, InvokeModel requests for an on-demand one (the manifest adds
    # them up); None until the job is submitted.
    model_invocations: int | None = Field(default=None, ge=0)
    # Job control's bookkeeping (batch_pipeline.jobs.loop): epoch seconds, the backend's last "not now", why job
    # control stopped the job, and why stopping it failed.
    queued_at: float | None = None
    submitted_at: float | None = None
    last_refusal: str | None = None
    stop_reason: str | None = None
    stop_error: str | None = None
    # A Bedrock retry of the job's failed records (jobs.backends.bedrock_retry): while it runs, the job is the retry
    # with the original's fields in `first_attempt`; once it ended, the original again with the retry under `retry`.
    first_attempt: dict[str, Any] | None = None
    token_index: str | None = None
    retry: dict[str, Any] | None = None
    # A run from before collect merged a retry's answers itself: where job control wrote the merged output.
    merged_output_key: str | None = None

    def with_state(self, reported: JobState) -> Job:
        """This job with what its backend reports now: the report's fields replace the job's (its name, ARN, status,
        state, reason and output location always, even when None; what else it says only when it says it)."""
        always = ("name", "arn", "status", "state", "failure_reason", "output_uri")
        update = reported.model_dump(exclude_unset=True) | {key: getattr(reported, key) for key in always}
        return Job.model_validate(self.model_dump(exclude_unset=True) | update | {"done": reported.done})

    def changed(self, **fields: Any) -> Job:
        """This job with `fields` set (validated, and kept when the job is written back)."""
        return Job.model_validate(self.model_dump(exclude_unset=True) | fields)

    def without(self, *names: str) -> Job:
        """This job with `names` left out, as if never set (a refusal that no longer holds)."""
        return Job.model_validate({k: v for k, v in self.model_dump(exclude_unset=True).items() if k not in names})

    def stored(self) -> dict[str, Any]:
        """The job as JSON, as it was given and changed: the shape of `<run>/jobs/<index>.json` and `$.job`."""
        return self.model_dump(mode="json", exclude_unset=True)


class JobStep(BaseModel):
    """Input and output of `Submit job` and `Wait for job to end` (the Map iteration's state)."""

    run: RunRef
    job: Job
    attempt: int = Field(default=0, ge=0)
    wait_seconds: int | None = Field(default=None, ge=0)
    # The task-token wait's TimeoutSecondsPath: when the iteration checks the job itself if no event came.
    backstop_seconds: int | None = Field(default=None, ge=1)

    def payload(self) -> dict[str, Any]:
        """The step as the state machine carries it (JSON): the run as it came, the job as stored, the waits."""
        return self.model_dump(mode="json", exclude_unset=True)


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
    # A reference (the Map item) or the whole job (a later step, and the iteration's state a token resumes with).
    job: JobRef
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
    jobs: list[Job] = Field(min_length=1)
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
