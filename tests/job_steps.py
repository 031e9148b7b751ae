"""The job loop's steps on the iteration's state as JSON: what the state machine hands `Submit job` and `Wait for job
to end`, and what it gets back (contracts.JobStep.payload), so tests assert on the shape the workflow sees."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from batch_pipeline.contracts import JobStep
from batch_pipeline.jobs import loop
from batch_pipeline.jobs.backends import BatchBackend
from batch_pipeline.storage.layout import RunFolder


def submit_job(
    state: dict[str, Any], backend: BatchBackend, folder: RunFolder, now: Callable[[], float] = time.time
) -> dict[str, Any]:
    return loop.submit_job(JobStep.model_validate(state), backend, folder, now=now).payload()


def check_job(
    state: dict[str, Any], backend: BatchBackend, folder: RunFolder, now: Callable[[], float] = time.time
) -> dict[str, Any]:
    return loop.check_job(JobStep.model_validate(state), backend, folder, now=now).payload()
