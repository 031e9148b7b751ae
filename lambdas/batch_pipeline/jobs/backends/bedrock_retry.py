"""Resubmitting a Bedrock job's failed records once (`retry_failed_records`).

An ended job whose output has error records is followed, inside its own Map iteration, by one retry of just those
records: a batch job when they reach the batch minimum, else on demand. `start_retry` writes the retry's input file
(the failed records, streamed from the job's input through a disk-backed id set) and returns the retry as the
iteration's next, queued job; the job loop submits and waits for it like any job. `end_retry` turns the ended retry
back into the original job with the retry under "retry", including where its output is.

The merge is not done here: collect reads the retry's output beside the job's own (`RawOutput.retry_output_key`)
and puts each retried answer in place of its record's error, in its one pass over the data (results.collect).
So job control never rewrites a job's output, and no record is sent to a model more than once per attempt.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections.abc import Iterable
from typing import Any

from batch_pipeline.contracts import Job, JobState
from batch_pipeline.jobs.backends import RawOutput
from batch_pipeline.storage import s3io
from batch_pipeline.storage.layout import INTERMEDIATE_TAGGING, RunFolder, retry_input_key

# The retry's job index: the original's with this suffix (job names allow one trailing letter).
RETRY_SUFFIX = "r"
# What the original job's state keeps while its retry runs, restored when the retry ends.
FIRST_ATTEMPT_FIELDS = (
    "name",
    "arn",
    "status",
    "state",
    "failure_reason",
    "output_uri",
    "input_uri",
    "route",
    "records",
    "record_counts",
    "model_invocations",
)
# The original's bookkeeping that does not describe the retry.
NOT_CARRIED = ("queued_at", "submitted_at", "record_counts", "last_refusal")


def retry_index(job: Job) -> str:
    """The retry's job index: the original's with RETRY_SUFFIX (it names the retry job and its token)."""
    return f"{job.index}{RETRY_SUFFIX}"


def start_retry(
    s3: Any, folder: RunFolder, job: Job, output: RawOutput, *, retry_name: str, min_records_per_job: int
) -> Job | None:
    """The queued retry of `job`'s failed records (named `retry_name`), its input file written; None when no
    record failed."""
    bucket = folder.bucket
    retry_key = retry_input_key(output.input_key)
    # Disk-backed, so a job whose every record failed does not hold them all in memory.
    with RecordSpool() as failed, tempfile.NamedTemporaryFile("wb", suffix=".jsonl") as retry_file:
        for line in output_lines(s3, bucket, output.output_key):
            if "error" in line:
                failed.add(str(line["recordId"]), b"")
        if not len(failed):
            return None
        records = 0
        for raw in s3io.lines(s3, bucket, output.input_key):
            if str(json.loads(raw).get("recordId")) in failed:
                retry_file.write(raw + b"\n")
                records += 1
        retry_file.flush()
        s3io.upload_file(s3, retry_file.name, bucket, retry_key, s3io.JSONL, tagging=INTERMEDIATE_TAGGING)
    original = job.model_dump(mode="json", exclude_unset=True)
    carried = Job.model_validate({key: value for key, value in original.items() if key not in NOT_CARRIED})
    # The retry writes under its own raw/<retry name>/: an on-demand original's checkpoint parts and
    # manifest.json.out stay its own, so the retry neither reads them as its answers nor overwrites them.
    queued = JobState(
        name=retry_name, arn=None, status="NotSubmitted", state="queued", output_uri=folder.raw_job_uri(retry_name)
    )
    return carried.with_state(queued).changed(
        first_attempt={key: getattr(job, key) for key in FIRST_ATTEMPT_FIELDS},
        token_index=retry_index(job),
        input_uri=folder.uri(retry_key),
        records=records,
        route="batch" if records >= min_records_per_job else "on-demand",
    )


def end_retry(job: Job, output: RawOutput, manifest_key: str | None) -> Job:
    """The original job again, done, with its ended retry (and where the retry's output is) under "retry"."""
    retry = job.model_dump(mode="json", exclude_unset=True)
    result = {key: value for key, value in retry.items() if key not in ("first_attempt", "token_index")}
    return Job.model_validate(
        result
        | (job.first_attempt or {})
        | {
            "done": True,
            "retry": {
                "name": job.name,
                "arn": job.arn,
                "status": job.status,
                "state": job.state,
                "route": job.route,
                "records": job.records,
                "failure_reason": job.failure_reason,
                "model_invocations": job.model_invocations,
                "manifest_key": manifest_key,
                # Counted by collect, which puts the retried answers in place of the errors.
                "recovered": None,
                "input_key": output.input_key,
                "output_key": output.output_key,
            },
        }
    )


def in_retry(job: Job) -> bool:
    return job.first_attempt is not None


def output_lines(s3: Any, bucket: str, key: str) -> Iterable[dict[str, Any]]:
    """The readable lines of an output object, one at a time; none when the object does not exist."""
    for line in s3io.lines_if_exists(s3, bucket, key) or ():
        try:
            yield json.loads(line)
        except ValueError:
            continue  # collect reports unreadable lines; the retry only needs readable ones


class RecordSpool:
    """recordId -> bytes on local disk (sqlite in a temporary file): a set or map that does not live in memory."""

    def __init__(self) -> None:
        # Owned past the constructor: closed (and deleted) in __exit__.
        self._file = tempfile.NamedTemporaryFile(suffix=".sqlite")  # noqa: SIM115
        self._db = sqlite3.connect(self._file.name)
        self._db.execute("CREATE TABLE spool (id TEXT PRIMARY KEY, body BLOB)")

    def add(self, record_id: str, body: bytes) -> None:
        self._db.execute("INSERT OR REPLACE INTO spool VALUES (?, ?)", (record_id, body))

    def get(self, record_id: str) -> bytes | None:
        row = self._db.execute("SELECT body FROM spool WHERE id = ?", (record_id,)).fetchone()
        return None if row is None else bytes(row[0])

    def __contains__(self, record_id: object) -> bool:
        return self._db.execute("SELECT 1 FROM spool WHERE id = ?", (record_id,)).fetchone() is not None

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM spool").fetchone()[0])

    def __enter__(self) -> RecordSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self._db.close()
        self._file.close()
