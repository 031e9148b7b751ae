"""Bedrock batch inference end to end in local mode: upload -> intake -> the synthesized state machine ->
the Bedrock emulator (CreateModelInvocationJob over moto S3, a stand-in engine) -> manifest.

Markers in a record's text: [[error-record]] gives that record an error object, [[fail-job]] fails the job.
Emulator options (quota errors, forced end states) come through local_aws(bedrock_options=...)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from batch_pipeline_local.emulator.run import read_json, read_lines, run_file
from batch_pipeline_local.emulator.session import local_aws
from batch_pipeline_local.engines.bedrock_batch import active_bedrock_emulator
from batch_pipeline_local.project import Project
from batch_pipeline_local.template import synthesize_template
from tests.e2e.test_local_runs import run_folder as folder
from tests.e2e.test_local_runs import write

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MULTI = "bedrock-multi"


@pytest.fixture(scope="module")
def bedrock_template():
    """The default app plus a Bedrock pipeline with small job quotas and the retry of failed records on."""
    config = copy.deepcopy(Project.find().context()["batch-pipeline"])
    multi = copy.deepcopy(config["pipelines"]["bedrock-summarize"])
    multi["bedrock"].update(min_records_per_job=10, max_records_per_job=50, retry_failed_records=True)
    config["pipelines"][MULTI] = multi
    return synthesize_template({"batch-pipeline": config})


def transcript(i: int, marker: str = "") -> dict:
    return {
        "recordId": f"call-{i:04d}",
        "modelInput": {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "text": f"Summarize this call transcript: Caller {i} asked for "
                            f"a refund of order {i}. The agent refunded it.{marker}"
                        }
                    ],
                }
            ],
            "inferenceConfig": {"maxTokens": 40},
        },
        "reference": f"Caller {i} asked for a refund of order {i}.",
    }


def job_control_calls(local) -> list[str]:
    return [i.event["action"] for i in local.invocations if i.function.startswith("FunctionsJobControl")]


def test_bedrock_summarize_runs_from_upload_to_manifest_with_bedrocks_counts(local):
    result = run_file(local, EXAMPLES / "bedrock-summarize.jsonl", "bedrock-summarize")
    manifest = result.manifest
    records = sum(1 for line in (EXAMPLES / "bedrock-summarize.jsonl").read_text().splitlines() if line.strip())
    assert result.execution["status"] == "SUCCEEDED" and manifest["status"] == "SUCCEEDED"
    assert manifest["backend"] == "bedrock" and manifest["model"] == "amazon.nova-lite-v1:0"
    assert manifest["counts"]["succeeded"] == records and manifest["counts"]["failed"] == 0
    (job,) = manifest["jobs"]
    assert job["arn"].startswith("arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/")
    assert job["status"] == "Completed" and job["records"] == records
    counts = manifest["backend_counts"]
    assert counts["totalRecordCount"] == counts["successRecordCount"] == records and counts["errorRecordCount"] == 0
    assert counts["inputTokenCount"] > 0 and counts["outputTokenCount"] > 0
    assert manifest["tokens"] == {
        "input_tokens": counts["inputTokenCount"],
        "output_tokens": counts["outputTokenCount"],
    }
    run = folder(local, result).prefix
    job_id = job["arn"].rsplit("/", 1)[1]
    raw = read_lines(local.output_bucket, f"{run}raw/{job['name']}/{job_id}/job-00000.jsonl.out")
    assert len(raw) == records and all("modelOutput" in line for line in raw)
    assert [line["recordId"] for line in raw] != sorted(line["recordId"] for line in raw)  # shuffled: joined by id
    predictions = read_lines(local.output_bucket, run + "predictions/predictions.jsonl")
    assert len(predictions) == records and all(p["prediction"] and p["reference"] for p in predictions)
    assert manifest["evaluation"]["metric"] == "rouge" and manifest["evaluation"]["scored"] == records
    # The model never saw the reference: it went to references.jsonl.
    shard = read_lines(local.output_bucket, f"{run}shards/job-00000.jsonl")
    assert all(set(line) == {"recordId", "modelInput"} for line in shard)


def test_error_records_land_in_errors_jsonl_and_the_run_is_partial(local, tmp_path):
    records = [transcript(i, "[[error-record]]" if i in (3, 7) else "") for i in range(120)]
    result = run_file(local, write(tmp_path, "with-errors.jsonl", records), "bedrock-summarize")
    manifest = result.manifest
    assert manifest["status"] == "PARTIAL"
    assert manifest["counts"]["succeeded"] == 118 and manifest["counts"]["failed"] == 2
    assert (
        manifest["backend_counts"]["errorRecordCount"] == 2 and manifest["backend_counts"]["successRecordCount"] == 118
    )
    errors = read_lines(local.output_bucket, folder(local, result).errors_key)
    assert sorted(e["id"] for e in errors) == ["call-0003", "call-0007"]
    assert all(e["error"]["code"] == "400" and e["error"]["message"] for e in errors)


def test_quota_refusals_queue_the_job_until_bedrock_takes_it(template, tmp_path):
    with local_aws(template=template, bedrock_options={"quota_errors_on_submit": 3}) as local:
        result = run_file(
            local, write(tmp_path, "queued.jsonl", [transcript(i) for i in range(100)]), "bedrock-summarize"
        )
    assert result.manifest["status"] == "SUCCEEDED" and result.manifest["counts"]["succeeded"] == 100
    calls = job_control_calls(local)
    # Refused three times (submit, then two waits that submitted again after a backoff), then taken; its end event
    # resumed the wait, whose check saw it done.
    assert calls[0] == "submit" and calls.count("wait") >= 3
    submissions = [
        i for i in local.invocations if i.function.startswith("FunctionsJobControl") and not i.event["job"].get("arn")
    ]
    assert len(submissions) == 4


@pytest.mark.parametrize(("end_state", "status"), [("PartiallyCompleted", "PARTIAL"), ("Expired", "FAILED")])
def test_partially_completed_and_expired_jobs_end_in_a_manifest_that_says_so(template, tmp_path, end_state, status):
    with local_aws(template=template, bedrock_options={"end_state": end_state}) as local:
        result = run_file(
            local, write(tmp_path, f"{end_state}.jsonl", [transcript(i) for i in range(100)]), "bedrock-summarize"
        )
        errors = read_lines(local.output_bucket, folder(local, result).errors_key)
    manifest = result.manifest
    (job,) = manifest["jobs"]
    assert job["status"] == end_state and job["state"] == "partial"
    assert manifest["status"] == status
    assert manifest["counts"]["succeeded"] + manifest["counts"]["failed"] == 100
    assert len(errors) == manifest["counts"]["failed"]
    if status == "FAILED":
        # Expired before it began: no record has an answer, and the cause says why.
        assert len(errors) == 100 and "did not start within its timeout" in manifest["cause"]


def test_a_failed_job_ends_in_a_failed_manifest_with_bedrocks_message(local, tmp_path):
    records = [transcript(i, "[[fail-job]]" if i == 5 else "") for i in range(100)]
    result = run_file(local, write(tmp_path, "fails.jsonl", records), "bedrock-summarize")
    manifest = result.manifest
    assert result.execution["status"] == "FAILED" and manifest["status"] == "FAILED"
    assert manifest["error"] == "JobsFailed" and manifest["jobs"][0]["status"] == "Failed"
    assert manifest["cause"] and manifest["cause"] == manifest["jobs"][0]["failure_reason"]
    assert manifest["counts"]["failed"] == 100


def test_a_small_file_runs_on_demand_through_invoke_model(local, tmp_path):
    result = run_file(local, write(tmp_path, "small.jsonl", [transcript(i) for i in range(12)]), "bedrock-summarize")
    manifest = result.manifest
    assert manifest["status"] == "SUCCEEDED" and manifest["counts"]["succeeded"] == 12
    (job,) = manifest["jobs"]
    assert job["route"] == "on-demand" and job["arn"] is None and job["status"] == "Completed"
    assert manifest["backend_counts"]["successRecordCount"] == 12 and manifest["tokens"]["output_tokens"] > 0
    intake = read_json(local.output_bucket, folder(local, result).intake_report_key)
    assert intake["route"] == "on-demand"
    raw = read_lines(
        local.output_bucket, f"{folder(local, result).prefix}raw/{job['name']}/on-demand/job-00000.jsonl.out"
    )
    assert len(raw) == 12


def test_a_file_above_the_job_maximum_runs_as_several_jobs_none_under_the_minimum(bedrock_template, tmp_path):
    with local_aws(template=bedrock_template) as local:
        result = run_file(local, write(tmp_path, "many.jsonl", [transcript(i) for i in range(121)]), MULTI)
    manifest = result.manifest
    assert manifest["status"] == "SUCCEEDED" and manifest["counts"]["succeeded"] == 121
    sizes = [job["records"] for job in manifest["jobs"]]
    assert len(sizes) == 3 and sum(sizes) == 121 and all(10 <= size <= 50 for size in sizes)
    assert len({job["arn"] for job in manifest["jobs"]}) == 3
    assert manifest["backend_counts"]["totalRecordCount"] == 121


def test_failed_records_are_resubmitted_once_when_configured(bedrock_template, tmp_path):
    records = [transcript(i, "[[error-record]]" if i in (1, 2) else "") for i in range(30)]
    with local_aws(template=bedrock_template) as local:
        result = run_file(local, write(tmp_path, "retry.jsonl", records), MULTI)
        errors = read_lines(local.output_bucket, folder(local, result).errors_key)
    manifest = result.manifest
    (job,) = manifest["jobs"]
    # The stand-in fails a marked record every time, so the retry recovers none and says so.
    assert job["retry"]["records"] == 2 and job["retry"]["recovered"] == 0 and job["retry"]["route"] == "on-demand"
    assert manifest["status"] == "PARTIAL" and manifest["counts"]["failed"] == 2
    assert sorted(e["id"] for e in errors) == ["call-0001", "call-0002"]
    assert manifest["backend_counts"]["errorRecordCount"] == 2


def test_portable_prompt_lines_become_nova_requests_with_the_pipelines_parameters(local, tmp_path):
    records = [
        {
            "id": f"p{i}",
            "prompt": f"Summarize this call transcript: Caller {i} moved house. The agent updated the address.",
            "reference": f"Caller {i} moved house.",
        }
        for i in range(100)
    ]
    result = run_file(local, write(tmp_path, "prompts.jsonl", records), "bedrock-summarize")
    assert result.manifest["status"] == "SUCCEEDED" and result.manifest["counts"]["succeeded"] == 100
    shard = read_lines(local.output_bucket, folder(local, result).shard_key("job-00000.jsonl"))
    body = shard[0]["modelInput"]
    assert shard[0]["recordId"] == "p0"
    assert body["inferenceConfig"] == {"maxTokens": 512, "temperature": 0.2}  # bedrock.inference_params in cdk.json
    assert body["messages"][0]["role"] == "user" and "Caller 0 moved house" in json.dumps(body["messages"])
    predictions = read_lines(local.output_bucket, folder(local, result).predictions_key)
    assert {p["id"] for p in predictions} == {f"p{i}" for i in range(100)}
    assert result.manifest["evaluation"]["scored"] == 100


def test_a_small_on_demand_file_sends_each_record_to_invoke_model_exactly_once(local, tmp_path):

    result = run_file(local, write(tmp_path, "twelve.jsonl", [transcript(i) for i in range(12)]), "bedrock-summarize")
    assert result.manifest["status"] == "SUCCEEDED"
    assert active_bedrock_emulator().calls["InvokeModel"] == 12  # was 24: submit ran them, then check ran them again
    assert result.manifest["model_invocations"] == {"total": 12, "by_job": {result.manifest["jobs"][0]["name"]: 12}}
    assert job_control_calls(local) == ["submit"]


def test_throttled_invoke_model_requests_are_counted_as_sent(template, tmp_path):
    with local_aws(template=template, bedrock_options={"throttle_invocations": 3}) as local:
        result = run_file(
            local, write(tmp_path, "throttled.jsonl", [transcript(i) for i in range(12)]), "bedrock-summarize"
        )
    assert result.manifest["counts"]["succeeded"] == 12
    assert result.manifest["model_invocations"]["total"] == 15 == result.model_requests_received


def prompts(count: int) -> list[dict]:
    return [
        {
            "id": f"c{i}",
            "prompt": f"Summarize this call transcript: Caller {i} lost a parcel. The agent sent a new one.",
            "reference": f"Caller {i} lost a parcel.",
        }
        for i in range(count)
    ]


def test_a_converse_pipeline_runs_prompt_lines_as_a_converse_batch_job(local, tmp_path):
    result = run_file(local, write(tmp_path, "converse.jsonl", prompts(100)), "bedrock-converse")
    manifest = result.manifest
    assert manifest["status"] == "SUCCEEDED" and manifest["counts"]["succeeded"] == 100
    (job,) = manifest["jobs"]
    assert job["invocation_type"] == "Converse" and job["arn"]
    # The emulator received modelInvocationType and echoes it, as GetModelInvocationJob does.
    described = active_bedrock_emulator().job(job["arn"]).describe()
    assert described["modelInvocationType"] == "Converse"
    run = folder(local, result).prefix
    shard = read_lines(local.output_bucket, f"{run}shards/job-00000.jsonl")
    assert shard[0]["modelInput"] == {
        "messages": [{"role": "user", "content": [{"text": prompts(1)[0]["prompt"]}]}],
        "inferenceConfig": {"maxTokens": 512, "temperature": 0.2},
    }
    raw = read_lines(local.output_bucket, f"{run}raw/{job['name']}/{job['arn'].rsplit('/', 1)[1]}/job-00000.jsonl.out")
    assert all(set(line["modelOutput"]) >= {"output", "stopReason", "usage"} for line in raw)
    predictions = read_lines(local.output_bucket, run + "predictions/predictions.jsonl")
    assert len(predictions) == 100 and all(p["prediction"].startswith("Caller") for p in predictions)
    assert manifest["tokens"]["output_tokens"] > 0


def test_a_converse_pipeline_runs_a_small_file_on_demand_through_the_converse_api(local, tmp_path):
    result = run_file(local, write(tmp_path, "converse-small.jsonl", prompts(7)), "bedrock-converse")
    manifest = result.manifest
    assert manifest["status"] == "SUCCEEDED" and manifest["counts"]["succeeded"] == 7
    (job,) = manifest["jobs"]
    assert job["route"] == "on-demand" and job["invocation_type"] == "Converse"
    raw = read_lines(
        local.output_bucket, f"{folder(local, result).prefix}raw/{job['name']}/on-demand/job-00000.jsonl.out"
    )
    assert len(raw) == 7 and all(line["modelOutput"]["output"]["message"]["role"] == "assistant" for line in raw)
    calls = active_bedrock_emulator().calls
    # Every record went through Converse exactly once, none through InvokeModel.
    assert calls["Converse"] == 7 and calls["InvokeModel"] == 0
    assert manifest["model_invocations"]["total"] == 7
