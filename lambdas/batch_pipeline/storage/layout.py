"""Where things live in S3. One module, so the stack, intake, backends and collect agree on keys."""

from __future__ import annotations

# Tag on intermediate objects (shards, raw backend output); a lifecycle rule expires them.
INTERMEDIATE_TAG = ("batch-pipeline:intermediate", "true")
INTERMEDIATE_TAGGING = f"{INTERMEDIATE_TAG[0]}={INTERMEDIATE_TAG[1]}"

# Tag on every backend job the stack starts, valued with the stack name (set in job control's environment
# variable OWNER_TAG_ENV): IAM scopes job control to its own jobs with aws:ResourceTag / aws:RequestTag on it.
OWNER_TAG_KEY = "batch-pipeline:stack"
OWNER_TAG_ENV = "OWNER_STACK"

RUNS_PREFIX = "runs/"
REJECTED_PREFIX = "rejected/"


def run_prefix(pipeline: str, run_id: str) -> str:
    return f"{RUNS_PREFIX}{pipeline}/{run_id}/"


# The run's results that Athena reads (stacks/analytics.py). Athena reads every object under a table's, or a
# partition's, S3 location, so each table's files sit in a folder of their own: a table over the run folder itself
# would read its shards, raw outputs and manifest as rows.
PREDICTIONS_FOLDER = "predictions/"
ERRORS_FOLDER = "errors/"
# One line per run (the manifest as a single JSON object: the JSON SerDe reads one object per line), in one folder
# per pipeline beside the run folders, so the manifests table reads every run of a pipeline without naming runs.
# Run ids always end in -<16 hex> (intake.run_id_for), so no run folder is ever called "manifests".
MANIFESTS_FOLDER = "manifests/"


def predictions_key(run_folder: str) -> str:
    """`runs/<pipeline>/<run-id>/predictions/predictions.jsonl` for run folder `runs/<pipeline>/<run-id>/`."""
    return f"{run_folder}{PREDICTIONS_FOLDER}predictions.jsonl"


def errors_key(run_folder: str) -> str:
    return f"{run_folder}{ERRORS_FOLDER}errors.jsonl"


def manifest_row_key(pipeline: str, run_id: str) -> str:
    """`runs/<pipeline>/manifests/<run-id>.json`: the manifests table's row for the run."""
    return f"{RUNS_PREFIX}{pipeline}/{MANIFESTS_FOLDER}{run_id}.json"


def rejected_prefix(pipeline: str, run_id: str) -> str:
    return f"{REJECTED_PREFIX}{pipeline}/{run_id}/"
