"""The output bucket's layout: every S3 key the pipeline reads or writes is formatted here, and nowhere else.

    runs/<pipeline>/<run-id>/                  a run folder: RunFolder, built once per step from the run reference
      intake.json                              intake's report (records, shards, route)
      references.jsonl                         what is not for the model: reference, label, kept columns
      shards/<shard>                           what is sent to the model (tagged intermediate)
      ids/<shard>                              line i = the id of shard line i, so collect never re-reads a shard
      jobs/<index>.json                        each job's latest state (storage.job_store)
      raw/<job name>/                          the backend's own output (tagged intermediate by collect); inside it
        <Bedrock job id>/<input>.out             Bedrock's layout, and manifest.json.out (jobs.backends.bedrock)
        on-demand/<input>.out, parts/            a job run through InvokeModel, in the same layout (ON_DEMAND)
        <shard>.out                              SageMaker's layout (jobs.backends.sagemaker)
      predictions/predictions.jsonl            one line per valid record (an Athena table's folder)
      errors/errors.jsonl                      the records the model did not answer (an Athena table's folder)
      collect.json                             collect's per-job tallies and the jobs' final states
      evaluation.json, manifest.json, summary.md, report.html
    runs/<pipeline>/manifests/<run-id>.json    the manifests table's row for the run
    rejected/<pipeline>/<run-id>/<name>        a rejected file's copy, <name>.report.json and <name>.report.html
    job-tokens/<job name>.json                 the task token of the iteration waiting on a job (expires, see
                                               stacks/storage.py)

What is not formatted here: the names the services give their own output inside the folder we hand them (a
Bedrock job's `<job id>/`, the `.out` suffix, `manifest.json.out`), which are the services' documented formats and
live with each backend's adapter (and its local stand-in); and a shard's own file name (intake.sharding).
tests/unit/test_run_keys.py fails on a run-key literal anywhere else in lambdas/, local/ or bench/.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from batch_pipeline import settings
from batch_pipeline.contracts import RunRef

# Tag on intermediate objects (shards, raw backend output); a lifecycle rule expires them.
INTERMEDIATE_TAG = ("batch-pipeline:intermediate", "true")
INTERMEDIATE_TAGGING = f"{INTERMEDIATE_TAG[0]}={INTERMEDIATE_TAG[1]}"

# Tag on every backend job the stack starts, valued with the stack name (set in job control's environment
# variable settings.OWNER_TAG_ENV): IAM scopes job control to its own jobs with aws:ResourceTag / aws:RequestTag on it.
OWNER_TAG_KEY = "batch-pipeline:stack"

# The bucket's top-level prefixes: the stacks scope IAM and lifecycle rules with them.
RUNS_PREFIX = "runs/"
REJECTED_PREFIX = "rejected/"
# An EventBridge job-state event names the job, not the run, so a waiting iteration's token is found by job name.
TOKENS_PREFIX = "job-tokens/"

# Names inside a run folder, relative to it: intake's RunSink writes with these, RunFolder prefixes them.
INTAKE_REPORT = "intake.json"
REFERENCES = "references.jsonl"
SHARDS = "shards/"
IDS = "ids/"
JOBS = "jobs/"
RAW = "raw/"
# The run's results that Athena reads (stacks/analytics.py). Athena reads every object under a table's, or a
# partition's, S3 location, so each table's files sit in a folder of their own: a table over the run folder itself
# would read its shards, raw outputs and manifest as rows.
PREDICTIONS_FOLDER = "predictions/"
ERRORS_FOLDER = "errors/"
PREDICTIONS = f"{PREDICTIONS_FOLDER}predictions.jsonl"
ERRORS = f"{ERRORS_FOLDER}errors.jsonl"
COLLECT_DETAILS = "collect.json"
EVALUATION = "evaluation.json"
MANIFEST = "manifest.json"
SUMMARY = "summary.md"
REPORT = "report.html"
# One line per run (the manifest as a single JSON object: the JSON SerDe reads one object per line), in one folder
# per pipeline beside the run folders, so the manifests table reads every run of a pipeline without naming runs.
# Run ids always end in -<16 hex> (intake.stream.run_id_for), so no run folder is ever called "manifests".
MANIFESTS_FOLDER = "manifests/"
# Inside a job's raw/<job name>/: where a Bedrock job run through InvokeModel writes (the batch layout), and the
# parts it checkpoints its answers in.
ON_DEMAND = "on-demand/"
ON_DEMAND_PARTS = "parts/"
# A retry of a Bedrock job's failed records reads this file, written beside the job's own input.
RETRY_INPUT_SUFFIX = "-retry.jsonl"
# A rejected file's JSON report and its page, beside its copy.
REJECTION_REPORT_SUFFIX = ".report.json"
REJECTION_PAGE_SUFFIX = ".report.html"
# S3 object keys are at most 1,024 bytes of UTF-8.
S3_KEY_LIMIT = 1024

# Every name above that a key is made of: tests/unit/test_run_keys.py looks for them as literals elsewhere.
NAMES = (
    RUNS_PREFIX,
    REJECTED_PREFIX,
    TOKENS_PREFIX,
    INTAKE_REPORT,
    REFERENCES,
    SHARDS,
    IDS,
    JOBS,
    RAW,
    PREDICTIONS_FOLDER,
    ERRORS_FOLDER,
    PREDICTIONS,
    ERRORS,
    COLLECT_DETAILS,
    EVALUATION,
    MANIFEST,
    SUMMARY,
    REPORT,
    MANIFESTS_FOLDER,
    ON_DEMAND,
    RETRY_INPUT_SUFFIX,
    REJECTION_REPORT_SUFFIX,
    REJECTION_PAGE_SUFFIX,
)


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def as_folder(key: str) -> str:
    """A key prefix that names a folder: ends in "/"."""
    return key if key.endswith("/") else key + "/"


def run_prefix(pipeline: str, run_id: str) -> str:
    """`runs/<pipeline>/<run-id>/`: where intake puts a new run."""
    return f"{RUNS_PREFIX}{pipeline}/{run_id}/"


def shard_name(name: str) -> str:
    """`shards/<name>`, relative to the run folder."""
    return f"{SHARDS}{name}"


def id_index_name(name: str) -> str:
    """`ids/<name>`, relative to the run folder: the ids of shard `name`, line for line."""
    return f"{IDS}{name}"


def id_index_key(input_key: str) -> str | None:
    """`<run>/shards/<name>` -> `<run>/ids/<name>`; None for an input that is not one of intake's shards."""
    head, found, name = input_key.rpartition("/" + SHARDS)
    if not found or "/" in name:
        return None
    return f"{head}/{id_index_name(name)}"


