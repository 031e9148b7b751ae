"""Evaluate predictions: `{"run", "collect"}` -> the evaluation report, also written to evaluation.json.

Collect already joined every record to its reference or label and scored it (evaluation.streaming). This step
reads collect's predictions.jsonl once (one GetObject, streamed) and sums those per-record scores: running sums
for the ROUGE means, confusion counts for classification. It never rewrites predictions.jsonl and never reads
references.jsonl, so its memory does not grow with the number of records.
"""

from __future__ import annotations

from typing import Any

from batch_pipeline import settings
from batch_pipeline.observability import logger, metrics, tracer
from batch_pipeline.results.evaluation.streaming import summarize_predictions
from batch_pipeline.storage import s3io
from batch_pipeline.storage.layout import predictions_key
from batch_pipeline.storage.runs import run_bucket, run_prefix


def evaluate_run(run: dict[str, Any], collect: dict[str, Any] | None, metric: str, s3: Any) -> dict[str, Any]:
    """The report for a collected run; `metric` is the pipeline's evaluation ("rouge", "classification", "none")."""
    collect = collect or {}
    bucket, prefix = run_bucket(run), run_prefix(run)
    if metric == "none":
        evaluation: dict[str, Any] = {"metric": None, "skipped": "evaluation is off for this pipeline"}
    elif not collect.get("scoring") and not collect.get("references_joined"):
        evaluation = {"metric": None, "skipped": "the input carried no references or labels"}
    else:
        key = collect.get("predictions_key") or predictions_key(prefix)
        evaluation = summarize_predictions(s3io.lines(s3, bucket, key), metric, collect=collect)
        if not evaluation["records"] and not evaluation["references_without_target"]:
            evaluation = {"metric": None, "skipped": "the input carried no references or labels"}
    s3io.put_json(s3, bucket, f"{prefix}evaluation.json", evaluation, indent=2)
    return evaluation


@logger.inject_lambda_context(correlation_id_path="run.run_id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    run = event["run"]
    pipeline = settings.current().pipeline(run["pipeline"]).pipeline
    evaluation = evaluate_run(run, event.get("collect"), pipeline.evaluation, settings.client("s3"))
    if evaluation.get("metric"):
        metrics.add_dimension(name="pipeline", value=run["pipeline"])
        for name, values in (evaluation.get("rouge") or {}).items():
            if isinstance(values.get("fmeasure"), float):
                metrics.add_metric(name=f"{name}F", unit="None", value=values["fmeasure"])
    logger.info("evaluated", extra={"metric": evaluation.get("metric"), "scored": evaluation.get("scored")})
    return evaluation
