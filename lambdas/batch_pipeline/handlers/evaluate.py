"""Evaluate predictions: score predictions.jsonl against references.jsonl, write evaluation.json,
and put each record's scores into predictions.jsonl."""

from __future__ import annotations

import json
import os
import tempfile

import boto3
import orjson

from batch_pipeline.backends.runs import run_bucket, run_prefix
from batch_pipeline.config import parse_runtime_pipelines
from batch_pipeline.evaluation import evaluate_files
from batch_pipeline.observability import logger, metrics, tracer
from ..jsonl import body_lines

_s3 = boto3.client("s3")


def _lines(bucket: str, key: str):
    return body_lines(_s3.get_object(Bucket=bucket, Key=key)["Body"])


def _exists(bucket: str, key: str) -> bool:
    try:
        _s3.head_object(Bucket=bucket, Key=key)
    except _s3.exceptions.ClientError as error:
        if error.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


@logger.inject_lambda_context(correlation_id_path="run.run_id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context) -> dict:
    run = event["run"]
    pipeline = parse_runtime_pipelines(os.environ["PIPELINES"])[run["pipeline"]].pipeline
    bucket, prefix = run_bucket(run), run_prefix(run)
    predictions_key, references_key = f"{prefix}predictions.jsonl", f"{prefix}references.jsonl"
    if pipeline.evaluation == "none" or not _exists(bucket, references_key):
        reason = "evaluation is off for this pipeline" if pipeline.evaluation == "none" else "the input carried no references or labels"
        evaluation = {"metric": None, "skipped": reason}
    else:
        evaluation, per_record = evaluate_files(_lines(bucket, predictions_key), _lines(bucket, references_key),
                                                pipeline.evaluation)
        _merge_scores(bucket, predictions_key, per_record)
        metrics.add_dimension(name="pipeline", value=run["pipeline"])
        for name, values in (evaluation.get("rouge") or {}).items():
            if isinstance(values.get("fmeasure"), float):
                metrics.add_metric(name=f"{name}F", unit="None", value=values["fmeasure"])
    _s3.put_object(Bucket=bucket, Key=f"{prefix}evaluation.json", ContentType="application/json",
                   Body=json.dumps(evaluation, indent=2).encode())
    logger.info("evaluated", extra={"metric": evaluation.get("metric"), "scored": evaluation.get("scored")})
    return evaluation


def _merge_scores(bucket: str, key: str, per_record: dict[str, dict]) -> None:
    """Rewrite predictions.jsonl with a `scores` field per record, streaming through a temp file."""
    with tempfile.TemporaryFile() as spool:
        for line in _lines(bucket, key):
            if not line.strip():
                continue
            record = orjson.loads(line)
            scores = per_record.get(str(record.get("id")))
            if scores is not None:
                record["metrics"] = scores
            spool.write(orjson.dumps(record) + b"\n")
        spool.seek(0)
        _s3.upload_fileobj(spool, bucket, key, ExtraArgs={"ContentType": "application/x-ndjson"})
