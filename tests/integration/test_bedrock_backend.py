"""The Bedrock backend: exact request shapes (botocore Stubber), queueing, status mapping, output layout,
on-demand runs and the manifest.json.out counts (moto S3)."""

from __future__ import annotations

import io
import json

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.response import StreamingBody
from botocore.stub import Stubber
from sagemaker_helpers import BUCKET, RUN_ID, make_run, prefix, put_lines, read_lines

from batch_pipeline.contracts import Job, JobState
from batch_pipeline.jobs.backends import SubmitDeferred, backend_for
from batch_pipeline.jobs.backends.bedrock import (
    BedrockBackend,
    bedrock_job_name,
    client_request_token,
    model_invocation_job_request,
)
from batch_pipeline.results.collect import collect
from batch_pipeline.storage.layout import RunFolder
from batch_pipeline_local.project import load_pipeline
from tests.job_steps import check_job, submit_job

ROLE = "arn:aws:iam::123456789012:role/llmbp-bedrock-service"
ARN = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdef123456"
NAME = bedrock_job_name(RUN_ID, 0)
RUN = make_run("bedrock-summarize")
FOLDER = RunFolder.of(RUN)
INPUT_KEY = f"{prefix(RUN)}shards/job-00000.jsonl"
OUTPUT_URI = f"s3://{BUCKET}/{prefix(RUN)}raw/{NAME}/"
JOB = {
    "index": 0,
    "name": NAME,
    "input_uri": f"s3://{BUCKET}/{INPUT_KEY}",
    "output_uri": OUTPUT_URI,
    "records": 3,
    "route": "batch",
}


@pytest.fixture(autouse=True)
def _environment(monkeypatch):
    monkeypatch.setenv("BEDROCK_ROLE_ARN", ROLE)
    for name in ("OUTPUT_KMS_KEY_ARN", "LOCAL_STAND_IN", "JOB_NAME_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("POLL_JITTER", "0")


def job_of(**changes) -> Job:
    """The planned job JOB, with `changes`, as the backend takes it."""
    return Job.model_validate({**JOB, **changes})


def pipeline(**bedrock_changes):
    loaded = load_pipeline("bedrock-summarize")
    if not bedrock_changes:
        return loaded
    settings = loaded.pipeline.bedrock.model_copy(update=bedrock_changes)
    return loaded.model_copy(update={"pipeline": loaded.pipeline.model_copy(update={"bedrock": settings})})


def calls(count: int) -> list[dict]:
    return [{"recordId": str(i), "modelInput": request_messages(f"Summarize: call {i}.")} for i in range(count)]


def stubbed(service: str):
    client = boto3.client(service, region_name="us-east-1")
    return client, Stubber(client)


def request_messages(text: str) -> dict:
    return {"messages": [{"role": "user", "content": [{"text": text}]}], "inferenceConfig": {"maxTokens": 64}}


def described(status: str, **extra) -> dict:
    return {
        "jobArn": ARN,
        "jobName": NAME,
        "modelId": "amazon.nova-lite-v1:0",
        "roleArn": ROLE,
        "status": status,
        "submitTime": "2026-12-01T00:00:00Z",
        "inputDataConfig": {"s3InputDataConfig": {"s3Uri": JOB["input_uri"]}},
        "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": OUTPUT_URI}},
        **extra,
    }


# ---------------------------------------------------------------- names and request shape


def test_job_names_and_tokens_are_stable_per_run_and_index_and_fit_bedrock():
    assert bedrock_job_name(RUN_ID, 1) == bedrock_job_name(RUN_ID, 1) != bedrock_job_name(RUN_ID, 2)
    assert client_request_token(RUN_ID, 0) == client_request_token(RUN_ID, 0) != client_request_token(RUN_ID, 1)
    assert client_request_token(RUN_ID, 0) != client_request_token(RUN_ID + "x", 0)
    assert bedrock_job_name(RUN_ID, "0r").endswith("-0r")
    with pytest.raises(ValueError):
        bedrock_job_name(RUN_ID, "0/../x")


