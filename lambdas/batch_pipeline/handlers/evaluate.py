"""Evaluate predictions: `{"run", "collect"}` -> the evaluation report, also written to evaluation.json.

Collect already joined every record to its reference or label and scored it (evaluation.streaming). This step
reads collect's predictions.jsonl once (one GetObject, streamed) and sums those per-record scores: running sums
for the ROUGE means, confusion counts for classification. It never rewrites predictions.jsonl and never reads
references.jsonl, so its memory does not grow with the number of records.
"""

from __future__ import annotations

from typing import Any

from batch_pipeline import settings
from batch_pipeline.contracts import RunRef
from batch_pipeline.observability import logger, metrics, tracer
from batch_pipeline.results.evaluation.streaming import summarize_predictions
from batch_pipeline.storage import s3io
from batch_pipeline.storage.layout import RunFolder


def evaluate_run(folder: RunFolder, collect: dict[str, Any] | None, metric: str, s3: Any) -> dict[str, Any]:
    """The report for a collected run; `metric` is the pipeline's evaluation ("rouge", "classification", "none")."""
    collect = collect or {}
    bucket = folder.bucket
    if metric == "none":
        evaluation: dict[str, Any] = {"metric": None, "skipped": "evaluation is off for this pipeline"}
    elif not collect.get("scoring") and not collect.get("references_joined"):
        evaluation = {"metric": None, "skipped": "the input carried no references or labels"}
    else:
        key = collect.get("predictions_key") or folder.predictions_key
        evaluation = summarize_predictions(s3io.lines(s3, bucket, key), metric, collect=collect)
        if not evaluation["records"] and not evaluation["references_without_target"]:
            evaluation = {"metric": None, "skipped": "the input carried no references or labels"}
    s3io.put_json(s3, bucket, folder.evaluation_key, evaluation, indent=2)
    return evaluation


@logger.inject_lambda_context(correlation_id_path="run.run_id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    folder = RunFolder.of(RunRef.model_validate(event["run"]))
    pipeline = settings.current().pipeline(folder.pipeline).pipeline
    evaluation = evaluate_run(folder, event.get("collect"), pipeline.evaluation, settings.client("s3"))
    if evaluation.get("metric"):
        metrics.add_dimension(name="pipeline", value=folder.pipeline)
        for name, values in (evaluation.get("rouge") or {}).items():
            if isinstance(values.get("fmeasure"), float):
                metrics.add_metric(name=f"{name}F", unit="None", value=values["fmeasure"])
    logger.info("evaluated", extra={"metric": evaluation.get("metric"), "scored": evaluation.get("scored")})
    return evaluation
