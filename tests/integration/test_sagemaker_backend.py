import json
import re

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from sagemaker_helpers import BUCKET, RUN_ID, LambdaContext, make_folder, make_run, pipeline, prefix, write_shards

from batch_pipeline.config.app import ConfigError
from batch_pipeline.contracts import Job, JobState
from batch_pipeline.jobs.backends import RawOutput, SubmitDeferred, backend_for
from batch_pipeline.jobs.backends.sagemaker import (
    SageMakerBackend,
    has_local_storage,
    transform_job_name,
    transform_job_request,
)
from batch_pipeline.storage.layout import RunFolder
from tests.job_steps import check_job, submit_job

NAME = transform_job_name(RUN_ID, 0)
RAW = f"s3://{BUCKET}/runs/summarize/{RUN_ID}/raw/{NAME}/"


@pytest.fixture(autouse=True)
def _no_kms(monkeypatch):
    monkeypatch.delenv("OUTPUT_KMS_KEY_ARN", raising=False)
    monkeypatch.delenv("LOCAL_STAND_IN", raising=False)
    monkeypatch.delenv("JOB_NAME_PREFIX", raising=False)


# ---------------------------------------------------------------- names


def test_job_names_are_deterministic_unique_and_valid():
    names = {transform_job_name(run_id, index) for run_id in (RUN_ID, RUN_ID + "x", "a" * 80) for index in range(3)}
    assert len(names) == 9
    assert transform_job_name(RUN_ID, 1) == transform_job_name(RUN_ID, 1)
    for name in names:
        assert len(name) <= 63
        assert re.fullmatch(r"[a-z0-9](-*[a-z0-9]){0,62}", name), name
        assert name.startswith("llmbp-")


def test_run_ids_sharing_their_head_still_get_distinct_names():
    # Truncation keeps the head; the hash over the whole run id tells them apart.
    first, second = "x" * 70 + "-aaaaaaaaaaaaaaaa", "x" * 70 + "-bbbbbbbbbbbbbbbb"
    assert transform_job_name(first, 0) != transform_job_name(second, 0)


def test_prefix_from_environment(monkeypatch):
    monkeypatch.setenv("JOB_NAME_PREFIX", "MyApp")
    assert transform_job_name("run_1", 2).startswith("myapp-run-1-")


# ---------------------------------------------------------------- request shape


def test_transform_job_request_exact_shape_for_summarize():
    request = transform_job_request(
        make_folder("summarize"), Job.model_validate({"index": 0}), pipeline("summarize", "llmbp-flan-t5-large")
    )
    assert request == {
        "TransformJobName": NAME,
        "ModelName": "llmbp-flan-t5-large",
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": 1,
        "ModelClientConfig": {"InvocationsTimeoutInSeconds": 3600, "InvocationsMaxRetries": 1},
        "Environment": {
            "HYPER_PARAMS": "{'batch_size': 4, 'max_length': 50, 'top_k': 50, 'top_p': 0.95, 'do_sample': True}"
        },
        "TransformInput": {
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/runs/summarize/{RUN_ID}/shards/"}
            },
            "ContentType": "application/jsonlines",
            "CompressionType": "None",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": RAW, "Accept": "application/jsonlines", "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.p3.2xlarge", "InstanceCount": 1},
        "Tags": [
            {"Key": "batch-pipeline:run-id", "Value": RUN_ID},
            {"Key": "batch-pipeline:pipeline", "Value": "summarize"},
            {"Key": "batch-pipeline:job-index", "Value": "0"},
        ],
    }


def test_request_without_hyper_params_has_no_environment_and_uses_plan_uris(monkeypatch):
    monkeypatch.setenv("OUTPUT_KMS_KEY_ARN", "arn:aws:kms:us-east-1:123456789012:key/abc")
    settings = pipeline("classify").pipeline.sagemaker.model_copy(
        update={"max_concurrent_transforms": 2, "instance_count": 3}
    )
    classify = pipeline("classify")
    classify = classify.model_copy(update={"pipeline": classify.pipeline.model_copy(update={"sagemaker": settings})})
    run = make_run("classify")
    job = {
        "index": 2,
        "name": "llmbp-given-name",
        "input_uri": f"s3://{BUCKET}/{prefix(run)}shards/",
        "output_uri": f"s3://{BUCKET}/{prefix(run)}raw/llmbp-given-name",
    }
    request = transform_job_request(RunFolder.of(run), Job.model_validate(job), classify)
    assert "Environment" not in request
    assert request["TransformJobName"] == "llmbp-given-name"
    assert request["TransformOutput"]["S3OutputPath"] == f"s3://{BUCKET}/{prefix(run)}raw/llmbp-given-name/"
    assert request["MaxConcurrentTransforms"] == 2
    assert request["TransformResources"] == {
        "InstanceType": "ml.c5.2xlarge",
        "InstanceCount": 3,
        "VolumeKmsKeyId": "arn:aws:kms:us-east-1:123456789012:key/abc",
    }
    assert request["TransformOutput"]["KmsKeyId"] == "arn:aws:kms:us-east-1:123456789012:key/abc"