def test_create_request_exact_shape():
    assert model_invocation_job_request(FOLDER, job_of(), pipeline()) == {
        "jobName": NAME,
        "roleArn": ROLE,
        "modelInvocationType": "InvokeModel",
        "clientRequestToken": client_request_token(RUN_ID, 0),
        "modelId": "amazon.nova-lite-v1:0",
        "inputDataConfig": {"s3InputDataConfig": {"s3Uri": JOB["input_uri"], "s3InputFormat": "JSONL"}},
        "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": OUTPUT_URI}},
        "timeoutDurationInHours": 24,
        "tags": [
            {"key": "batch-pipeline:run-id", "value": RUN_ID},
            {"key": "batch-pipeline:pipeline", "value": "bedrock-summarize"},
            {"key": "batch-pipeline:job-index", "value": "0"},
        ],
    }


def test_request_carries_the_kms_key_the_timeout_and_the_stand_in_tag(monkeypatch):
    monkeypatch.setenv(
        "OUTPUT_KMS_KEY_ARN", "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    )
    monkeypatch.setenv("LOCAL_STAND_IN", "1")
    request = model_invocation_job_request(FOLDER, job_of(), pipeline(timeout_hours=72))
    assert request["outputDataConfig"]["s3OutputDataConfig"]["s3EncryptionKeyId"].endswith("555555555555")
    assert request["timeoutDurationInHours"] == 72
    assert {"key": "batch-pipeline:engine", "value": "local stand-in engine - not a model"} in request["tags"]


def test_request_refuses_input_outside_the_run_bucket():
    with pytest.raises(ValueError, match="outside the run bucket"):
        model_invocation_job_request(FOLDER, job_of(input_uri="s3://someone-else/x.jsonl"), pipeline())


def test_submit_sends_exactly_that_request_and_reports_running():
    bedrock, stub = stubbed("bedrock")
    stub.add_response(
        "create_model_invocation_job",
        {"jobArn": ARN},
        model_invocation_job_request(FOLDER, job_of(), pipeline()),
    )
    with stub:
        state = BedrockBackend(pipeline(), bedrock=bedrock).submit(FOLDER, job_of())
    stub.assert_no_pending_responses()
    assert state == JobState(
        name=NAME,
        arn=ARN,
        status="Submitted",
        state="running",
        failure_reason=None,
        output_uri=OUTPUT_URI,
        invocation_type="InvokeModel",
    )
    assert not state.done


# ---------------------------------------------------------------- queueing


@pytest.mark.parametrize("code", ["ServiceQuotaExceededException", "ThrottlingException"])
def test_quota_and_throttling_leave_the_job_queued_and_the_next_check_submits_again(code):
    bedrock, stub = stubbed("bedrock")
    backend = BedrockBackend(pipeline(), bedrock=bedrock)
    stub.add_client_error(
        "create_model_invocation_job",
        service_error_code=code,
        service_message="Too many jobs in progress for this model",
        http_status_code=400,
    )
    stub.add_response(
        "create_model_invocation_job",
        {"jobArn": ARN},
        model_invocation_job_request(FOLDER, job_of(), pipeline()),
    )
    with stub:
        with pytest.raises(SubmitDeferred, match=code):
            backend.submit(FOLDER, job_of())
        first = submit_job(
            {"run": RUN, "job": JOB, "attempt": 0},
            BedrockBackend(pipeline(), bedrock=_failing(code)),
            FOLDER,
            now=lambda: 1000.0,
        )
        assert first["job"]["state"] == "queued" and first["job"]["done"] is False
        assert first["job"]["arn"] is None and code in first["job"]["last_refusal"]
        assert first["wait_seconds"] == 30
        second = check_job(first, backend, FOLDER, now=lambda: 1030.0)
    assert second["job"]["arn"] == ARN and second["job"]["state"] == "running"
    assert "last_refusal" not in second["job"] and second["job"]["queued_at"] == 1000.0


def test_a_job_queued_past_the_queue_timeout_fails_with_the_last_refusal(monkeypatch):
    monkeypatch.setenv("JOB_QUEUE_TIMEOUT_HOURS", "2")
    step = submit_job(
        {"run": RUN, "job": {**JOB, "queued_at": 0.0}, "attempt": 9},
        BedrockBackend(pipeline(), bedrock=_failing("ServiceQuotaExceededException")),
        FOLDER,
        now=lambda: 7300.0,
    )
    assert step["job"]["state"] == "failed" and step["job"]["done"] is True
    assert "not submitted after 2.0 h" in step["job"]["failure_reason"]
    assert "ServiceQuotaExceededException" in step["job"]["failure_reason"]


def _failing(code: str):
    client, stub = stubbed("bedrock")
    stub.add_client_error("create_model_invocation_job", service_error_code=code, http_status_code=400)
    stub.activate()
    return client


def test_a_taken_name_finds_the_job_an_earlier_try_created():
    bedrock, stub = stubbed("bedrock")
    stub.add_client_error("create_model_invocation_job", service_error_code="ConflictException", http_status_code=409)
    stub.add_response(
        "list_model_invocation_jobs",
        {
            "invocationJobSummaries": [
                {
                    "jobArn": ARN.replace("abcdef123456", "zzzzzz999999"),
                    "jobName": NAME + "-other",
                    "modelId": "m",
                    "roleArn": ROLE,
                    "submitTime": "2026-12-01T00:00:00Z",
                    "inputDataConfig": described("Submitted")["inputDataConfig"],
                    "outputDataConfig": described("Submitted")["outputDataConfig"],
                },
                {
                    "jobArn": ARN,
                    "jobName": NAME,
                    "modelId": "m",
                    "roleArn": ROLE,
                    "submitTime": "2026-12-01T00:00:00Z",
                    "inputDataConfig": described("Submitted")["inputDataConfig"],
                    "outputDataConfig": described("Submitted")["outputDataConfig"],
                },
            ]
        },
        {"nameContains": NAME},
    )
    with stub:
        state = BedrockBackend(pipeline(), bedrock=bedrock).submit(FOLDER, job_of())
    assert state.arn == ARN


def test_other_errors_fail_the_step():
    bedrock, stub = stubbed("bedrock")
    stub.add_client_error(
        "create_model_invocation_job", service_error_code="AccessDeniedException", http_status_code=403
    )
    with stub, pytest.raises(Exception, match="AccessDenied"):
        BedrockBackend(pipeline(), bedrock=bedrock).submit(FOLDER, job_of())


# ---------------------------------------------------------------- status and stop


@pytest.mark.parametrize(
    ("status", "state", "done"),
    [
        ("Submitted", "running", False),
        ("Validating", "running", False),
        ("Scheduled", "running", False),
        ("InProgress", "running", False),
        ("Stopping", "running", False),
        ("Completed", "succeeded", True),
        ("PartiallyCompleted", "partial", True),
        ("Expired", "partial", True),
        ("Failed", "failed", True),
        ("Stopped", "stopped", True),
    ],
)
def test_every_bedrock_status_maps_to_a_state(status, state, done):
    bedrock, stub = stubbed("bedrock")
    extra = {"message": "why it ended"} if done and state != "succeeded" else {}
    stub.add_response(
        "get_model_invocation_job",
        described(status, totalRecordCount=3, errorRecordCount=1, **extra),
        {"jobIdentifier": ARN},
    )
    with stub:
        result = BedrockBackend(pipeline(), bedrock=bedrock).status(FOLDER, job_of(arn=ARN))
    assert (result.state, result.done, result.status) == (state, done, status)
    assert result.failure_reason == (extra.get("message"))
    assert result.record_counts == {"totalRecordCount": 3, "errorRecordCount": 1}


def test_stopping_an_ended_job_reports_its_final_state():
    bedrock, stub = stubbed("bedrock")
    stub.add_client_error(
        "stop_model_invocation_job",
        service_error_code="ValidationException",
        http_status_code=400,
        expected_params={"jobIdentifier": ARN},
    )
    stub.add_response("get_model_invocation_job", described("Completed"), {"jobIdentifier": ARN})
    with stub:
        assert BedrockBackend(pipeline(), bedrock=bedrock).stop(FOLDER, job_of(arn=ARN)).state == "succeeded"


def test_bedrock_enforces_its_own_timeout_so_job_control_sets_none():
    assert BedrockBackend(pipeline()).max_runtime_seconds is None


# ---------------------------------------------------------------- output layout and counts


def test_outputs_are_read_from_the_job_id_folder_and_manifest_counts_carried(s3):
    folder = f"{prefix(RUN)}raw/{NAME}/abcdef123456/"
    counts = {
        "totalRecordCount": 3,
        "processedRecordCount": 3,
        "successRecordCount": 2,
        "errorRecordCount": 1,
        "inputTokenCount": 120,
        "outputTokenCount": 30,
    }
    s3.put_object(Bucket=BUCKET, Key=folder + "manifest.json.out", Body=json.dumps(counts).encode())
    backend = BedrockBackend(pipeline(), s3=s3)
    job = {**JOB, "arn": ARN}
    (raw,) = backend.raw_outputs(FOLDER, Job.model_validate(job))
    assert (raw.input_key, raw.output_key, raw.join, raw.input_id_field) == (
        INPUT_KEY,
        folder + "job-00000.jsonl.out",
        "id",
        "recordId",
    )
    assert backend.job_metrics(FOLDER, Job.model_validate(job)) == counts
    # A job that was never submitted has no output and no counts.
    never = {**JOB, "arn": None}
    assert backend.job_metrics(FOLDER, Job.model_validate(never)) == {}
    assert next(iter(backend.raw_outputs(FOLDER, Job.model_validate(never)))).output_key.endswith("not-submitted.out")


# ---------------------------------------------------------------- on demand


def _invoke_response(text: str, usage=(10, 3)) -> dict:
    body = json.dumps(
        {
            "id": "msg",
            "type": "message",
            "role": "assistant",
            "model": "claude",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
        }
    ).encode()
    return {"body": StreamingBody(io.BytesIO(body), len(body)), "contentType": "application/json"}


def test_on_demand_runs_every_record_through_invoke_model_and_writes_the_batch_layout(s3):
    records = calls(3)
    put_lines(s3, INPUT_KEY, records)
    runtime, stub = stubbed("bedrock-runtime")
    # One worker, so the stubbed answers arrive in record order; the first throttles once and is retried.
    stub.add_client_error("invoke_model", service_error_code="ThrottlingException", http_status_code=429)
    for i in range(3):
        if i == 1:
            stub.add_client_error(
                "invoke_model",
                service_error_code="ValidationException",
                service_message="max_tokens exceeds the model's limit",
                http_status_code=400,
            )
        else:
            stub.add_response(
                "invoke_model",
                _invoke_response(f"call {i}"),
                {
                    "modelId": "amazon.nova-lite-v1:0",
                    "body": json.dumps(records[i]["modelInput"]).encode(),
                    "contentType": "application/json",
                    "accept": "application/json",
                },
            )
    sleeps = []
    backend = BedrockBackend(pipeline(on_demand_concurrency=1), bedrock_runtime=runtime, s3=s3, sleep=sleeps.append)
    with stub:
        step = submit_job({"run": RUN, "job": {**JOB, "route": "on-demand"}, "attempt": 0}, backend, FOLDER)
    job = step["job"]
    assert job["done"] and job["state"] == "partial" and job["status"] == "PartiallyCompleted"
    assert job["route"] == "on-demand" and job["arn"] is None and step["wait_seconds"] == 0
    assert job["failure_reason"] == "1 of 3 on-demand requests failed"
    assert len(sleeps) == 1
    folder = f"{prefix(RUN)}raw/{NAME}/on-demand/"
    lines = read_lines(s3, folder + "job-00000.jsonl.out")
    assert [line["recordId"] for line in lines] == ["0", "1", "2"]
    assert lines[0]["modelOutput"]["content"][0]["text"] == "call 0"
    assert lines[1]["error"] == {
        "errorCode": 400,
        "errorMessage": "ValidationException: max_tokens exceeds the model's limit",
    }
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=folder + "manifest.json.out")["Body"].read())
    assert manifest == {
        "totalRecordCount": 3,
        "processedRecordCount": 3,
        "successRecordCount": 2,
        "errorRecordCount": 1,
        "inputTokenCount": 20,
        "outputTokenCount": 6,
    }
    assert backend.job_metrics(FOLDER, Job.model_validate(job)) == manifest
    assert next(iter(backend.raw_outputs(FOLDER, Job.model_validate(job)))).output_key == folder + "job-00000.jsonl.out"
    assert s3.get_object_tagging(Bucket=BUCKET, Key=folder + "manifest.json.out")["TagSet"] == [
        {"Key": "batch-pipeline:intermediate", "Value": "true"}
    ]


