"""Plan jobs: read the run's intake report, write each planned job to the run's jobs/ folder, return references.

The Map's items are `{"index": i}`: a job's full plan lives in `<run>/jobs/<i>.json` (batch_pipeline.job_store), so
the state stays small however many jobs the run has."""

from __future__ import annotations

import json
import os
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from batch_pipeline.backends.runs import run_bucket, run_prefix
from batch_pipeline.config import parse_runtime_pipelines
from batch_pipeline.contracts import PlanResult, RunRef
from batch_pipeline.job_store import save_job
from batch_pipeline.observability import logger, metrics, tracer
from batch_pipeline.plan import plan_jobs, plan_references

_s3 = boto3.client("s3")


@logger.inject_lambda_context(correlation_id_path="run.run_id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    run = RunRef.model_validate(event["run"]).model_dump(exclude_none=True)
    pipeline = parse_runtime_pipelines(os.environ["PIPELINES"])[run["pipeline"]]
    key = run.get("intake_report_key") or f"{run_prefix(run)}intake.json"
    report = json.loads(_s3.get_object(Bucket=run_bucket(run), Key=key)["Body"].read())
    jobs = plan_jobs(run, report, pipeline)
    logger.info("planned jobs", extra={"jobs": [j["name"] for j in jobs], "records": sum(j["records"] for j in jobs)})
    PlanResult.model_validate({"jobs": jobs, "backend": pipeline.backend})
    for job in jobs:
        save_job(_s3, run, job)
    return plan_references(jobs, pipeline.backend)
