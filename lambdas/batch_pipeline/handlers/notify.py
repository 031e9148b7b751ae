"""Notify: publish a run's outcome (status, headline metrics, where the files are) to the topic."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from batch_pipeline import settings
from batch_pipeline.contracts import NotifyEvent
from batch_pipeline.observability import logger, metrics, tracer
from batch_pipeline.results.notifications import run_message


@logger.inject_lambda_context(correlation_id_path="run.run_id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    NotifyEvent.model_validate(event)  # the contract; the manifest goes on as the state carries it
    subject, text, attributes = run_message(event["manifest"])
    try:
        response = settings.client("sns").publish(
            TopicArn=settings.current().require("topic_arn"),
            Subject=subject,
            Message=text,
            MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
        )
    except Exception:
        # The state machine catches this as its own failed step; the run's status and manifest stay as they are.
        metrics.add_metric(name="NotificationsFailed", unit=MetricUnit.Count, value=1)
        raise
    logger.info("notified", extra={"subject": subject, "message_id": response["MessageId"]})
    return {"message_id": response["MessageId"]}