def test_on_demand_with_every_request_failing_is_a_failed_job_with_the_first_reason(s3):
    put_lines(s3, INPUT_KEY, [{"recordId": "0", "modelInput": request_messages("x")}])
    runtime, stub = stubbed("bedrock-runtime")
    stub.add_client_error(
        "invoke_model",
        service_error_code="AccessDeniedException",
        service_message="You don't have access to the model",
        http_status_code=403,
    )
    with stub:
        state = BedrockBackend(pipeline(), bedrock_runtime=runtime, s3=s3).submit(FOLDER, job_of(route="on-demand"))
    assert state.state == "failed"
    assert state.failure_reason == (
        "every on-demand request failed; first error 403: AccessDeniedException: You don't have access to the model"
    )


def test_backend_for_builds_the_bedrock_backend_with_its_clients():
    backend = backend_for(pipeline(), bedrock="b", bedrock_runtime="r", s3="s", sagemaker="ignored")
    assert isinstance(backend, BedrockBackend)
    assert (backend.bedrock, backend.runtime, backend.s3) == ("b", "r", "s")


# ---------------------------------------------------------------- one retry of failed records


def test_failed_records_are_resubmitted_once_and_merged_into_the_output(s3):
    records = calls(3)
    put_lines(s3, INPUT_KEY, records)
    folder = f"{prefix(RUN)}raw/{NAME}/abcdef123456/"
    first_output = [
        {**records[2], "modelOutput": json.loads(_invoke_response("call 2")["body"].read())},
        {**records[0], "error": {"errorCode": 429, "errorMessage": "ThrottlingException: too many tokens"}},
        {**records[1], "modelOutput": json.loads(_invoke_response("call 1")["body"].read())},
    ]
    put_lines(s3, folder + "job-00000.jsonl.out", first_output)
    s3.put_object(
        Bucket=BUCKET,
        Key=folder + "manifest.json.out",
        Body=json.dumps(
            {"totalRecordCount": 3, "processedRecordCount": 3, "successRecordCount": 2, "errorRecordCount": 1}
        ).encode(),
    )
    bedrock, bedrock_stub = stubbed("bedrock")
    bedrock_stub.add_response("get_model_invocation_job", described("Completed"), {"jobIdentifier": ARN})
    runtime, runtime_stub = stubbed("bedrock-runtime")
    runtime_stub.add_response(
        "invoke_model",
        _invoke_response("call 0, second try"),
        {
            "modelId": "amazon.nova-lite-v1:0",
            "body": json.dumps(records[0]["modelInput"]).encode(),
            "contentType": "application/json",
            "accept": "application/json",
        },
    )
    backend = BedrockBackend(pipeline(retry_failed_records=True), bedrock=bedrock, bedrock_runtime=runtime, s3=s3)
    job = {**JOB, "arn": ARN, "status": "InProgress", "state": "running", "done": False}
    with bedrock_stub, runtime_stub:
        step = check_job({"run": RUN, "job": job, "attempt": 3}, backend, FOLDER)
        # The first attempt ended with one error record: a retry of just that record is queued next.
        retry = step["job"]
        assert retry["done"] is False and retry["state"] == "queued" and retry["arn"] is None
        assert (
            retry["name"] == bedrock_job_name(RUN_ID, "0r") and retry["route"] == "on-demand" and retry["records"] == 1
        )
        assert read_lines(s3, f"{prefix(RUN)}shards/job-00000-retry.jsonl") == [records[0]]
        step = check_job(step, backend, FOLDER)
    bedrock_stub.assert_no_pending_responses()
    runtime_stub.assert_no_pending_responses()
    final = step["job"]
    assert final["done"] is True and final["name"] == NAME and final["arn"] == ARN and final["state"] == "succeeded"
    assert final["input_uri"] == JOB["input_uri"] and final["records"] == 3
    assert final["retry"]["state"] == "succeeded" and final["retry"]["records"] == 1
    # Job control wrote no merged copy: the job names its own output and the retry's, and collect merges them.
    retry_name = bedrock_job_name(RUN_ID, "0r")
    retry_output = f"{prefix(RUN)}raw/{retry_name}/on-demand/job-00000-retry.jsonl.out"
    (raw,) = backend.raw_outputs(FOLDER, Job.model_validate(final))
    assert raw.input_key == INPUT_KEY and raw.output_key == folder + "job-00000.jsonl.out"
    assert raw.retry_output_key == retry_output == final["retry"]["output_key"]
    assert not s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix(RUN)}raw/{NAME}/merged/").get("KeyCount")
    collected = collect(FOLDER, [Job.model_validate(final)], backend, s3)
    predictions = {line["id"]: line for line in read_lines(s3, collected["predictions_key"])}
    assert predictions["0"]["prediction"] == "call 0, second try" and "error" not in predictions["0"]
    assert predictions["2"]["prediction"] == "call 2"
    (tally,) = collected["jobs"]
    assert (tally["succeeded"], tally["failed"], tally["recovered_by_retry"]) == (3, 0, 1)
    assert (tally["duplicate_outputs"], tally["unmatched_outputs"]) == (0, 0)
    # Bedrock's own output stays as Bedrock wrote it.
    assert read_lines(s3, folder + "job-00000.jsonl.out") == first_output
    metrics = backend.job_metrics(FOLDER, Job.model_validate(final))
    assert metrics["errorRecordCount"] == 1 and metrics["retry"]["successRecordCount"] == 1


