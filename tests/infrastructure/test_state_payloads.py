"""Every state's payload for a run of N Bedrock jobs, computed from the real planning, intake, job-control and
manifest code and the synthesized definition's paths, against Step Functions' 256 KB payload quota (moto does not
enforce it). https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html: "Maximum input or output
size for a task, state, or execution: 256 KiB of data as a UTF-8 encoded string". The execution's own input (what
intake sends to StartExecution) is held to the same quota: the API reference gives StartExecution's `input` and
ExecutionStartedEventDetails' `input` a maximum length of 262144 bytes of UTF-8
(https://docs.aws.amazon.com/step-functions/latest/apireference/API_ExecutionStartedEventDetails.html)."""

from __future__ import annotations

import copy
import json

import pytest

from batch_pipeline.contracts import Job, JobState, JobStep
from batch_pipeline.intake.service import execution_input
from batch_pipeline.jobs import loop as job_loop
from batch_pipeline.jobs.backends import BatchBackend
from batch_pipeline.jobs.planning import plan_jobs
from batch_pipeline.results.collect import PER_JOB_FIELDS, JobTally, state_result, with_details
from batch_pipeline.results.finish import state_summary
from batch_pipeline.results.manifest import build_manifest
from batch_pipeline.results.report import ReportTally
from batch_pipeline.storage.layout import RunFolder
from batch_pipeline_local.project import load_pipeline

QUOTA = 256 * 1024
RUN = {
    "run_id": "calls-2026-12-01-" + "a" * 16,
    "pipeline": "bedrock-summarize",
    "backend": "bedrock",
    "model": "anthropic.claude-3-haiku-20240307-v1:0",
    "output_bucket": "llmbatchpipeline-output-123456789012",
    "run_prefix": "runs/bedrock-summarize/calls-2026-12-01-" + "a" * 16 + "/",
    "input": {
        "bucket": "llmbatchpipeline-input-123456789012",
        "key": "bedrock-summarize/calls.jsonl",
        "version_id": "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
        "etag": "d41d8cd98f00b204e9800998ecf8427e",
    },
    "counts": {"total": 10_000_000, "valid": 10_000_000, "rejected": 0},
    "ids_assigned": False,
    "started_at": "2026-12-01T20:00:00+00:00",
}


class DoneBackend(BatchBackend):
    """Answers like Bedrock does for a job that completed: the real JobState with an ARN and record counts."""

    name = "bedrock"

    def __init__(self):
        pass

    def job_name(self, run, job):
        return job.name

    def submit(self, run, job):
        return JobState(
            name=job.name,
            arn=f"arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/{job.index:012d}",
            status="Completed",
            state="succeeded",
            output_uri=job.output_uri,
            record_counts={"totalRecordCount": job.records},
        )

    status = submit

    def stop(self, run, job):
        return self.submit(RunFolder.of(run), job)

    def raw_outputs(self, run, job):
        return []


def get(document, path: str):
    """A JSONPath reference path ($.a.b, $$.Map.Item.Value) as the definition uses them."""
    if path == "$":
        return document
    value = document
    for part in path.removeprefix("$.").split("."):
        value = value[part]
    return value


def parameters(template: dict, document: dict, context: dict | None = None) -> dict:
    out = {}
    for key, value in template.items():
        if key.endswith(".$"):
            out[key[:-2]] = get(context, value[1:]) if value.startswith("$$.") else get(document, value)
        elif isinstance(value, dict):
            out[key] = parameters(value, document, context)
        else:
            out[key] = value
    return out


def put(document: dict, path: str | None, result):
    if path is None:
        return document
    if path == "$":
        return result
    document = copy.copy(document)
    document[path.removeprefix("$.")] = result
    return document


def size(value) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