def retry_input_key(input_key: str) -> str:
    """The input file of a retry of a job's failed records: `<input without extension>-retry.jsonl`."""
    return input_key.rsplit(".", 1)[0] + RETRY_INPUT_SUFFIX


def on_demand_folder(output_folder: str) -> str:
    """`<job's raw folder>on-demand/`: where a job run through InvokeModel writes its answers."""
    return as_folder(output_folder) + ON_DEMAND


def on_demand_part_key(folder: str, index: int) -> str:
    """The `index`th checkpoint part of an on-demand job whose answers go to `folder` (on_demand_folder)."""
    return f"{folder}{ON_DEMAND_PARTS}part-{index:05d}.jsonl"


def on_demand_parts(folder: str) -> str:
    return folder + ON_DEMAND_PARTS


def token_key(job_name: str) -> str:
    """`job-tokens/<job name>.json`: outside every run folder, because a job-state event names only the job."""
    return f"{TOKENS_PREFIX}{job_name}.json"


def rejected_prefix(pipeline: str, run_id: str) -> str:
    return f"{REJECTED_PREFIX}{pipeline}/{run_id}/"


def rejected_pipeline_prefix(pipeline: str) -> str:
    """`rejected/<pipeline>/`: every rejected file of a pipeline."""
    return f"{REJECTED_PREFIX}{pipeline}/"


@dataclass(frozen=True)
class RejectedFile:
    """Where a rejected upload goes: its copy, its JSON report (written last: it marks the rejection done) and its
    page, all under `rejected/<pipeline>/<run-id>/`."""

    bucket: str
    copy_key: str

    @classmethod
    def of(cls, bucket: str, pipeline: str, run_id: str, name: str) -> RejectedFile:
        prefix = rejected_prefix(pipeline, run_id)
        return cls(bucket, prefix + rejected_name(prefix, name))

    @property
    def report_key(self) -> str:
        return self.copy_key + REJECTION_REPORT_SUFFIX

    @property
    def page_key(self) -> str:
        return self.copy_key + REJECTION_PAGE_SUFFIX

    def uri(self, key: str) -> str:
        return s3_uri(self.bucket, key)


def rejected_name(prefix: str, name: str) -> str:
    """The file name for the quarantined copy: the original name when `prefix + name + .report.json` fits S3's
    key limit, else its start cut on a character boundary plus 16 hex of its sha256 (unique, traceable)."""
    room = S3_KEY_LIMIT - len(prefix.encode()) - len(REJECTION_REPORT_SUFFIX)
    if len(name.encode()) <= room:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    head = name.encode()[: room - len(digest) - 1].decode("utf-8", "ignore")
    return f"{head}-{digest}"