def test_an_on_demand_job_s_retry_sends_its_failed_records_and_keeps_the_first_checkpoints(s3):
    """The retry of an on-demand job runs on demand too: in its own folder, so it neither reads the first attempt's
    checkpoint parts as its answers (and sends nothing) nor overwrites the first attempt's manifest.json.out."""

    class Flaky(_CountingRuntime):
        def invoke_model(self, *, modelId, body, contentType, accept):  # boto3's keyword names
            text = json.loads(body)["messages"][0]["content"][0]["text"]
            if text == "Summarize: call 1." and text not in self.sent:
                self.sent.append(text)
                raise _client_error("ValidationException", "bad request this once")
            return super().invoke_model(modelId=modelId, body=body, contentType=contentType, accept=accept)

    records = calls(3)
    put_lines(s3, INPUT_KEY, records)
    runtime = Flaky()
    backend = BedrockBackend(
        pipeline(retry_failed_records=True, on_demand_concurrency=1), bedrock_runtime=runtime, s3=s3
    )
    step = submit_job({"run": RUN, "job": {**JOB, "route": "on-demand"}, "attempt": 0}, backend, FOLDER)
    assert step["job"]["state"] == "queued" and step["job"]["records"] == 1  # the retry of record 1
    step = check_job(step, backend, FOLDER)
    final = step["job"]
    assert final["done"] and final["name"] == NAME and final["state"] == "partial"
    assert runtime.sent.count("Summarize: call 1.") == 2, "the retry must send the failed record once more"
    assert len(runtime.sent) == 4
    assert final["model_invocations"] + final["retry"]["model_invocations"] == 4
    first_counts = read_lines(s3, f"{prefix(RUN)}raw/{NAME}/on-demand/manifest.json.out")
    assert first_counts[0]["errorRecordCount"] == 1
    collected = collect(FOLDER, [Job.model_validate(final)], backend, s3)
    assert (collected["succeeded"], collected["failed"], collected["jobs"][0]["recovered_by_retry"]) == (3, 0, 1)