def worst_case_report() -> dict:
    """report.html's aggregates (collect's `report`) at their largest: every kept text escapes to its byte budget."""
    tally = ReportTally()
    text = "\U0001f600\x01" * 5000
    scores = {"precision": 0.5, "recall": 0.5, "fmeasure": 0.5}
    tally.add(
        [
            {
                "id": text + str(i),
                "prediction": text,
                "reference": text,
                "metrics": {t: scores | {"fmeasure": i / 100} for t in ("rouge1", "rouge2", "rougeL", "rougeLsum")},
            }
            for i in range(100)
        ]
    )
    tally.add([{"id": i, "prediction": None, "error": {"code": text + str(i), "message": text}} for i in range(100)])
    return tally.summary()


def payloads(states: dict, jobs_count: int, start=execution_input, to_state=state_result) -> dict[str, int]:
    """The largest input or output of each main-path state, run with the real code on `jobs_count` jobs; `start`
    builds the StartExecution input from the run and its planned jobs (intake's own function by default), and
    `to_state` makes collect's result into what the collect handler returns (its own function by default)."""
    pipeline = load_pipeline("bedrock-summarize")
    report = {
        "route": "batch",
        "shards": [
            {"key": f"{RUN['run_prefix']}shards/job-{i:05d}.jsonl", "records": 50_000, "bytes": 400_000_000}
            for i in range(jobs_count)
        ],
    }
    sizes: dict[str, int] = {}

    def seen(name, *values):
        sizes[name] = max(sizes.get(name, 0), *(size(v) for v in values))

    def task(name, document, result):
        state = states[name]
        payload = parameters(state["Parameters"], document)
        after = put(document, state.get("ResultPath", "$"), result)
        seen(name, document, payload, result, after)
        return after

    folder = RunFolder.of(RUN)
    planned = plan_jobs(folder, report, pipeline)
    # What intake starts the run with; the planned jobs themselves go to <run>/jobs/ (job_store).
    started = start(RUN, planned, "bedrock")
    seen("StartExecution input", started)
    document = parameters(states["Start run"]["Parameters"], started)
    seen("Start run", started, document)
    run_jobs = states["Run jobs"]
    results = []
    for item in get(document, run_jobs["ItemsPath"]):
        step = parameters(run_jobs["ItemSelector"], document, {"Map": {"Item": {"Value": item}}})
        seen("Submit job", step)
        submit = parameters(states["Submit job"]["Parameters"], step)
        # job control reads the referenced job from S3 (jobs.loop.run_step), here from the plan itself
        submit["job"] = planned[submit["job"]["index"]]
        step = job_loop.submit_job(JobStep.model_validate(submit), DoneBackend(), folder, now=lambda: 0.0).payload()
        seen("Submit job", step)
        ended = states["Job ended"]
        results.append(
            parameters(ended["Parameters"], step) if "Parameters" in ended else get(step, ended.get("OutputPath", "$"))
        )
    document = put(document, run_jobs["ResultPath"], results)
    seen("Run jobs", document)
    document = parameters(states[run_jobs["Next"]]["Parameters"], document)
    seen(run_jobs["Next"], document)
    # The jobs' final states as collect reads them from <run>/jobs/ (job_store.resolve_jobs); here, what submit made.
    final = [
        job_loop.submit_job(JobStep(run=RUN, job=job), DoneBackend(), folder, now=lambda: 0.0).job for job in planned
    ]
    # collect.collect's result, per-job tallies and job states included, made into the state by the collect handler's
    # own function.
    tallies = [
        JobTally(
            name=job.name,
            state="succeeded",
            status="Completed",
            failure_reason=None,
            output_uri=f"s3://output-bucket/{RUN['run_prefix']}raw/{job.name}/",
            records=50_000,
            processed=50_000,
            succeeded=50_000,
            retried=True,
            recovered_by_retry=12,
            backend_metrics={"totalRecordCount": 50_000, "processedRecordCount": 50_000},
        )
        for job in planned
    ]
    evaluation = {
        "metric": "rouge",
        "records": 50_000 * jobs_count,
        "scored": 50_000 * jobs_count,
        "missing": 0,
        "errors": 0,
        "rouge": {
            k: {"fmeasure": 0.4, "precision": 0.4, "recall": 0.4} for k in ("rouge1", "rouge2", "rougeL", "rougeLsum")
        },
    }
    collected = {
        "processed": 50_000 * jobs_count,
        "succeeded": 50_000 * jobs_count,
        "failed": 0,
        "input_tokens": 10**10,
        "output_tokens": 10**9,
        "predictions_key": folder.predictions_key,
        "backend_counts": {"totalRecordCount": 50_000 * jobs_count},
        "jobs": [tally.as_dict() for tally in tallies],
        "recovered_by_retry": {tally.name: tally.recovered_by_retry for tally in tallies},
        "job_states": [job.stored() for job in final],
        "report": worst_case_report(),
        # Scored in the same pass: the state keeps the headline, evaluation.json the rest.
        "evaluation": evaluation,
        "evaluation_key": folder.evaluation_key,
    }
    collect = to_state(collected, folder.collect_details_key)
    document = task("Collect and score outputs", document, collect)
    manifest_input = parameters(states["Write manifest"]["Parameters"], document)
    details = {key: collected[key] for key in PER_JOB_FIELDS}  # what the manifest step reads from collect.json
    merged = with_details(collect, details)
    # The manifest step reads evaluation.json (at the state's evaluation_key).
    built = build_manifest(
        manifest_input["run"],
        [Job.model_validate(job) for job in merged["job_states"]],
        merged,
        evaluation,
        folder=RunFolder.of(manifest_input["run"]),
    )
    manifest = state_summary(built)
    document = task("Write manifest", document, manifest)
    task("Notify run finished", document, {"message_id": "m"})
    return sizes


