"""Where a run lives, read from the workflow's execution input (`run`).

The fields read here: `run_id` and `pipeline` (required); `output_bucket` (else the OUTPUT_BUCKET
environment variable); `run_prefix` (else runs/<pipeline>/<run_id>/ from batch_pipeline.storage.layout).
"""

from __future__ import annotations

from typing import Any

from batch_pipeline import settings
from batch_pipeline.storage import layout


def run_bucket(run: dict[str, Any]) -> str:
    bucket = run.get("output_bucket") or settings.current().output_bucket
    if not bucket:
        raise KeyError("the run names no output_bucket and OUTPUT_BUCKET is not set")
    return bucket


def run_prefix(run: dict[str, Any]) -> str:
    prefix = run.get("run_prefix") or layout.run_prefix(run["pipeline"], run["run_id"])
    return prefix if prefix.endswith("/") else prefix + "/"


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def key_in_run_bucket(run: dict[str, Any], uri: str) -> str:
    """The key of an s3:// URI that must lie in the run's bucket (a plan naming another bucket is refused)."""
    bucket, key = split_s3_uri(uri)
    if bucket != run_bucket(run):
        raise ValueError(f"{uri} is outside the run bucket {run_bucket(run)}")
    return key


def job_output_uri(run: dict[str, Any], job: dict[str, Any], name: str) -> str:
    """The plan's `output_uri` (checked to lie in the run bucket, ending in "/").

    Else s3://<bucket>/<run prefix>raw/<job name>/.
    """
    if job.get("output_uri"):
        key_in_run_bucket(run, job["output_uri"])
        output_uri: str = job["output_uri"]
        return output_uri if output_uri.endswith("/") else output_uri + "/"
    return s3_uri(run_bucket(run), f"{run_prefix(run)}raw/{name}/")