def test_without_the_setting_or_without_errors_nothing_is_retried(s3):
    folder = f"{prefix(RUN)}raw/{NAME}/abcdef123456/"
    put_lines(s3, folder + "job-00000.jsonl.out", [{"recordId": "0", "error": {"errorCode": 400, "errorMessage": "x"}}])
    job = job_of(arn=ARN, status="Completed", state="succeeded", done=True)
    assert BedrockBackend(pipeline(), s3=s3).finish(FOLDER, job) is job
    put_lines(s3, folder + "job-00000.jsonl.out", [{"recordId": "0", "modelOutput": {"content": [{"text": "ok"}]}}])
    assert BedrockBackend(pipeline(retry_failed_records=True), s3=s3).finish(FOLDER, job) is job
    failed = job.changed(state="failed", status="Failed")
    assert BedrockBackend(pipeline(retry_failed_records=True), s3=s3).finish(FOLDER, failed) is failed


# ---------------------------------------------------------------- the adapter against the local emulator


def test_adapter_against_the_emulator_submit_poll_stop_collect_layout(s3):
    from batch_pipeline_local.engines.bedrock_batch import install_bedrock_engine

    put_lines(s3, INPUT_KEY, calls(100))
    clients = {
        "bedrock": boto3.client("bedrock", region_name="us-east-1"),
        "bedrock_runtime": boto3.client("bedrock-runtime", region_name="us-east-1"),
        "s3": s3,
    }
    with install_bedrock_engine(steps=2) as emulator:
        backend = backend_for(pipeline(), **clients)
        step = submit_job({"run": RUN, "job": JOB, "attempt": 0}, backend, FOLDER)
        # A retried submit (same token) gets the same job, not a second one.
        again = backend.submit(FOLDER, job_of())
        assert again.arn == step["job"]["arn"] and len(emulator.jobs) == 1
        while not step["job"]["done"]:
            step = check_job(step, backend, FOLDER)
        job = step["job"]
        assert job["status"] == "Completed" and job["state"] == "succeeded"
        (raw,) = backend.raw_outputs(FOLDER, Job.model_validate(job))
        assert len(read_lines(s3, raw.output_key)) == 100
        assert backend.job_metrics(FOLDER, Job.model_validate(job))["successRecordCount"] == 100
        # Stopping a job that already ended answers its final state.
        assert backend.stop(FOLDER, Job.model_validate(job)).state == "succeeded"


