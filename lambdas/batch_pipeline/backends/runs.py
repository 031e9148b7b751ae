"""Where a run lives, read from the workflow's execution input (`run`).

The fields read here: `run_id` and `pipeline` (required); `output_bucket` (else the OUTPUT_BUCKET
environment variable); `run_prefix` (else runs/<pipeline>/<run_id>/ from batch_pipeline.layout).
"""

from __future__ import annotations

import os

from batch_pipeline import layout


def run_bucket(run: dict) -> str:
    bucket = run.get("output_bucket") or os.environ.get("OUTPUT_BUCKET")
    if not bucket:
        raise KeyError("the run names no output_bucket and OUTPUT_BUCKET is not set")
    return bucket


def run_prefix(run: dict) -> str:
    prefix = run.get("run_prefix") or layout.run_prefix(run["pipeline"], run["run_id"])
    return prefix if prefix.endswith("/") else prefix + "/"


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key