@pytest.fixture(scope="module")
def states(template):
    from tests.infrastructure.test_workflow import all_states, definition_of

    return all_states(definition_of(template))


def test_the_manifest_step_carries_the_job_list_once(states):
    write = states["Write manifest"]["Parameters"]
    assert "plan.$" not in write and write["jobs.$"] == "$.jobs"
    # An iteration's result is its job's index: the job's state is in the run's jobs/ folder, not in the state.
    assert states["Job ended"]["Parameters"] == {"index.$": "$.job.index"}


@pytest.mark.parametrize("jobs_count", [50])
def test_every_state_payload_stays_under_256_kb(states, jobs_count):
    sizes = payloads(states, jobs_count)
    over = {name: n for name, n in sizes.items() if n > QUOTA}
    assert not over, over


def test_a_1000_job_run_stays_under_256_kb_in_every_state(states):
    sizes = payloads(states, 1000)
    assert "StartExecution input" in sizes and "Start run" in sizes
    assert max(sizes.values()) <= QUOTA, sizes


def test_the_payload_measurement_fires_when_the_execution_input_carries_whole_jobs(states):
    """Planted defect: intake starts the run with the planned jobs themselves instead of references."""

    def whole_jobs(run, jobs, backend):
        return {"run": run, "plan": {"backend": backend, "count": len(jobs), "jobs": [job.stored() for job in jobs]}}

    sizes = payloads(states, 1000, start=whole_jobs)
    assert sizes["StartExecution input"] > QUOTA


def test_the_payload_measurement_fires_when_the_map_keeps_every_job(states):
    """Planted defect: `Job ended` keeps the whole job (as before references), so the Map's result grows per job."""
    import copy as _copy

    planted = _copy.deepcopy(states)
    planted["Job ended"] = {"Type": "Pass", "OutputPath": "$.job", "End": True}
    assert max(payloads(planted, 1000).values()) > QUOTA


def test_the_payload_measurement_fires_when_collect_returns_its_per_job_tallies(states):
    """Planted defect: the collect handler returns collect's whole result, per-job tallies included (as before
    collect.json), about 665 bytes a job."""
    sizes = payloads(states, 1000, to_state=lambda result, details_key: result)
    assert sizes["Collect and score outputs"] > QUOTA
