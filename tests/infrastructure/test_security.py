"""Security properties of the synthesized template, asserted one by one."""

from __future__ import annotations

import copy
import json

import pytest
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Match

from app import build_app


def buckets(template) -> dict:
    return template.find_resources("AWS::S3::Bucket")


def data_buckets(template) -> dict:
    return {k: v for k, v in buckets(template).items() if "VersioningConfiguration" in v["Properties"]}


def test_three_buckets_input_output_and_access_logs(template):
    assert len(buckets(template)) == 3
    assert len(data_buckets(template)) == 2


def test_every_bucket_blocks_public_access(template):
    for name, bucket in buckets(template).items():
        assert bucket["Properties"]["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, name


def test_data_buckets_use_the_rotating_kms_key_and_bucket_keys(template):
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    for name, bucket in data_buckets(template).items():
        rule = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms", name
        assert "KMSMasterKeyID" in rule["ServerSideEncryptionByDefault"], name
        assert rule["BucketKeyEnabled"] is True, name


def test_access_log_bucket_is_encrypted_with_s3_managed_keys(template):
    logs = [b for b in buckets(template).values() if "VersioningConfiguration" not in b["Properties"]]
    rule = logs[0]["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


def test_data_buckets_are_versioned_and_log_access(template):
    for name, bucket in data_buckets(template).items():
        assert bucket["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}, name
        assert "DestinationBucketName" in bucket["Properties"]["LoggingConfiguration"], name


def test_every_bucket_policy_denies_insecure_transport(template):
    policies = template.find_resources("AWS::S3::BucketPolicy")
    assert len(policies) == 3
    for name, policy in policies.items():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in statements
        ), name


def test_intermediate_objects_expire_by_tag(template):
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "LifecycleConfiguration": {
                "Rules": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Id": "ExpireIntermediateObjects",
                                "TagFilters": [{"Key": "batch-pipeline:intermediate", "Value": "true"}],
                                "ExpirationInDays": 30,
                                "Status": "Enabled",
                            }
                        )
                    ]
                )
            },
        },
    )


def test_input_bucket_sends_events_to_eventbridge_and_a_rule_filters_pipeline_prefixes(template):
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "NotificationConfiguration": {"EventBridgeConfiguration": {"EventBridgeEnabled": True}},
        },
    )
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": Match.object_like(
                {
                    "source": ["aws.s3"],
                    "detail-type": ["Object Created"],
                    "detail": Match.object_like({"object": {"key": Match.array_with([{"prefix": "summarize/"}])}}),
                }
            ),
        },
    )


def test_functions_run_arm64_latest_python_with_tracing_dlq_and_encrypted_environment(template):
    functions = template.find_resources("AWS::Lambda::Function")
    assert len(functions) >= 6  # intake, job control, job events, collect, manifest, notify
    for name, fn in functions.items():
        props = fn["Properties"]
        assert props["Runtime"] == "python3.14", name
        assert props["Architectures"] == ["arm64"], name
        assert props["TracingConfig"] == {"Mode": "Active"}, name
        assert "TargetArn" in props["DeadLetterConfig"], name
        assert "KmsKeyArn" in props, name
        assert props["LoggingConfig"]["LogGroup"], name


def test_powertools_layer_is_resolved_from_the_public_ssm_parameter(template):
    parameters = template.to_json()["Parameters"]
    ssm = [
        p for p in parameters.values() if p.get("Default") == "/aws/service/powertools/python/arm64/python3.14/latest"
    ]
    assert ssm and ssm[0]["Type"] == "AWS::SSM::Parameter::Value<String>"


def test_log_groups_have_retention_and_encryption(template):
    for name, group in template.find_resources("AWS::Logs::LogGroup").items():
        assert group["Properties"]["RetentionInDays"] == 30, name
        assert "KmsKeyId" in group["Properties"], name


def test_queues_and_topic_are_encrypted_and_tls_only(template):
    template.has_resource_properties("AWS::SQS::Queue", {"KmsMasterKeyId": Match.any_value()})
    template.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})
    for kind in ("AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy"):
        for name, policy in template.find_resources(kind).items():
            statements = policy["Properties"]["PolicyDocument"]["Statement"]
            assert any(s["Effect"] == "Deny" and "aws:SecureTransport" in str(s["Condition"]) for s in statements), name


def test_state_machine_is_standard_logs_all_and_traces(template):
    template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "StateMachineType": "STANDARD",
            "LoggingConfiguration": Match.object_like({"Level": "ALL", "IncludeExecutionData": True}),
            "TracingConfiguration": {"Enabled": True},
        },
    )


