"""The Bedrock batch inference / InvokeModel emulator, driven by real boto3 clients under mock_aws.

botocore serializes every request and parses every answer, so these tests also pin the wire contract
(the service model's shapes and error codes) that the real backend adapter relies on.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ParamValidationError
from moto import mock_aws

from batch_pipeline_local.engines.bedrock_batch import active_bedrock_emulator, install_bedrock_engine
from batch_pipeline_local.engines.bedrock_model import summarize
from batch_pipeline_local.engines.stand_in import ENGINE_LABEL, MARKER_OBJECT

REGION = "us-east-1"
BUCKET = "llmbp-bedrock-test"
ROLE = "arn:aws:iam::123456789012:role/bedrock-batch"
CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
NOVA = "amazon.nova-lite-v1:0"
TITAN = "amazon.titan-text-express-v1"
NO_RETRIES = Config(retries={"total_max_attempts": 1})


def transcript(i: int, extra: str = "") -> str:
    return f"Summarize this call transcript: Caller {i} asked about a late refund{extra}. The agent apologised."


def claude_input(text: str, max_tokens: int = 512) -> dict:
    return {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
    }


def nova_input(text: str, max_tokens: int = 300) -> dict:
    return {"messages": [{"role": "user", "content": [{"text": text}]}], "inferenceConfig": {"maxTokens": max_tokens}}


def titan_input(text: str) -> dict:
    return {"inputText": f"User: {text}\nBot:", "textGenerationConfig": {"maxTokenCount": 100}}


def records(count: int, make=claude_input, start: int = 0, marks: dict[int, str] | None = None) -> list[dict]:
    marks = marks or {}
    return [
        {"recordId": f"CALL{i:07d}", "modelInput": make(transcript(i, marks.get(i, "")))}
        for i in range(start, start + count)
    ]


def put_jsonl(s3, key: str, lines: list[dict] | list[str]) -> str:
    body = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode())
    return f"s3://{BUCKET}/{key}"


def create(bedrock, input_uri: str, name: str = "job-a", model: str = CLAUDE, **extra) -> str:
    return bedrock.create_model_invocation_job(
        jobName=name,
        roleArn=ROLE,
        modelId=model,
        inputDataConfig={"s3InputDataConfig": {"s3Uri": input_uri, "s3InputFormat": "JSONL"}},
        outputDataConfig={"s3OutputDataConfig": {"s3Uri": f"s3://{BUCKET}/out/"}},
        **extra,
    )["jobArn"]


def run_to_end(bedrock, arn: str, limit: int = 10) -> tuple[list[str], dict]:
    seen = []
    for _ in range(limit):
        described = bedrock.get_model_invocation_job(jobIdentifier=arn)
        seen.append(described["status"])
        if described["status"] not in ("Submitted", "Validating", "Scheduled", "InProgress", "Stopping"):
            return seen, described
    raise AssertionError(f"job did not end: {seen}")


def read_lines(s3, key: str) -> list[dict]:
    return [json.loads(line) for line in s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode().splitlines()]


def keys(s3, prefix: str = "out/") -> list[str]:
    return sorted(item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


@pytest.fixture
def aws():
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        yield (
            s3,
            boto3.client("bedrock", region_name=REGION, config=NO_RETRIES),
            boto3.client("bedrock-runtime", region_name=REGION, config=NO_RETRIES),
        )


# ---------------------------------------------------------------- job life and layout


def test_job_moves_one_status_per_get_and_writes_the_documented_layout(aws):
    s3, bedrock, _ = aws
    uri = put_jsonl(s3, "runs/r1/shards/job-00000.jsonl", records(120))
    with install_bedrock_engine() as emulator:
        arn = create(bedrock, uri, timeoutDurationInHours=24, tags=[{"key": "run", "value": "r1"}])
        assert re.fullmatch(r"arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/[a-z0-9]{12}", arn)
        job_id = arn.rsplit("/", 1)[1]
        assert keys(s3) == []  # nothing is written before the job ends
        seen, described = run_to_end(bedrock, arn)
        assert seen == ["Validating", "Scheduled", "InProgress", "Completed"]
        assert emulator.job(job_id).request["tags"] == [{"key": "run", "value": "r1"}]
    assert described["jobName"] == "job-a" and described["modelId"] == CLAUDE and described["roleArn"] == ROLE
    assert described["timeoutDurationInHours"] == 24
    assert described["jobExpirationTime"] > described["submitTime"]  # parsed by botocore into datetimes
    assert described["endTime"] >= described["submitTime"]
    assert described["totalRecordCount"] == described["successRecordCount"] == 120
    assert described["outputDataConfig"] == {"s3OutputDataConfig": {"s3Uri": f"s3://{BUCKET}/out/"}}
    assert keys(s3) == [
        f"out/{job_id}/{MARKER_OBJECT}",
        f"out/{job_id}/job-00000.jsonl.out",
        f"out/{job_id}/manifest.json.out",
    ]
    assert ENGINE_LABEL in s3.get_object(Bucket=BUCKET, Key=f"out/{job_id}/{MARKER_OBJECT}")["Body"].read().decode()

    lines = read_lines(s3, f"out/{job_id}/job-00000.jsonl.out")
    assert sorted(line["recordId"] for line in lines) == [f"CALL{i:07d}" for i in range(120)]
    assert [line["recordId"] for line in lines] != [f"CALL{i:07d}" for i in range(120)]  # join on recordId
    by_id = {line["recordId"]: line for line in lines}
    output = by_id["CALL0000007"]["modelOutput"]
    assert set(by_id["CALL0000007"]) == {"recordId", "modelInput", "modelOutput"}
    assert by_id["CALL0000007"]["modelInput"] == claude_input(transcript(7))
    assert output["type"] == "message" and output["role"] == "assistant" and ENGINE_LABEL in output["model"]
    assert output["content"] == [{"type": "text", "text": "Caller 7 asked about a late refund."}]
    assert output["stop_reason"] == "end_turn"

    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=f"out/{job_id}/manifest.json.out")["Body"].read())
    assert manifest == {
        "totalRecordCount": 120,
        "processedRecordCount": 120,
        "successRecordCount": 120,
        "errorRecordCount": 0,
        "inputTokenCount": sum(line["modelOutput"]["usage"]["input_tokens"] for line in lines),
        "outputTokenCount": sum(line["modelOutput"]["usage"]["output_tokens"] for line in lines),
    }
    assert output["usage"] == {"input_tokens": 14, "output_tokens": 7}  # words, deterministically


def test_steps_zero_ends_the_job_inside_create(aws):
    s3, bedrock, _ = aws
    uri = put_jsonl(s3, "in/job-00000.jsonl", records(100))
    with install_bedrock_engine(steps=0):
        arn = create(bedrock, uri)
        assert bedrock.get_model_invocation_job(jobIdentifier=arn)["status"] == "Completed"


def test_a_folder_input_gives_one_out_file_per_jsonl_file(aws):
    s3, bedrock, _ = aws
    put_jsonl(s3, "in/part-a.jsonl", records(60))
    put_jsonl(s3, "in/nested/part-b.jsonl", records(50, start=60))
    s3.put_object(Bucket=BUCKET, Key="in/README.txt", Body=b"not input")
    with install_bedrock_engine(steps=1):
        arn = create(bedrock, f"s3://{BUCKET}/in/")
        _, described = run_to_end(bedrock, arn)
    job_id = arn.rsplit("/", 1)[1]
    assert described["status"] == "Completed" and described["totalRecordCount"] == 110
    assert len(read_lines(s3, f"out/{job_id}/part-a.jsonl.out")) == 60
    assert len(read_lines(s3, f"out/{job_id}/nested/part-b.jsonl.out")) == 50


def test_a_record_without_record_id_gets_one_in_the_output(aws):
    s3, bedrock, _ = aws
    lines = records(100)
    del lines[3]["recordId"]
    uri = put_jsonl(s3, "in/job-00000.jsonl", lines)
    with install_bedrock_engine(steps=0):
        arn = create(bedrock, uri)
    out = read_lines(s3, f"out/{arn.rsplit('/', 1)[1]}/job-00000.jsonl.out")
    added = [line["recordId"] for line in out if not line["recordId"].startswith("CALL")]
    assert len(added) == 1 and re.fullmatch(r"[A-Z0-9]{11}", added[0])


# ---------------------------------------------------------------- failures


def test_error_records_get_an_error_object_and_the_job_still_completes(aws):
    s3, bedrock, _ = aws
    uri = put_jsonl(s3, "in/job-00000.jsonl", records(100, marks={4: " [[error-record]]", 9: " [[error-record]]"}))
    with install_bedrock_engine(steps=0):
        arn = create(bedrock, uri)
        described = bedrock.get_model_invocation_job(jobIdentifier=arn)
    job_id = arn.rsplit("/", 1)[1]
    assert described["status"] == "Completed"  # per the docs, PartiallyCompleted means "not processed in time"
    assert described["errorRecordCount"] == 2 and described["successRecordCount"] == 98
    errors = {line["recordId"]: line for line in read_lines(s3, f"out/{job_id}/job-00000.jsonl.out") if "error" in line}
    assert sorted(errors) == ["CALL0000004", "CALL0000009"]
    assert errors["CALL0000004"]["error"]["errorCode"] == 400 and errors["CALL0000004"]["error"]["errorMessage"]
    assert "modelOutput" not in errors["CALL0000004"] and errors["CALL0000004"]["modelInput"]
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=f"out/{job_id}/manifest.json.out")["Body"].read())
    assert (manifest["processedRecordCount"], manifest["errorRecordCount"]) == (100, 2)


def test_error_records_can_end_the_job_partially_completed(aws):
    s3, bedrock, _ = aws
    uri = put_jsonl(s3, "in/job-00000.jsonl", records(100, marks={4: " [[error-record]]"}))
    with install_bedrock_engine(steps=0, partial_on_record_errors=True):
        described = bedrock.get_model_invocation_job(jobIdentifier=create(bedrock, uri))
    assert described["status"] == "PartiallyCompleted" and "1 of 100" in described["message"]


def test_a_body_that_does_not_fit_the_model_is_a_record_error(aws):
    s3, bedrock, _ = aws
    lines = records(100)
    lines[0]["modelInput"] = titan_input("Summarize: a Titan body sent to Claude.")
    uri = put_jsonl(s3, "in/job-00000.jsonl", lines)
    with install_bedrock_engine(steps=0):
        arn = create(bedrock, uri)
    out = {line["recordId"]: line for line in read_lines(s3, f"out/{arn.rsplit('/', 1)[1]}/job-00000.jsonl.out")}
    assert "Malformed input request" in out["CALL0000000"]["error"]["errorMessage"]


def test_fail_job_marker_fails_the_job_with_a_message_and_no_output(aws):
    s3, bedrock, _ = aws
    uri = put_jsonl(s3, "in/job-00000.jsonl", records(100, marks={42: " [[fail-job]]"}))
    with install_bedrock_engine(steps=2):
        seen, described = run_to_end(bedrock, create(bedrock, uri))
    assert seen == ["Validating", "Failed"]
    assert "CALL0000042" in described["message"] and ENGINE_LABEL in described["message"]
    assert not any(key.endswith(".jsonl.out") for key in keys(s3))


@pytest.mark.parametrize(
    "lines, expected",
    [
        (records(99), "fewer than the minimum of 100"),
        (records(100)[:-1] + ["{not json"], "is not valid JSON"),
        (records(99) + [{"recordId": "X1", "prompt": "no modelInput"}], "has no modelInput"),
    ],
)
def test_validation_failures_end_the_job_failed_after_validating(aws, lines, expected):
    s3, bedrock, _ = aws
    uri = put_jsonl(s3, "in/job-00000.jsonl", lines)
    with install_bedrock_engine():
        seen, described = run_to_end(bedrock, create(bedrock, uri))
    assert seen == ["Validating", "Failed"]
    assert expected in described["message"]
    assert keys(s3) == []


def test_quotas_are_configurable(aws):
    s3, bedrock, _ = aws
    uri = put_jsonl(s3, "in/job-00000.jsonl", records(30))
    with install_bedrock_engine(steps=0, min_records=10, max_records=20):
        described = bedrock.get_model_invocation_job(jobIdentifier=create(bedrock, uri))
    assert described["status"] == "Failed" and "more than the maximum of 20" in described["message"]


def test_a_missing_input_fails_the_job(aws):
    _, bedrock, _ = aws
    with install_bedrock_engine(steps=0):
        described = bedrock.get_model_invocation_job(jobIdentifier=create(bedrock, f"s3://{BUCKET}/nothing/here.jsonl"))
    assert described["status"] == "Failed" and "No .jsonl files" in described["message"]


def test_forced_end_states_and_fail_jobs(aws):
    s3, bedrock, _ = aws
    uri = put_jsonl(s3, "in/job-00000.jsonl", records(100))
    with install_bedrock_engine(steps=0, end_state="PartiallyCompleted", partial_fraction=0.25):
        partial = bedrock.get_model_invocation_job(jobIdentifier=create(bedrock, uri, name="partial"))
    assert partial["status"] == "PartiallyCompleted" and partial["processedRecordCount"] == 25
    assert len(read_lines(s3, f"out/{partial['jobArn'].rsplit('/', 1)[1]}/job-00000.jsonl.out")) == 25
    with install_bedrock_engine(end_state="Expired"):
        seen, expired = run_to_end(bedrock, create(bedrock, uri, name="expired"))
    assert seen == ["Validating", "Scheduled", "Expired"] and "did not start" in expired["message"]
    assert not any(key.startswith(f"out/{expired['jobArn'].rsplit('/', 1)[1]}/job") for key in keys(s3))
    with install_bedrock_engine(steps=0, fail_jobs={"doomed": "injected failure"}):
        failed = bedrock.get_model_invocation_job(jobIdentifier=create(bedrock, uri, name="doomed"))
    assert (failed["status"], failed["message"]) == ("Failed", "injected failure")


# ---------------------------------------------------------------- stop and list


def test_stop_moves_to_stopping_then_stopped_with_partial_output(aws):
    s3, bedrock, _ = aws
    uri = put_jsonl(s3, "in/job-00000.jsonl", records(100))
    with install_bedrock_engine():
        arn = create(bedrock, uri)
        statuses = [bedrock.get_model_invocation_job(jobIdentifier=arn)["status"] for _ in range(3)]
        assert statuses[-1] == "InProgress"
        bedrock.stop_model_invocation_job(jobIdentifier=arn)
        assert bedrock.get_model_invocation_job(jobIdentifier=arn)["status"] == "Stopped"
        with pytest.raises(ClientError) as stopped_again:
            bedrock.stop_model_invocation_job(jobIdentifier=arn)
        described = bedrock.get_model_invocation_job(jobIdentifier=arn)
    assert stopped_again.value.response["Error"]["Code"] == "ValidationException"
    assert described["processedRecordCount"] == 50 and described["totalRecordCount"] == 100


def test_stop_before_it_runs_writes_nothing(aws):
    s3, bedrock, _ = aws
    uri = put_jsonl(s3, "in/job-00000.jsonl", records(100))
    with install_bedrock_engine() as emulator:
        arn = create(bedrock, uri)
        bedrock.stop_model_invocation_job(jobIdentifier=arn)
        assert emulator.job(arn).status == "Stopping"
        assert bedrock.get_model_invocation_job(jobIdentifier=arn)["status"] == "Stopped"
    assert keys(s3) == []


def test_list_filters_sorts_and_paginates(aws):
    s3, bedrock, _ = aws
    uri = put_jsonl(s3, "in/job-00000.jsonl", records(100))
    with install_bedrock_engine():
        arns = [create(bedrock, uri, name=f"run-{i}") for i in range(3)]
        other = create(bedrock, uri, name="other")
        run_to_end(bedrock, arns[0])
        completed = bedrock.list_model_invocation_jobs(statusEquals="Completed")["invocationJobSummaries"]
        named = bedrock.list_model_invocation_jobs(nameContains="run-")["invocationJobSummaries"]
        pages = list(bedrock.get_paginator("list_model_invocation_jobs").paginate(PaginationConfig={"PageSize": 1}))
    assert [s["jobArn"] for s in completed] == [arns[0]]
    assert sorted(s["jobName"] for s in named) == ["run-0", "run-1", "run-2"]
    assert [s["jobArn"] for page in pages for s in page["invocationJobSummaries"]] == [other, *reversed(arns)]
    assert all(len(page["invocationJobSummaries"]) == 1 for page in pages)
    assert {
        "jobArn",
        "jobName",
        "modelId",
        "roleArn",
        "status",
        "submitTime",
        "inputDataConfig",
        "outputDataConfig",
    } <= set(named[0])


def test_unknown_job_is_resource_not_found(aws):
    _, bedrock, _ = aws
    with install_bedrock_engine(), pytest.raises(bedrock.exceptions.ResourceNotFoundException):
        bedrock.get_model_invocation_job(jobIdentifier="abcdef123456")


# ---------------------------------------------------------------- CreateModelInvocationJob's own rules


def test_a_repeated_client_request_token_returns_the_same_job(aws):
    s3, bedrock, _ = aws
    uri = put_jsonl(s3, "in/job-00000.jsonl", records(100))
    with install_bedrock_engine() as emulator:
        first = create(bedrock, uri, clientRequestToken="run-0123-job-0")
        again = create(bedrock, uri, clientRequestToken="run-0123-job-0")
        assert first == again and len(emulator.jobs) == 1
        assert bedrock.get_model_invocation_job(jobIdentifier=first)["clientRequestToken"] == "run-0123-job-0"


def test_a_repeated_job_name_with_another_token_is_a_conflict(aws):
    s3, bedrock, _ = aws
    uri = put_jsonl(s3, "in/job-00000.jsonl", records(100))
    with install_bedrock_engine():
        create(bedrock, uri, clientRequestToken="token-1")
        with pytest.raises(bedrock.exceptions.ConflictException):
            create(bedrock, uri, clientRequestToken="token-2")


def test_quota_and_throttling_errors_are_parsed_by_botocore(aws):
    s3, bedrock, _ = aws
    uri = put_jsonl(s3, "in/job-00000.jsonl", records(100))
    with install_bedrock_engine(quota_errors_on_submit=1, throttle_on_submit=1) as emulator:
        with pytest.raises(bedrock.exceptions.ThrottlingException) as throttled:
            create(bedrock, uri)
        with pytest.raises(bedrock.exceptions.ServiceQuotaExceededException) as quota:
            create(bedrock, uri)
        arn = create(bedrock, uri)
        assert emulator.calls["CreateModelInvocationJob"] == 3 and len(emulator.jobs) == 1
    assert throttled.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert quota.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert quota.value.response["Error"]["Code"] == "ServiceQuotaExceededException"
    assert quota.value.response["Error"]["Message"]
    assert arn


def test_botocore_retries_throttling_on_its_own(aws):
    s3, _, _ = aws
    uri = put_jsonl(s3, "in/job-00000.jsonl", records(100))
    retrying = boto3.client(
        "bedrock", region_name=REGION, config=Config(retries={"mode": "standard", "max_attempts": 3})
    )
    with install_bedrock_engine(throttle_on_submit=2) as emulator:
        assert create(retrying, uri)
        assert emulator.calls["CreateModelInvocationJob"] == 3


def test_max_active_jobs_per_model(aws):
    s3, bedrock, _ = aws
    uri = put_jsonl(s3, "in/job-00000.jsonl", records(100))
    with install_bedrock_engine(max_active_jobs=1, steps=1):
        first = create(bedrock, uri, name="first")
        with pytest.raises(bedrock.exceptions.ServiceQuotaExceededException):
            create(bedrock, uri, name="second")
        create(bedrock, uri, name="on-nova", model=NOVA)  # the quota is per model
        run_to_end(bedrock, first)
        assert create(bedrock, uri, name="second")


@pytest.mark.parametrize(
    "field, value, where",
    [
        ("roleArn", "not-a-role", "roleArn"),
        ("jobName", "bad name!", "jobName"),
        ("timeoutDurationInHours", 500, "timeoutDurationInHours"),
    ],
)
def test_constraints_botocore_leaves_to_the_service_are_validation_exceptions(aws, field, value, where):
    s3, bedrock, _ = aws
    uri = put_jsonl(s3, "in/job-00000.jsonl", records(100))
    request = {"jobName": "ok", "roleArn": ROLE, field: value}
    with install_bedrock_engine() as emulator, pytest.raises(bedrock.exceptions.ValidationException) as error:
        bedrock.create_model_invocation_job(
            modelId=CLAUDE,
            inputDataConfig={"s3InputDataConfig": {"s3Uri": uri}},
            outputDataConfig={"s3OutputDataConfig": {"s3Uri": f"s3://{BUCKET}/out/"}},
            **request,
        )
    assert f"at '{where}' failed to satisfy constraint" in error.value.response["Error"]["Message"]
    assert not emulator.jobs


def test_botocore_rejects_a_request_missing_a_required_parameter_before_it_is_sent(aws):
    s3, bedrock, _ = aws
    uri = put_jsonl(s3, "in/job-00000.jsonl", records(100))
    with install_bedrock_engine() as emulator, pytest.raises(ParamValidationError, match="roleArn"):
        bedrock.create_model_invocation_job(
            jobName="no-role",
            modelId=CLAUDE,
            inputDataConfig={"s3InputDataConfig": {"s3Uri": uri}},
            outputDataConfig={"s3OutputDataConfig": {"s3Uri": f"s3://{BUCKET}/out/"}},
        )
    assert emulator.calls["CreateModelInvocationJob"] == 0


# ---------------------------------------------------------------- model families


def test_nova_and_titan_batch_outputs_have_their_native_shapes(aws):
    s3, bedrock, _ = aws
    nova_uri = put_jsonl(s3, "nova/job-00000.jsonl", records(100, make=nova_input))
    titan_uri = put_jsonl(s3, "titan/job-00000.jsonl", records(100, make=titan_input))
    with install_bedrock_engine(steps=0):
        nova_id = create(bedrock, nova_uri, name="nova", model=NOVA).rsplit("/", 1)[1]
        titan_id = create(bedrock, titan_uri, name="titan", model=TITAN).rsplit("/", 1)[1]
    nova = {line["recordId"]: line["modelOutput"] for line in read_lines(s3, f"out/{nova_id}/job-00000.jsonl.out")}
    assert nova["CALL0000003"] == {
        "output": {"message": {"role": "assistant", "content": [{"text": "Caller 3 asked about a late refund."}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 14, "outputTokens": 7, "totalTokens": 21},
    }
    titan = {line["recordId"]: line["modelOutput"] for line in read_lines(s3, f"out/{titan_id}/job-00000.jsonl.out")}
    assert titan["CALL0000003"] == {
        "inputTextTokenCount": 16,
        "results": [
            {"tokenCount": 7, "outputText": "Caller 3 asked about a late refund.", "completionReason": "FINISHED"}
        ],
    }
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=f"out/{titan_id}/manifest.json.out")["Body"].read())
    assert manifest["inputTokenCount"] == sum(o["inputTextTokenCount"] for o in titan.values())


def test_summary_is_the_first_sentence_without_the_instruction_cut_to_max_tokens():
    assert summarize("Summarize this call transcript: One two three. Four five.", 10) == ("One two three.", False)
    assert summarize("Summarize this call transcript: One two three. Four five.", 2) == ("One two", True)
    assert summarize("Summarize: One two. Four.", 10) == ("One two.", False)
    assert summarize("Agent: Thanks for calling. How can I help?", 10) == ("Agent: Thanks for calling.", False)


def test_invoke_model_answers_each_family_in_its_native_shape(aws):
    _, _, runtime = aws
    with install_bedrock_engine():
        claude = runtime.invoke_model(
            modelId=CLAUDE,
            body=json.dumps(claude_input(transcript(1), max_tokens=3)),
            contentType="application/json",
            accept="application/json",
        )
        nova = runtime.invoke_model(modelId=NOVA, body=json.dumps(nova_input(transcript(2))))
        titan = runtime.invoke_model(modelId=TITAN, body=json.dumps(titan_input(transcript(3))))
    assert claude["contentType"] == "application/json"
    body = json.loads(claude["body"].read())
    assert body["content"] == [{"type": "text", "text": "Caller 1 asked"}] and body["stop_reason"] == "max_tokens"
    assert body["usage"]["output_tokens"] == 3
    assert json.loads(nova["body"].read())["output"]["message"]["content"][0]["text"].startswith("Caller 2")
    assert json.loads(titan["body"].read())["results"][0]["outputText"].startswith("Caller 3")


def test_invoke_model_errors(aws):
    _, _, runtime = aws
    with install_bedrock_engine(throttle_invocations=1):
        with pytest.raises(runtime.exceptions.ThrottlingException):
            runtime.invoke_model(modelId=CLAUDE, body=json.dumps(claude_input(transcript(1))))
        with pytest.raises(runtime.exceptions.ValidationException, match="error-record"):
            runtime.invoke_model(modelId=CLAUDE, body=json.dumps(claude_input(transcript(1, " [[error-record]]"))))
        with pytest.raises(runtime.exceptions.ValidationException, match="max_tokens"):
            runtime.invoke_model(
                modelId=CLAUDE,
                body=json.dumps(
                    {"anthropic_version": "bedrock-2023-05-31", "messages": [{"role": "user", "content": "hi"}]}
                ),
            )


# ---------------------------------------------------------------- the hook itself


def test_concurrent_clients_in_threads(aws):
    s3, _, _ = aws
    uri = put_jsonl(s3, "in/job-00000.jsonl", records(100))
    with install_bedrock_engine(steps=2) as emulator:

        def submit_and_finish(i: int) -> str:
            client = boto3.client("bedrock", region_name=REGION)
            _, described = run_to_end(client, create(client, uri, name=f"thread-{i}"))
            return described["status"]

        with ThreadPoolExecutor(max_workers=4) as pool:
            assert list(pool.map(submit_and_finish, range(8))) == ["Completed"] * 8
        assert len(emulator.jobs) == 8 and active_bedrock_emulator() is emulator


def test_uninstall_gives_the_routes_back_to_moto_and_forgets_the_jobs(aws):
    s3, bedrock, _ = aws
    from batch_pipeline_local.emulator.moto_hooks import answering_any_requests

    uri = put_jsonl(s3, "in/job-00000.jsonl", records(100))
    with install_bedrock_engine() as emulator:
        create(bedrock, uri)
        assert answering_any_requests()
    assert emulator.jobs == {} and not answering_any_requests()
    with pytest.raises(LookupError):
        active_bedrock_emulator()
    with pytest.raises(NotImplementedError):  # moto's own bedrock backend has no such action
        create(bedrock, uri, name="after")
    # moto's other Bedrock APIs keep working while the emulator is installed.
    with install_bedrock_engine():
        assert bedrock.list_model_customization_jobs()["modelCustomizationJobSummaries"] == []


def test_a_converse_record_with_tool_config_is_a_record_error_like_bedrocks_400():
    import pytest as _pytest

    from batch_pipeline_local.engines.bedrock_model import RecordFailure, answer

    body = {"messages": [{"role": "user", "content": [{"text": "Hi."}]}], "toolConfig": {"tools": []}}
    with _pytest.raises(RecordFailure, match="toolConfig"):
        answer("amazon.nova-lite-v1:0", body, "Converse")
    response, _, _ = answer("amazon.nova-lite-v1:0", {k: v for k, v in body.items() if k != "toolConfig"}, "Converse")
    assert set(response) == {"output", "stopReason", "usage", "metrics"}
