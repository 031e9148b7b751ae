"""Job-state events: resume the Map iteration waiting on a backend job when the job ends.

EventBridge delivers (best effort, possibly more than once):
- Bedrock: source `aws.bedrock`, detail-type `Batch Inference Job State Change`, the job in `detail.batchJobName` /
  `detail.batchJobArn`, its status in `detail.status`
  (https://docs.aws.amazon.com/bedrock/latest/userguide/monitoring-eventbridge-how-it-works.html).
- SageMaker: source `aws.sagemaker`, detail-type `SageMaker Transform Job State Change`, whose detail mirrors
  DescribeTransformJob: `TransformJobName`, `TransformJobStatus`
  (https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html).

The waiting iteration left its task token in `job-tokens/<job name>.json` (handlers/job_control.py, "wait"). A
terminal status sends SendTaskSuccess with the iteration's own state, and the iteration's next wait step checks the
job directly, so the event only wakes the run and never decides its outcome. Non-terminal states, jobs this stack
did not start (no token) and spent tokens (a duplicate event, or the backstop fired first) are ignored.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from batch_pipeline import settings
from batch_pipeline.contracts import JobStateEvent
from batch_pipeline.handlers.job_control import resume
from batch_pipeline.observability import logger, metrics, tracer
from batch_pipeline.storage.job_store import load_token

BEDROCK_TERMINAL = ("Completed", "PartiallyCompleted", "Failed", "Stopped", "Expired")
SAGEMAKER_TERMINAL = ("Completed", "Failed", "Stopped")


def parse(event: dict[str, Any]) -> JobStateEvent | None:
    """The job and status an event names, or None for an event of another kind."""
    detail = event.get("detail") or {}
    if event.get("source") == "aws.bedrock" and event.get("detail-type") == "Batch Inference Job State Change":
        name = detail.get("batchJobName") or detail.get("jobName")
        status = str(detail.get("status") or detail.get("jobStatus") or "")
        return JobStateEvent(job_name=name, status=status, terminal=status in BEDROCK_TERMINAL) if name else None
    if event.get("source") == "aws.sagemaker" and event.get("detail-type") == "SageMaker Transform Job State Change":
        name, status = detail.get("TransformJobName"), str(detail.get("TransformJobStatus") or "")
        return JobStateEvent(job_name=name, status=status, terminal=status in SAGEMAKER_TERMINAL) if name else None
    return None


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle(event, settings.client("s3"), settings.current().require("output_bucket"))


def handle(event: dict[str, Any], s3: Any, bucket: str) -> dict[str, Any]:
    job = parse(event)
    if job is None:
        logger.warning("not a job-state event", extra={"source": event.get("source"), "type": event.get("detail-type")})
        return {"outcome": "ignored", "reason": "not a job-state event"}
    if not job.terminal:
        return {"outcome": "ignored", "reason": f"{job.job_name} is {job.status}, not ended", "job_name": job.job_name}
    token = load_token(s3, bucket, job.job_name)
    if token is None:
        logger.info("no run waits on this job", extra={"job_name": job.job_name})
        return {"outcome": "ignored", "reason": "no waiting run", "job_name": job.job_name}
    resumed = resume(token["task_token"], {**token["step"], "woken_by": {"status": job.status}})
    logger.append_keys(job_name=job.job_name)
    if not resumed:
        metrics.add_metric(name="JobEventsDuplicate", unit=MetricUnit.Count, value=1)
        return {"outcome": "spent", "job_name": job.job_name}
    metrics.add_metric(name="JobEventsResumed", unit=MetricUnit.Count, value=1)
    return {"outcome": "resumed", "job_name": job.job_name, "status": job.status}