def test_no_volume_key_on_instances_with_local_storage(monkeypatch):
    monkeypatch.setenv("OUTPUT_KMS_KEY_ARN", "arn:aws:kms:us-east-1:123456789012:key/abc")
    assert (
        has_local_storage("ml.g5.2xlarge") and has_local_storage("ml.m5d.large") and has_local_storage("ml.g4dn.xlarge")
    )
    assert not has_local_storage("ml.p3.2xlarge") and not has_local_storage("ml.c5.2xlarge")
    summarize = pipeline("summarize")
    settings = summarize.pipeline.sagemaker.model_copy(update={"instance_type": "ml.g5.2xlarge"})
    summarize = summarize.model_copy(update={"pipeline": summarize.pipeline.model_copy(update={"sagemaker": settings})})
    request = transform_job_request(make_folder("summarize"), Job.model_validate({"index": 0}), summarize)
    assert "VolumeKmsKeyId" not in request["TransformResources"]
    assert request["TransformOutput"]["KmsKeyId"].endswith("key/abc")


def test_local_stand_in_tag(monkeypatch):
    monkeypatch.setenv("LOCAL_STAND_IN", "1")
    request = transform_job_request(make_folder("summarize"), Job.model_validate({"index": 0}), pipeline("summarize"))
    assert {"Key": "batch-pipeline:engine", "Value": "local stand-in engine (not a model)"} in request["Tags"]


def test_request_refuses_a_pipeline_without_model_name():
    with pytest.raises(ConfigError, match="sagemaker_model_name"):
        transform_job_request(
            make_folder("summarize"),
            Job.model_validate({"index": 0}),
            pipeline("summarize").model_copy(update={"sagemaker_model_name": None}),
        )


# ---------------------------------------------------------------- Stubber: exact calls


def _stubbed():
    client = boto3.client("sagemaker", region_name="us-east-1")
    return client, Stubber(client)


def _not_found(stubber, name):
    stubber.add_client_error(
        "describe_transform_job",
        service_error_code="ValidationException",
        service_message=f"Could not find requested job with name {name}",
        expected_params={"TransformJobName": name},
    )


def _described(name, status, reason=None):
    response = {
        "TransformJobName": name,
        "TransformJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:transform-job/{name}",
        "TransformJobStatus": status,
        "ModelName": "llmbp-flan-t5-large",
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/p/"}}},
        "TransformResources": {"InstanceType": "ml.p3.2xlarge", "InstanceCount": 1},
        "TransformOutput": {"S3OutputPath": RAW},
        "CreationTime": "2026-01-01T00:00:00Z",
    }
    if reason:
        response["FailureReason"] = reason
    return response


def test_submit_sends_exactly_the_request():
    client, stubber = _stubbed()
    run, summarize = make_run("summarize"), pipeline("summarize", "llmbp-flan-t5-large")
    _not_found(stubber, NAME)
    stubber.add_response(
        "create_transform_job",
        {"TransformJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:transform-job/{NAME}"},
        expected_params=transform_job_request(RunFolder.of(run), Job.model_validate({"index": 0}), summarize),
    )
    with stubber:
        state = SageMakerBackend(summarize, sagemaker=client).submit(
            RunFolder.of(run), Job.model_validate({"index": 0})
        )
    stubber.assert_no_pending_responses()
    assert state == JobState(
        name=NAME,
        arn=f"arn:aws:sagemaker:us-east-1:123456789012:transform-job/{NAME}",
        status="InProgress",
        state="running",
        failure_reason=None,
        output_uri=RAW,
    )
    assert not state.done


def test_submit_after_a_lost_response_finds_the_job_when_create_says_the_name_is_taken():
    client, stubber = _stubbed()
    _not_found(stubber, NAME)
    stubber.add_client_error(
        "create_transform_job",
        service_error_code="ResourceInUse",
        service_message="Job name must be unique within an AWS account and region",
    )
    stubber.add_response("describe_transform_job", _described(NAME, "InProgress"), {"TransformJobName": NAME})
    with stubber:
        state = SageMakerBackend(pipeline("summarize"), sagemaker=client).submit(
            make_folder("summarize"), Job.model_validate({"index": 0})
        )
    assert state.status == "InProgress" and state.arn.endswith(NAME)


