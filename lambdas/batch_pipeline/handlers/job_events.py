"""Job-state events: resume the Map iteration waiting on a backend job when the job ends (batch_pipeline.jobs.tokens).

EventBridge delivers (best effort, possibly more than once):
- Bedrock: source `aws.bedrock`, detail-type `Batch Inference Job State Change`, the job in `detail.batchJobName` /
  `detail.batchJobArn`, its status in `detail.status`
  (https://docs.aws.amazon.com/bedrock/latest/userguide/monitoring-eventbridge-how-it-works.html).
- SageMaker: source `aws.sagemaker`, detail-type `SageMaker Transform Job State Change`, whose detail mirrors
  DescribeTransformJob: `TransformJobName`, `TransformJobStatus`
  (https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from batch_pipeline import settings
from batch_pipeline.contracts import JobStateEvent
from batch_pipeline.jobs.tokens import wake
from batch_pipeline.observability import logger, metrics, tracer

BEDROCK_TERMINAL = ("Completed", "PartiallyCompleted", "Failed", "Stopped", "Expired")
SAGEMAKER_TERMINAL = ("Completed", "Failed", "Stopped")
_METRIC_BY_OUTCOME = {"resumed": "JobEventsResumed", "spent": "JobEventsDuplicate"}


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
    logger.append_keys(job_name=job.job_name)
    outcome, reason = wake(job, s3, settings.client("stepfunctions"), bucket)
    logger.info("job-state event", extra={"outcome": outcome, "reason": reason, "status": job.status})
    if outcome in _METRIC_BY_OUTCOME:
        metrics.add_metric(name=_METRIC_BY_OUTCOME[outcome], unit=MetricUnit.Count, value=1)
    result = {"outcome": outcome, "job_name": job.job_name, "reason": reason}
    return result | ({"status": job.status} if outcome == "resumed" else {})