@dataclass(frozen=True)
class RunFolder:
    """One run's folder: its bucket, its prefix (ending in "/") and every key in it.

    Built once per step from the run reference (`RunFolder.of(run)`) and passed to the logic that reads or writes
    the run; the run's id and pipeline come along because job names and the manifests row are made from them.
    """

    bucket: str
    prefix: str
    pipeline: str
    run_id: str

    def __post_init__(self) -> None:
        if not self.bucket:
            raise ValueError("a run folder needs a bucket")
        if not self.prefix.endswith("/"):
            object.__setattr__(self, "prefix", self.prefix + "/")

    @classmethod
    def of(cls, run: RunRef | Mapping[str, Any]) -> RunFolder:
        """From the run reference: `output_bucket` (else OUTPUT_BUCKET) and `run_prefix` (else
        runs/<pipeline>/<run-id>/)."""
        ref = run if isinstance(run, RunRef) else RunRef.model_validate(dict(run))
        bucket = ref.output_bucket or settings.current().output_bucket
        if not bucket:
            raise KeyError("the run names no output_bucket and OUTPUT_BUCKET is not set")
        return cls(
            bucket=bucket,
            prefix=ref.run_prefix or run_prefix(ref.pipeline, ref.run_id),
            pipeline=ref.pipeline,
            run_id=ref.run_id,
        )

    @classmethod
    def from_uri(cls, uri: str, *, pipeline: str, run_id: str) -> RunFolder:
        """From the folder's s3:// URI (a manifest's outputs.run_folder, a command-line argument)."""
        bucket, prefix = split_s3_uri(uri)
        return cls(bucket=bucket, prefix=prefix, pipeline=pipeline, run_id=run_id)

    # ---------------------------------------------------------------- addresses

    def key(self, name: str) -> str:
        """The key of `name` relative to the run folder (one of this module's names)."""
        return self.prefix + name

    def uri(self, key: str) -> str:
        return s3_uri(self.bucket, key)

    @property
    def folder_uri(self) -> str:
        return s3_uri(self.bucket, self.prefix)

    def key_of(self, uri: str) -> str:
        """The key of an s3:// URI that must lie in the run's bucket (a plan naming another bucket is refused)."""
        bucket, key = split_s3_uri(uri)
        if bucket != self.bucket:
            raise ValueError(f"{uri} is outside the run bucket {self.bucket}")
        return key

    # ---------------------------------------------------------------- what intake writes

    @property
    def intake_report_key(self) -> str:
        return self.key(INTAKE_REPORT)

    @property
    def references_key(self) -> str:
        return self.key(REFERENCES)

    @property
    def shards_prefix(self) -> str:
        return self.key(SHARDS)

    def shard_key(self, name: str) -> str:
        return self.key(shard_name(name))

    @property
    def jobs_prefix(self) -> str:
        return self.key(JOBS)

    def job_key(self, index: int | str) -> str:
        """`jobs/<index>.json`: one job's latest state."""
        return f"{self.jobs_prefix}{index}.json"

    # ---------------------------------------------------------------- what the backends write

    @property
    def raw_prefix(self) -> str:
        return self.key(RAW)

    def raw_job_uri(self, job_name: str) -> str:
        """s3://<bucket>/<run>/raw/<job name>/: where a job's backend writes."""
        return self.uri(f"{self.raw_prefix}{job_name}/")

    def job_output_uri(self, planned: str | None, job_name: str) -> str:
        """A job's output folder: the plan's `output_uri` (checked to lie in the run bucket, ending in "/"), else
        raw/<job name>/."""
        if planned:
            self.key_of(planned)
            return as_folder(str(planned))
        return self.raw_job_uri(job_name)

    # ---------------------------------------------------------------- what collect and the last steps write

    @property
    def predictions_key(self) -> str:
        return self.key(PREDICTIONS)

    @property
    def errors_key(self) -> str:
        return self.key(ERRORS)

    @property
    def collect_details_key(self) -> str:
        return self.key(COLLECT_DETAILS)

    @property
    def evaluation_key(self) -> str:
        return self.key(EVALUATION)

    @property
    def manifest_key(self) -> str:
        return self.key(MANIFEST)

    @property
    def summary_key(self) -> str:
        return self.key(SUMMARY)

    @property
    def report_key(self) -> str:
        return self.key(REPORT)

    @property
    def manifest_row_key(self) -> str:
        """`runs/<pipeline>/manifests/<run-id>.json`: the manifests table's row for the run."""
        return f"{RUNS_PREFIX}{self.pipeline}/{MANIFESTS_FOLDER}{self.run_id}.json"

    def outputs(self) -> dict[str, str]:
        """The manifest's `outputs`: the run folder and each of its parts, as s3:// URIs."""
        return {
            "run_folder": self.folder_uri,
            "shards": self.uri(self.shards_prefix),
            "raw": self.uri(self.raw_prefix),
            "predictions": self.uri(self.predictions_key),
            "errors": self.uri(self.errors_key),
            "evaluation": self.uri(self.evaluation_key),
            "manifest": self.uri(self.manifest_key),
            "summary": self.uri(self.summary_key),
            "report": self.uri(self.report_key),
        }