def test_quota_refusal_is_deferred_and_the_loop_queues_then_resubmits():
    client, stubber = _stubbed()
    backend = SageMakerBackend(pipeline("summarize"), sagemaker=client)
    _not_found(stubber, NAME)
    stubber.add_client_error(
        "create_transform_job",
        service_error_code="ResourceLimitExceeded",
        service_message="The account-level service limit 'ml.p3.2xlarge for transform job usage' is 2",
    )
    _not_found(stubber, NAME)
    stubber.add_client_error(
        "create_transform_job", service_error_code="ResourceLimitExceeded", service_message="limit"
    )
    _not_found(stubber, NAME)
    stubber.add_response(
        "create_transform_job", {"TransformJobArn": "arn:aws:sagemaker:us-east-1:123456789012:transform-job/" + NAME}
    )
    run = make_run("summarize")
    with stubber:
        with pytest.raises(SubmitDeferred, match="ResourceLimitExceeded"):
            backend.submit(RunFolder.of(run), Job.model_validate({"index": 0}))
        queued = submit_job(
            {"run": run, "job": {"index": 0}, "attempt": 0}, backend, RunFolder.of(run), now=lambda: 1000.0
        )
        assert queued["job"]["state"] == "queued" and queued["job"]["arn"] is None and not queued["job"]["done"]
        assert "ResourceLimitExceeded" in queued["job"]["last_refusal"]
        resubmitted = check_job(
            {"run": run, "job": queued["job"], "attempt": 1}, backend, RunFolder.of(run), now=lambda: 1060.0
        )
    assert resubmitted["job"]["state"] == "running" and resubmitted["job"]["arn"].endswith(NAME)
    assert "last_refusal" not in resubmitted["job"]
    stubber.assert_no_pending_responses()


def test_other_create_errors_propagate():
    client, stubber = _stubbed()
    _not_found(stubber, NAME)
    stubber.add_client_error(
        "create_transform_job",
        service_error_code="ValidationException",
        service_message='Could not find model "llmbp-flan-t5-large".',
    )
    with stubber, pytest.raises(Exception, match="Could not find model"):
        SageMakerBackend(pipeline("summarize"), sagemaker=client).submit(
            make_folder("summarize"), Job.model_validate({"index": 0})
        )


def test_stop_calls_stop_transform_job_and_reports_stopping():
    client, stubber = _stubbed()
    stubber.add_response("stop_transform_job", {}, {"TransformJobName": NAME})
    stubber.add_response("describe_transform_job", _described(NAME, "Stopping"), {"TransformJobName": NAME})
    with stubber:
        state = SageMakerBackend(pipeline("summarize"), sagemaker=client).stop(
            make_folder("summarize"), Job.model_validate({"index": 0, "name": NAME})
        )
    stubber.assert_no_pending_responses()
    assert state.status == "Stopping" and state.state == "running" and not state.done


def test_stop_of_an_ended_job_returns_its_final_state():
    client, stubber = _stubbed()
    stubber.add_client_error(
        "stop_transform_job", service_error_code="ValidationException", service_message="The job is not in progress"
    )
    stubber.add_response("describe_transform_job", _described(NAME, "Completed"), {"TransformJobName": NAME})
    with stubber:
        state = SageMakerBackend(pipeline("summarize"), sagemaker=client).stop(
            make_folder("summarize"), Job.model_validate({"index": 0, "name": NAME})
        )
    assert state.state == "succeeded" and state.done


@pytest.mark.parametrize(
    "status, state, done",
    [
        ("InProgress", "running", False),
        ("Stopping", "running", False),
        ("Completed", "succeeded", True),
        ("Failed", "failed", True),
        ("Stopped", "stopped", True),
    ],
)
def test_status_maps_every_transform_job_status(status, state, done):
    client, stubber = _stubbed()
    reason = "ClientError: model container crashed" if status == "Failed" else None
    stubber.add_response("describe_transform_job", _described(NAME, status, reason), {"TransformJobName": NAME})
    with stubber:
        result = SageMakerBackend(pipeline("summarize"), sagemaker=client).status(
            make_folder("summarize"), Job.model_validate({"index": 0})
        )
    assert (result.status, result.state, result.done, result.failure_reason) == (
        status,
        state,
        done,
        reason,
    )
    assert result.output_uri == RAW


