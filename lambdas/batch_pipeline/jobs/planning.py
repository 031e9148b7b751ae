"""Plan a run's backend jobs from the intake report: the items the workflow's Map runs (intake plans them, see
batch_pipeline.intake.service, and writes each to the run's jobs/ folder).

SageMaker: one transform job over the run's shards/ prefix. SageMaker hands whole objects to
instances, and intake already wrote at least one shard per instance, even in records and bytes, so one job
with InstanceCount=N keeps every instance busy. Bedrock: one job per job file intake wrote, each
already sized to the quotas; a file under the batch minimum is one job on the "on-demand" route (InvokeModel).
"""

from __future__ import annotations

from typing import Any

from batch_pipeline.config.runtime import RuntimePipeline
from batch_pipeline.contracts import Job, Route
from batch_pipeline.intake.sharding import PlanError
from batch_pipeline.jobs.backends.sagemaker import transform_job_name
from batch_pipeline.storage.layout import RunFolder


def plan_jobs(folder: RunFolder, intake_report: dict[str, Any], pipeline: RuntimePipeline) -> list[Job]:
    shards = intake_report.get("shards") or []
    if not shards:  # a bug or a tampered run folder: an accepted intake always has shards
        raise PlanError("no_shards", f"intake report of run {folder.run_id} lists no shards")
    if pipeline.backend == "sagemaker":
        name = transform_job_name(folder.run_id, 0)
        return [
            Job(
                index=0,
                name=name,
                input_uri=folder.uri(folder.shards_prefix),
                output_uri=folder.raw_job_uri(name),
                records=sum(int(s["records"]) for s in shards),
                bytes=sum(int(s["bytes"]) for s in shards),
                shard_keys=[s["key"] for s in shards],
                route="batch",
            )
        ]
    from batch_pipeline.jobs.backends.bedrock import bedrock_job_name  # only Bedrock runs need it

    # "on-demand": fewer records than a batch job's minimum; the job runs through InvokeModel instead.
    route: Route = "on-demand" if intake_report.get("route") == "on-demand" else "batch"
    jobs = []
    for index, shard in enumerate(shards):
        name = bedrock_job_name(folder.run_id, index)
        jobs.append(
            Job(
                index=index,
                name=name,
                input_uri=folder.uri(shard["key"]),
                output_uri=folder.raw_job_uri(name),
                records=int(shard["records"]),
                bytes=int(shard["bytes"]),
                shard_keys=[shard["key"]],
                route=route,
            )
        )
    return jobs


def plan_references(jobs: list[Job], backend: str) -> dict[str, Any]:
    """The plan as the execution input carries it: one `{"index"}` per job (the jobs themselves are in S3)."""
    return {"backend": backend, "count": len(jobs), "jobs": [{"index": job.index} for job in jobs]}
