"""Where things live in S3. One module, so the stack, intake, backends and collect agree on keys."""

from __future__ import annotations

# Tag on intermediate objects (shards, raw backend output); a lifecycle rule expires them.
INTERMEDIATE_TAG = ("batch-pipeline:intermediate", "true")
INTERMEDIATE_TAGGING = f"{INTERMEDIATE_TAG[0]}={INTERMEDIATE_TAG[1]}"

RUNS_PREFIX = "runs/"
REJECTED_PREFIX = "rejected/"


def run_prefix(pipeline: str, run_id: str) -> str:
    return f"{RUNS_PREFIX}{pipeline}/{run_id}/"


def rejected_prefix(pipeline: str, run_id: str) -> str:
    return f"{REJECTED_PREFIX}{pipeline}/{run_id}/"