# ---------------------------------------------------------------- moto


@pytest.fixture
def aws():
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        yield s3, boto3.client("sagemaker", region_name="us-east-1")


def test_moto_submit_describe_and_idempotent_resubmit(aws):
    s3, sagemaker = aws
    backend = backend_for(pipeline("summarize"), sagemaker=sagemaker, s3=s3, bedrock=object())
    run = make_run("summarize")
    first = backend.submit(RunFolder.of(run), Job.model_validate({"index": 0}))
    created = sagemaker.describe_transform_job(TransformJobName=NAME)["CreationTime"]
    again = backend.submit(RunFolder.of(run), Job.model_validate({"index": 0}))
    assert again.arn == first.arn
    assert again.status == "Completed"  # moto ends jobs at once; the second submit described, not created
    assert sagemaker.describe_transform_job(TransformJobName=NAME)["CreationTime"] == created
    assert [j["TransformJobName"] for j in sagemaker.list_transform_jobs()["TransformJobSummaries"]] == [NAME]
    described = sagemaker.describe_transform_job(TransformJobName=NAME)
    assert described["Environment"] == {
        "HYPER_PARAMS": "{'batch_size': 4, 'max_length': 50, 'top_k': 50, 'top_p': 0.95, 'do_sample': True}"
    }
    assert described["TransformInput"]["SplitType"] == "Line"
    assert backend.status(RunFolder.of(run), Job.model_validate({"index": 0})).state == "succeeded"


def test_moto_status_of_an_unknown_job_raises(aws):
    s3, sagemaker = aws
    with pytest.raises(LookupError, match="does not exist"):
        SageMakerBackend(pipeline("summarize"), sagemaker=sagemaker, s3=s3).status(
            make_folder("summarize"), Job.model_validate({"index": 9})
        )


def test_raw_outputs_pair_each_shard_with_its_out_object(aws):
    s3, sagemaker = aws
    run = make_run("classify")
    keys = write_shards(s3, run, [[{"id": 1}], [{"id": 2}]])
    backend = SageMakerBackend(pipeline("classify"), sagemaker=sagemaker, s3=s3)
    name = transform_job_name(run["run_id"], 0)
    listed = list(backend.raw_outputs(RunFolder.of(run), Job.model_validate({"index": 0})))
    planned = list(backend.raw_outputs(RunFolder.of(run), Job.model_validate({"index": 0, "shard_keys": keys})))
    assert (
        listed
        == planned
        == [
            RawOutput(
                input_key=key,
                output_key=f"{prefix(run)}raw/{name}/{key.rsplit('/', 1)[1]}.out",
                join="position",
                input_id_field="id",
                check_field="sequences",
            )
            for key in keys
        ]
    )
    summarize = SageMakerBackend(pipeline("summarize"), sagemaker=sagemaker, s3=s3)
    assert {
        raw.join
        for raw in summarize.raw_outputs(
            make_folder("summarize"), Job.model_validate({"index": 0, "shard_keys": ["k"]})
        )
    } == {"id"}


def test_job_control_handler_submits_and_checks(aws, monkeypatch):
    from batch_pipeline.config.runtime import dump_runtime_pipelines
    from batch_pipeline.handlers import job_control

    s3, sagemaker = aws
    monkeypatch.setenv("PIPELINES", dump_runtime_pipelines({"summarize": pipeline("summarize")}))
    monkeypatch.setenv("POLL_INITIAL_SECONDS", "30")
    monkeypatch.setenv("POLL_JITTER", "0")
    monkeypatch.setattr("batch_pipeline.settings.client", lambda service: {"s3": s3, "sagemaker": sagemaker}[service])
    run = make_run("summarize")
    submitted = job_control.handler(
        {"action": "submit", "run": run, "job": {"index": 0, "name": NAME, "records": 3}, "attempt": 0}, LambdaContext()
    )
    assert submitted["run"] == run and submitted["attempt"] == 1 and submitted["wait_seconds"] == 30
    assert submitted["job"]["records"] == 3 and submitted["job"]["state"] == "running"
    checked = job_control.handler(
        {"action": "status", **{k: submitted[k] for k in ("run", "job", "attempt")}}, LambdaContext()
    )
    assert checked["job"]["done"] and checked["job"]["state"] == "succeeded" and checked["wait_seconds"] == 0
    json.dumps(checked)  # a Step Functions payload must be JSON
    with pytest.raises(ValueError, match="unknown action"):
        job_control.handler({"action": "check", "run": run, "job": {}, "attempt": 0}, LambdaContext())
