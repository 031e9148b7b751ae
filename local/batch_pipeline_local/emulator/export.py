"""`--out DIR`: a local run's folder copied from emulated S3 to disk, to open report.html and try the CLI on real files.

A run lands in DIR/<run-id>/ with the layout of its S3 folder (`runs/<pipeline>/<run-id>/`: report.html,
manifest.json, predictions/, references.jsonl, shards/, raw/ ...); a rejected file in DIR/<run-id>/ with
its copy, `<name>.report.json` and `<name>.report.html` (`rejected/<pipeline>/<run-id>/`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import boto3
from botocore.client import BaseClient

from batch_pipeline.storage.layout import REJECTION_PAGE_SUFFIX, REPORT, RunFolder, split_s3_uri
from batch_pipeline_local.emulator.run import RunResult
from batch_pipeline_local.template import REGION

DEMO_MARKER = ".batch-pipeline-demo"


def run_folder(result: RunResult) -> tuple[str, str] | None:
    """(bucket, prefix) of the run's S3 folder, or of the rejected file's quarantine folder; None if neither."""
    if result.execution is not None:
        run = json.loads(result.execution["input"])["run"]  # the execution input is {run, plan} (ExecutionInput)
        folder = RunFolder.of(run)
        return folder.bucket, folder.prefix
    if result.rejection is not None and result.rejection.get("report_uri"):
        bucket, key = split_s3_uri(result.rejection["report_uri"])
        return bucket, key.rsplit("/", 1)[0] + "/"
    return None


def export_run(result: RunResult, out: Path, s3: BaseClient | None = None) -> Path | None:
    """Copy every object of the run's folder under `out`/<run-id>/; the path of its HTML report (None: no folder)."""
    folder = run_folder(result)
    if folder is None:
        return None
    bucket, prefix = folder
    s3 = s3 or boto3.client("s3", region_name=REGION)
    target = out / prefix.rstrip("/").rsplit("/", 1)[-1]
    report: Path | None = None
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            relative = item["Key"][len(prefix) :]
            path = target / relative
            if not relative or target.resolve() not in path.resolve().parents:
                continue  # a key that would land outside the run's folder (``..``) is not copied
            path.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, item["Key"], str(path))
            if relative == REPORT or relative.endswith(REJECTION_PAGE_SUFFIX):
                report = path
    return report if report is not None else target


def prepare_demo_folder(out: Path) -> None:
    """Empty `out` for a new demo, but only a folder an earlier demo made (or an empty or missing one)."""
    if out.exists() and any(out.iterdir()) and not (out / DEMO_MARKER).exists():
        raise FileExistsError(f"{out} holds files that no demo wrote; choose another --out")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / DEMO_MARKER).write_text("written by `batch-pipeline demo`; emptied by the next one\n")
