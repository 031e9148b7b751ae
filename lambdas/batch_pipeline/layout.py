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


def rejected_prefix(pipeline: str, run_id: str) -> str:
    return f"{REJECTED_PREFIX}{pipeline}/{run_id}/"
