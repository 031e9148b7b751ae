"""Each job's state as a small S3 object in the run folder, so the workflow's state carries references, not lists.

A state's payload is at most 256 KB (Step Functions quotas), so a run's job list cannot travel in the state once a
run has a few hundred jobs. Intake writes each planned job to `<run>/jobs/<index>.json` and starts the run with only
`{"index": i}` per job; job control reads its job from there and writes the job's latest state back after every
step. On the success path collect is the one step that lists `jobs/`: it keeps the jobs' final states in its
collect.json, where the manifest step reads them; on the failure path, stopping the run's jobs and the failure
manifest read them here. Jobs are contracts.Job; a list the state carries is contracts.JobRef references, or whole
jobs (recollect hands them in from a manifest) used as they are, so both resolve the same way.

Also here: the task token a waiting job's iteration left for the job-state event handler, found from the job name
alone (`job-tokens/<job name>.json`), because an EventBridge job-state event names the job, not the run. Job control
deletes a job's token once the job has ended; the output bucket's lifecycle rule expires those a failed run leaves
behind (stacks/storage.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from batch_pipeline.contracts import Job, JobRef
from batch_pipeline.storage import s3io
from batch_pipeline.storage.layout import RunFolder, token_key


def is_reference(ref: JobRef) -> bool:
    """A Map item or iteration result that names a job by index only (no name or state of its own)."""
    return "name" not in (ref.model_extra or {})


def save_job(s3: Any, folder: RunFolder, job: Job) -> None:
    s3io.put_json(s3, folder.bucket, folder.job_key(job.index), job.stored())


def load_job(s3: Any, folder: RunFolder, index: int | str) -> Job:
    return Job.model_validate(s3io.read_json(s3, folder.bucket, folder.job_key(index)))


def load_jobs(s3: Any, folder: RunFolder) -> list[Job]:
    """Every job of the run, in index order, from the `jobs/` folder."""
    keys = s3io.list_keys(s3, folder.bucket, folder.jobs_prefix)
    found = [_load_key(s3, folder, key) for key in keys]
    return sorted(found, key=lambda job: (str(type(job.index)), job.index))


def _load_key(s3: Any, folder: RunFolder, key: str) -> Job:
    return Job.model_validate(s3io.read_json(s3, folder.bucket, key))


def resolve_job(s3: Any, folder: RunFolder, ref: JobRef) -> Job:
    """The whole job a reference names (read from the run's `jobs/` folder), or the job the state carries."""
    return load_job(s3, folder, ref.index) if is_reference(ref) else Job.model_validate(ref.model_dump())


def resolve_jobs(s3: Any, folder: RunFolder, refs: Sequence[JobRef] | None) -> list[Job]:
    """The full jobs for what the state carries: references (or nothing) are read from the run's `jobs/` folder;
    whole jobs (recollect hands them in from a manifest) are used as they are."""
    if refs and not any(is_reference(ref) for ref in refs):
        return [Job.model_validate(ref.model_dump()) for ref in refs]
    return load_jobs(s3, folder)


def save_token(s3: Any, bucket: str, job_name: str, token: str, step: dict[str, Any]) -> None:
    s3io.put_json(s3, bucket, token_key(job_name), {"task_token": token, "step": step})


def load_token(s3: Any, bucket: str, job_name: str) -> dict[str, Any] | None:
    """The waiting iteration's token, or None when no run of this stack waits on the job (no such object)."""
    token: dict[str, Any] | None = s3io.read_json_if_exists(s3, bucket, token_key(job_name))
    return token


def delete_token(s3: Any, bucket: str, job_name: str) -> None:
    """The job ended and its iteration was resumed: no event needs its token any more."""
    s3io.delete_object(s3, bucket, token_key(job_name))