def test_the_record_spool_is_a_disk_backed_map_of_record_ids():
    from batch_pipeline.jobs.backends.bedrock_retry import RecordSpool

    with RecordSpool() as spool:
        for i in range(5000):
            spool.add(f"r{i}", f"answer {i}".encode())
        spool.add("r7", b"replaced")
        assert len(spool) == 5000 and "r4999" in spool and "r5000" not in spool
        assert spool.get("r7") == b"replaced" and spool.get("missing") is None


def _client_error(code: str, message: str, status: int = 400) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": 0},
        },
        "InvokeModel",
    )


class _CountingRuntime:
    """A bedrock-runtime stand-in that answers InvokeModel, counts what it is sent, and can die mid-way
    (as a Lambda does when it times out) after a number of requests."""

    def __init__(self, die_after: int | None = None) -> None:
        self.sent: list[str] = []
        self.die_after = die_after

    def invoke_model(self, *, modelId, body, contentType, accept):  # boto3's keyword names
        if self.die_after is not None and len(self.sent) >= self.die_after:
            raise RuntimeError("Sandbox.Timedout: the step died mid-way")
        self.sent.append(json.loads(body)["messages"][0]["content"][0]["text"])
        return {**_invoke_response("ok"), "ResponseMetadata": {"RetryAttempts": 0}}


