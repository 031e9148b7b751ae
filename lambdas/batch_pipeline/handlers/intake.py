"""Intake Lambda: an S3 "Object Created" event -> validate, shard and start the run, or quarantine the file.

Accepts both shapes S3 can deliver: the EventBridge "Object Created" event (what the stack's rule sends) and
S3 event notification records (`Records[]`). Keys arrive URL-encoded ('+' for a space) and are decoded here.

Environment: PIPELINES, OUTPUT_BUCKET, STATE_MACHINE_ARN, TOPIC_ARN (optional), INTAKE_WORKDIR (optional; default
the system temp dir, i.e. /tmp sized by the function's ephemeral storage).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import S3Event, S3EventBridgeNotificationEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from batch_pipeline import settings
from batch_pipeline.intake.service import IntakeService, IntakeSettings
from batch_pipeline.observability import logger, metrics, tracer

_METRIC_BY_STATUS = {
    "started": "FilesAccepted",
    "rejected": "FilesRejected",
    "duplicate": "DuplicateEvents",
    "unknown_pipeline": "UnknownPipelineUploads",
}


@lru_cache(maxsize=1)
def _service() -> IntakeService:
    env = settings.current()
    intake_settings = IntakeSettings(
        pipelines=env.pipelines,
        output_bucket=env.require("output_bucket"),
        state_machine_arn=env.require("state_machine_arn"),
        topic_arn=env.topic_arn,
        workdir=env.intake_workdir,
    )
    topic = settings.client("sns") if intake_settings.topic_arn else None
    return IntakeService(settings.client("s3"), settings.client("stepfunctions"), topic, intake_settings, log=_log)


def _log(level: str, message: str, **keys: Any) -> None:
    getattr(logger, level)(message, extra=keys)


def created_objects(event: dict[str, Any]) -> Iterator[tuple[str, str, str, str | None]]:
    """(bucket, decoded key, key as sent, version id) for each object-created notice in the event."""
    if "Records" in event:
        for record in S3Event(event).records:
            if record.event_name.startswith("ObjectCreated:"):
                obj = record.s3.get_object
                yield record.s3.bucket.name, unquote_plus(obj.key), obj.key, obj.get("versionId")
    elif event.get("detail-type") == "Object Created":
        detail = S3EventBridgeNotificationEvent(event).detail
        raw = detail.object.raw_event
        yield detail.bucket.name, detail.object.key, raw["key"], raw.get("version-id")
    else:
        logger.warning("not an S3 object-created event; ignored", extra={"event_keys": sorted(event)})


@logger.inject_lambda_context(
    correlation_id_path='"detail"."request-id" || Records[0].responseElements."x-amz-request-id"'
)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    service = _service()
    results = []
    for bucket, key, raw_key, version_id in created_objects(event):
        logger.append_keys(bucket=bucket, key=key)
        result = service.process(bucket, key, version_id, raw_key=raw_key)
        if result.get("run_id"):
            logger.set_correlation_id(result["run_id"])
        logger.info("intake finished", extra=result)
        metric = _METRIC_BY_STATUS.get(result["status"])
        if metric:
            metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
        if "counts" in result:
            metrics.add_metric(name="RecordsValid", unit=MetricUnit.Count, value=result["counts"]["valid"])
            metrics.add_metric(name="RecordsRejected", unit=MetricUnit.Count, value=result["counts"]["rejected"])
        results.append(result)
    return {"results": results}
