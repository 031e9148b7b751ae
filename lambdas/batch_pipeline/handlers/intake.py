"""Intake Lambda: S3 ObjectCreated notification -> validate, shard and start the run (or quarantine the file).

Environment: PIPELINES, OUTPUT_BUCKET, STATE_MACHINE_ARN, TOPIC_ARN (optional), INTAKE_WORKDIR (optional, default
the system temp dir: /tmp, sized by the function's ephemeral storage).
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import S3Event
from aws_lambda_powertools.utilities.typing import LambdaContext

from ..config import parse_runtime_pipelines
from ..intake_service import IntakeService, IntakeSettings
from ..observability import logger, metrics, tracer

_METRIC_BY_STATUS = {
    "started": "FilesAccepted",
    "rejected": "FilesRejected",
    "duplicate": "DuplicateEvents",
    "unknown_pipeline": "UnknownPipelineUploads",
}


@lru_cache(maxsize=1)
def _service() -> IntakeService:
    import boto3  # here, not at import time: tests and local mode set up moto before the first call

    settings = IntakeSettings(
        pipelines=parse_runtime_pipelines(os.environ["PIPELINES"]),
        output_bucket=os.environ["OUTPUT_BUCKET"],
        state_machine_arn=os.environ["STATE_MACHINE_ARN"],
        topic_arn=os.environ.get("TOPIC_ARN") or None,
        workdir=os.environ.get("INTAKE_WORKDIR") or None,
    )
    topic = boto3.client("sns") if settings.topic_arn else None
    return IntakeService(boto3.client("s3"), boto3.client("stepfunctions"), topic, settings, log=_log)


def _log(level: str, message: str, **keys: Any) -> None:
    getattr(logger, level)(message, extra=keys)


@logger.inject_lambda_context(correlation_id_path='Records[0].responseElements."x-amz-request-id"')
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    service = _service()
    results = []
    for record in S3Event(event).records:
        if not record.event_name.startswith("ObjectCreated:"):
            continue
        # Keys arrive URL-encoded, with '+' for a space.
        key = unquote_plus(record.s3.get_object.key)
        bucket = record.s3.bucket.name
        logger.append_keys(bucket=bucket, key=key)
        result = service.process(bucket, key, record.s3.get_object.version_id)
        if result.get("run_id"):
            logger.set_correlation_id(result["run_id"])
        logger.info("intake finished", extra=result)
        metric = _METRIC_BY_STATUS.get(result["status"])
        if metric:
            metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
        counts = result.get("counts")
        if counts:
            metrics.add_metric(name="RecordsValid", unit=MetricUnit.Count, value=counts["valid"])
            metrics.add_metric(name="RecordsRejected", unit=MetricUnit.Count, value=counts["rejected"])
        results.append(result)
    return {"results": results}