def test_a_retried_on_demand_step_never_sends_a_record_twice(s3):
    from batch_pipeline.jobs.backends.bedrock_on_demand import ON_DEMAND_PART_RECORDS

    records = calls(ON_DEMAND_PART_RECORDS * 2 + 5)
    put_lines(s3, INPUT_KEY, records)
    job = {**JOB, "route": "on-demand", "records": len(records)}
    # The first attempt dies after one checkpointed part and a few more requests whose answers it never kept.
    dying = _CountingRuntime(die_after=ON_DEMAND_PART_RECORDS + 3)
    with pytest.raises(RuntimeError):
        BedrockBackend(pipeline(on_demand_concurrency=1), bedrock_runtime=dying, s3=s3).submit(
            FOLDER, Job.model_validate(job)
        )
    retried = _CountingRuntime()
    state = BedrockBackend(pipeline(on_demand_concurrency=1), bedrock_runtime=retried, s3=s3).submit(
        FOLDER, Job.model_validate(job)
    )
    first_part = {f"Summarize: call {i}." for i in range(ON_DEMAND_PART_RECORDS)}
    assert not first_part & set(retried.sent), "records answered by the first attempt were sent again"
    assert len(retried.sent) == len(records) - ON_DEMAND_PART_RECORDS
    assert state.state == "succeeded" and state.record_counts["successRecordCount"] == len(records)
    # Billed: the checkpointed part of the first attempt plus everything the retry sent (the 3 lost answers of the
    # dead attempt were never recorded, as on AWS they would be paid for but unknown to the run).
    assert state.model_invocations == ON_DEMAND_PART_RECORDS + len(retried.sent)
    lines = read_lines(s3, f"{prefix(RUN)}raw/{NAME}/on-demand/job-00000.jsonl.out")
    assert [line["recordId"] for line in lines] == [r["recordId"] for r in records]
    # A step retried after it finished (its response was lost) sends nothing at all.
    again = _CountingRuntime()
    repeat = BedrockBackend(pipeline(on_demand_concurrency=1), bedrock_runtime=again, s3=s3).submit(
        FOLDER, Job.model_validate(job)
    )
    assert again.sent == [] and repeat.model_invocations == state.model_invocations
    assert repeat.record_counts == state.record_counts
