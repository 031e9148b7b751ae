"""Waiting for a job's end on a task token: the wait step leaves the token, the job-state event (or the wait step
itself, for a job that already ended) hands it back.

Step Functions has no `.sync` integration for Bedrock batch jobs, so both backends wait the same way: the
`.waitForTaskToken` task "Wait for job to end" (stacks/workflow.py; batch_pipeline.jobs.loop.run_step) leaves its
token where the job-state event handler finds it from the job name alone (an EventBridge job-state event names the
job, not the run: `job-tokens/<job name>.json`, batch_pipeline.storage.job_store), checks the job once, and resumes
its own iteration at once when the job already ended, so an event that came before the token was stored is never
needed. `wake` is the event side: a terminal job-state event sends SendTaskSuccess with the iteration's own state,
and the iteration's next wait step checks the job directly, so an event only wakes the run and never decides its
outcome. The wait's timeout (`backstop_seconds`) is the backstop for a lost event. Once a wait step finds its job
ended it deletes the job's token; those a failed run leaves behind expire (stacks/storage.py).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from batch_pipeline import settings
from batch_pipeline.contracts import JobStateEvent, JobStep
from batch_pipeline.storage.job_store import load_token, save_token
from batch_pipeline.storage.s3io import error_code

# A token that was already used or whose wait timed out (the backstop fired first): nothing is waiting on it.
SPENT_TOKEN_ERRORS = ("TaskTimedOut", "InvalidToken", "TaskDoesNotExist")
Outcome = Literal["resumed", "spent", "ignored"]


def backstop_seconds() -> int:
    """How long a waiting iteration sleeps on its task token before it checks the job itself (the backstop for a
    lost job-state event); JOB_BACKSTOP_SECONDS (local mode rehearses a lost event with a short one)."""
    return max(1, int(settings.current().job_backstop_seconds))


def leave_token(s3: Any, bucket: str, task_token: str, step: JobStep) -> None:
    """The token and the iteration's state the event handler resumes it with (the next wait checks the job)."""
    if step.job.name is None:
        raise ValueError(f"job {step.job.index} has no name, so no job-state event could find its token")
    state = step.model_dump(mode="json", exclude_unset=True, include={"run", "job", "attempt"})
    save_token(s3, bucket, step.job.name, task_token, state | {"backstop_seconds": backstop_seconds()})


def resume(sfn: Any, task_token: str, output: dict[str, Any]) -> bool:
    """SendTaskSuccess; False when nothing waits on the token any more (used, or its wait timed out)."""
    try:
        sfn.send_task_success(taskToken=task_token, output=json.dumps(output))
    except Exception as error:  # only the spent-token errors are expected; the rest re-raise
        if error_code(error) in SPENT_TOKEN_ERRORS:
            return False
        raise
    return True


def wake(event: JobStateEvent, s3: Any, sfn: Any, bucket: str) -> tuple[Outcome, str]:
    """Resume the iteration that waits on the job an event names: (outcome, why). Non-terminal states, jobs this
    stack did not start (no token) and spent tokens (a duplicate event, or the backstop fired first) do nothing."""
    if not event.terminal:
        return "ignored", f"{event.job_name} is {event.status}, not ended"
    token = load_token(s3, bucket, event.job_name)
    if token is None:
        return "ignored", "no waiting run"
    if not resume(sfn, token["task_token"], {**token["step"], "woken_by": {"status": event.status}}):
        return "spent", "the token was already used, or its wait timed out"
    return "resumed", f"{event.job_name} is {event.status}"
