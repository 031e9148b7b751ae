"""A successful run lists its jobs/ folder once: collect reads every job's final state there and keeps them in its
collect.json, which the manifest step reads back; only the failure path (stopping the jobs, the failure manifest)
reads jobs/ again, because nothing else has them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from unittest import mock

from botocore.client import BaseClient

from batch_pipeline.storage.layout import JOBS
from batch_pipeline_local.emulator.run import run_file
from batch_pipeline_local.emulator.session import local_aws
from tests.e2e.test_bedrock_runs import transcript
from tests.e2e.test_local_runs import run_folder, write


@contextlib.contextmanager
def jobs_listings() -> Iterator[list[str]]:
    """The Prefix of every ListObjectsV2 of a run's jobs/ folder made while the block runs (any caller)."""
    listed: list[str] = []
    original = BaseClient._make_api_call

    def recording(client: BaseClient, operation: str, params: dict):
        if operation == "ListObjectsV2" and str(params.get("Prefix", "")).endswith("/" + JOBS):
            listed.append(params["Prefix"])
        return original(client, operation, params)

    # Entered before local mode's own patch, which then calls through this one.
    with mock.patch.object(BaseClient, "_make_api_call", recording):
        yield listed


def test_a_successful_run_lists_its_jobs_once_and_the_manifest_has_every_job(template, tmp_path):
    records = [transcript(i) for i in range(250)]
    with jobs_listings() as listed, local_aws(template=template) as local:
        result = run_file(local, write(tmp_path, "once.jsonl", records), "bedrock-summarize")
        folder = run_folder(local, result)
    assert result.manifest["status"] == "SUCCEEDED"
    assert listed == [folder.jobs_prefix]  # collect's, and no other step's
    # The manifest still lists every job, with what only the job records carry (name, state, billed requests).
    assert [job["state"] for job in result.manifest["jobs"]] == ["succeeded"] * len(result.manifest["jobs"])
    assert result.manifest["model_invocations"]["total"] == len(records)