def _statements(template):
    for name, policy in template.find_resources("AWS::IAM::Policy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            yield name, statement


def test_no_policy_allows_all_actions_or_all_s3(template):
    for name, statement in _statements(template):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert "*" not in actions and "s3:*" not in actions, name


def test_pass_role_always_names_the_service(template):
    for name, statement in _statements(template):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if "iam:PassRole" in actions:
            assert "iam:PassedToService" in str(statement.get("Condition")), name


def test_sagemaker_execution_role_reads_shards_and_writes_only_raw(template):
    roles = [n for n in template.find_resources("AWS::IAM::Role") if n.startswith("ModelsExecutionRole")]
    assert roles
    for name, statement in _statements(template):
        if not name.startswith("ModelsExecutionRole"):
            continue
        if statement.get("Sid") == "WriteRawOutputs":
            assert statement["Resource"]["Fn::Join"][1][-1] == "/runs/*/*/raw/*"
        if statement.get("Sid") == "ReadRunShards":
            assert statement["Resource"]["Fn::Join"][1][-1] == "/runs/*/*/shards/*"


def test_job_control_is_limited_to_this_apps_transform_jobs(template):
    found = False
    for name, statement in _statements(template):
        if statement.get("Sid") == "ControlOwnTransformJobs":
            found = True
            assert "transform-job/llmbp-*" in str(statement["Resource"]), name
    assert found


def test_sagemaker_models_use_network_isolation(template):
    models = template.find_resources("AWS::SageMaker::Model")
    assert len(models) == 2
    for name, model in models.items():
        assert model["Properties"]["EnableNetworkIsolation"] is True, name


def test_cdk_nag_has_no_unacknowledged_finding(synthesized):
    app, _, _ = synthesized
    app.synth()  # raises on any unacknowledged AwsSolutions finding


def test_cdk_nag_passes_in_a_concrete_account_and_region_as_cdk_deploy_synthesizes(default_context, monkeypatch):
    # `cdk deploy` with credentials sets CDK_DEFAULT_ACCOUNT/REGION and app.py pins the stack to them, so ARNs
    # render with a literal account: every acknowledgment's evidence must still match (it did not, on main).
    monkeypatch.setenv("CDK_DEFAULT_ACCOUNT", "111122223333")
    monkeypatch.setenv("CDK_DEFAULT_REGION", "us-east-1")
    app, stack = build_app(copy.deepcopy(default_context))
    assert stack.account == "111122223333" and stack.region == "us-east-1"
    app.synth()  # raises on any unacknowledged AwsSolutions finding


def test_cdk_nag_fails_the_synth_on_a_new_finding(default_context):
    app, stack = build_app(copy.deepcopy(default_context))
    sqs.Queue(stack, "UnencryptedQueue", encryption=sqs.QueueEncryption.UNENCRYPTED)
    with pytest.raises(RuntimeError, match="AwsSolutions-SQS2"):
        app.synth()


def test_intake_reads_only_pipeline_prefixes_and_writes_only_runs_and_rejects(template):
    seen = set()
    for name, statement in _statements(template):
        if not name.startswith("FunctionsIntakeRole"):
            continue
        resources = str(statement["Resource"])
        if statement.get("Sid") == "ReadUploads":
            seen.add("read")
            for prefix in ("/summarize/*", "/classify/*", "/bedrock-summarize/*"):
                assert prefix in resources
        if statement.get("Sid") == "WriteRunsAndRejects":
            seen.add("write")
            assert "/runs/*" in resources and "/rejected/*" in resources and "/raw/" not in resources
    assert seen == {"read", "write"}


def test_alarms_notify_the_topic_on_failed_executions_dead_letters_and_function_errors(template):
    alarms = template.find_resources("AWS::CloudWatch::Alarm")
    metrics = {a["Properties"]["MetricName"] for a in alarms.values()}
    assert {"ExecutionsFailed", "ExecutionsTimedOut", "ApproximateNumberOfMessagesVisible", "Errors"} <= metrics
    assert sum(a["Properties"]["MetricName"] == "Errors" for a in alarms.values()) == len(
        template.find_resources("AWS::Lambda::Function")
    )
    for name, alarm in alarms.items():
        assert alarm["Properties"]["AlarmActions"], name
    template.resource_count_is("AWS::CloudWatch::Dashboard", 1)


def test_dashboard_shows_backend_jobs_including_those_queued_behind_a_quota(template):
    (dashboard,) = template.find_resources("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for metric in ("JobSubmissions", "JobSubmissionsDeferred", "JobsSucceeded", "JobsPartial", "JobsFailed"):
        assert f'\\"{metric}\\"' in body, metric
