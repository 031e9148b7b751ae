"""RealtimeEndpoints in a minimal app: one real-time FLAN-T5 endpoint and one streaming TGI endpoint.

Asserts the security-relevant properties one by one (encryption, roles, data capture, autoscaling),
then that cdk-nag has no unacknowledged finding and cfn-lint has nothing to say.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template
from cdk_nag import AwsSolutionsChecks

from batch_pipeline.config.app import ConfigError, load_app_config
from stacks.endpoints import RealtimeEndpoints, has_instance_storage
from stacks.nag import acknowledge

os.environ.setdefault("CDK_VALIDATION", "false")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

REPO = Path(__file__).resolve().parents[2]
BASE = json.loads((REPO / "cdk.json").read_text())["context"]["batch-pipeline"]
STACK = "LlmTest"

TGI_IMAGE = (
    "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-tgi-inference:"
    "2.3.0-tgi2.2.0-gpu-py310-cu121-ubuntu22.04"
)
FALCON = {
    "backend": "sagemaker",
    "task": "text-generation",
    "jumpstart_model_id": "huggingface-llm-falcon-7b-instruct-bf16",
    "network_isolation": False,
    "regions": {
        "us-east-1": {
            "image_uri": TGI_IMAGE,
            "environment": {
                "HF_MODEL_ID": "tiiuae/falcon-7b-instruct",
                "SM_NUM_GPUS": "1",
                "MAX_INPUT_LENGTH": "1024",
                "MAX_TOTAL_TOKENS": "2048",
            },
        }
    },
}
ENDPOINTS = {
    "flan-t5-realtime": {
        "model": "flan-t5-large",
        "instance_type": "ml.p3.2xlarge",
        "instance_count": 1,
        "max_instance_count": 4,
        "invocations_per_instance": 120,
        "data_capture": True,
        "data_capture_percent": 50,
    },
    "falcon-stream": {
        "model": "falcon-7b-instruct",
        "instance_type": "ml.g5.2xlarge",
        "startup_health_check_timeout_seconds": 900,
    },
}


def raw_config(**changes) -> dict:
    raw = copy.deepcopy(BASE)
    raw["models"]["falcon-7b-instruct"] = copy.deepcopy(FALCON)
    raw["endpoints"] = copy.deepcopy(ENDPOINTS)
    raw.update(changes)
    return raw


def build(raw: dict, *, use_key: bool = True, execution_role_for=None):
    app = cdk.App(context={"aws:cdk:bundling-stacks": []})
    stack = cdk.Stack(app, STACK)
    key = kms.Key(stack, "DataKey", enable_key_rotation=True) if use_key else None
    bucket = s3.Bucket(
        stack,
        "Output",
        encryption=s3.BucketEncryption.KMS if key else s3.BucketEncryption.S3_MANAGED,
        encryption_key=key,
        enforce_ssl=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
    )
    acknowledge(bucket, "AwsSolutions-S1", "Test fixture standing in for the stack's output bucket, which logs access.")
    endpoints = RealtimeEndpoints(
        stack,
        "Endpoints",
        config=load_app_config(raw),
        region="us-east-1",
        output_bucket=bucket,
        key=key,
        execution_role_for=execution_role_for,
    )
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, stack, endpoints, Template.from_stack(stack)


@pytest.fixture(scope="module")
def built():
    return build(raw_config())


@pytest.fixture(scope="module")
def template(built):
    return built[3]


def resources_of(template: Template, kind: str, key: str) -> dict:
    """The one resource of `kind` whose logical id names endpoint `key`."""
    token = key.replace("-", "")
    found = {k: v for k, v in template.find_resources(kind).items() if token in k.replace("-", "")}
    assert len(found) == 1, (kind, key, list(found))
    return next(iter(found.values()))


def policy_statements(template: Template, key: str) -> dict[str, dict]:
    policy = resources_of(template, "AWS::IAM::Policy", key)
    return {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}


def key_arn_ref(template: Template) -> dict:
    [key_id] = template.find_resources("AWS::KMS::Key")
    return {"Fn::GetAtt": [key_id, "Arn"]}


def bucket_id(template: Template) -> str:
    [bucket] = template.find_resources("AWS::S3::Bucket")
    return bucket


# ---------------------------------------------------------------- resources per endpoint


def test_one_model_config_endpoint_and_role_per_configured_endpoint(built, template):
    _, _, endpoints, _ = built
    template.resource_count_is("AWS::SageMaker::Model", 2)
    template.resource_count_is("AWS::SageMaker::EndpointConfig", 2)
    template.resource_count_is("AWS::SageMaker::Endpoint", 2)
    template.resource_count_is("AWS::IAM::Role", 2)
    assert endpoints.endpoint_names == {
        "falcon-stream": f"{STACK}-falcon-stream",
        "flan-t5-realtime": f"{STACK}-flan-t5-realtime",
    }
    template.has_resource_properties("AWS::SageMaker::Endpoint", {"EndpointName": f"{STACK}-flan-t5-realtime"})


def test_models_come_from_the_catalog_for_the_region(template):
    flan = resources_of(template, "AWS::SageMaker::Model", "flan-t5-realtime")["Properties"]
    assert flan["EnableNetworkIsolation"] is True
    assert (
        flan["PrimaryContainer"]["ModelDataUrl"]
        == BASE["models"]["flan-t5-large"]["regions"]["us-east-1"]["model_data_uri"]
    )
    assert flan["PrimaryContainer"]["Image"] == BASE["models"]["flan-t5-large"]["regions"]["us-east-1"]["image_uri"]

    falcon = resources_of(template, "AWS::SageMaker::Model", "falcon-stream")["Properties"]
    # TGI fetches tiiuae/falcon-7b-instruct from the Hugging Face Hub, so it needs the network.
    assert falcon["EnableNetworkIsolation"] is False
    assert "ModelDataUrl" not in falcon["PrimaryContainer"]
    assert falcon["PrimaryContainer"]["Image"] == TGI_IMAGE
    assert falcon["PrimaryContainer"]["Environment"]["HF_MODEL_ID"] == "tiiuae/falcon-7b-instruct"


def test_each_model_runs_as_its_own_role_and_waits_for_its_policy(template):
    roles = template.find_resources("AWS::IAM::Role")
    role_of = {}
    for key in ENDPOINTS:
        model = next(
            v
            for k, v in template.find_resources("AWS::SageMaker::Model").items()
            if key.replace("-", "") in k.replace("-", "")
        )
        role_id = model["Properties"]["ExecutionRoleArn"]["Fn::GetAtt"][0]
        assert role_id in roles
        policy_id = next(
            k for k in template.find_resources("AWS::IAM::Policy") if key.replace("-", "") in k.replace("-", "")
        )
        assert policy_id in model["DependsOn"]
        role_of[key] = role_id
    assert role_of["flan-t5-realtime"] != role_of["falcon-stream"]


def test_roles_trust_only_sagemaker_in_this_account(template):
    for name, role in template.find_resources("AWS::IAM::Role").items():
        [statement] = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Principal"] == {"Service": "sagemaker.amazonaws.com"}, name
        assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}, name
        assert "ManagedPolicyArns" not in role["Properties"], name


# ---------------------------------------------------------------- least privilege


def test_realtime_role_reads_only_its_model_data_and_writes_only_its_capture_prefix(template):
    statements = policy_statements(template, "flan-t5-realtime")
    assert set(statements) == {
        "PullImage",
        "EcrLogin",
        "WriteEndpointLogs",
        "PutEndpointMetrics",
        "ReadModelData",
        "WriteDataCapture",
        "UseDataKey",
    }
    model_data = BASE["models"]["flan-t5-large"]["regions"]["us-east-1"]["model_data_uri"].removeprefix("s3://")
    assert statements["ReadModelData"]["Action"] == "s3:GetObject"
    assert statements["ReadModelData"]["Resource"] == {
        "Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, f":s3:::{model_data}"]]
    }
    assert sorted(statements["WriteDataCapture"]["Action"]) == ["s3:AbortMultipartUpload", "s3:PutObject"]
    assert statements["WriteDataCapture"]["Resource"] == {
        "Fn::Join": ["", [{"Fn::GetAtt": [bucket_id(template), "Arn"]}, "/datacapture/flan-t5-realtime/*"]]
    }
    assert sorted(statements["UseDataKey"]["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert statements["UseDataKey"]["Resource"] == key_arn_ref(template)
    assert "repository/huggingface-pytorch-inference" in json.dumps(statements["PullImage"]["Resource"])


def test_streaming_role_has_no_model_data_or_capture_access(template):
    statements = policy_statements(template, "falcon-stream")
    assert set(statements) == {"PullImage", "EcrLogin", "WriteEndpointLogs", "PutEndpointMetrics", "UseDataKey"}
    assert "repository/huggingface-pytorch-tgi-inference" in json.dumps(statements["PullImage"]["Resource"])


@pytest.mark.parametrize("key", sorted(ENDPOINTS))
def test_logs_only_for_the_endpoints_own_log_group(template, key):
    statements = policy_statements(template, key)
    resource = json.dumps(statements["WriteEndpointLogs"]["Resource"])
    assert f"log-group:/aws/sagemaker/Endpoints/{STACK}-{key}:*" in resource


def test_wildcard_resources_only_where_iam_has_no_resource_level_permissions(template):
    for name, policy in template.find_resources("AWS::IAM::Policy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert not any(action == "*" or action.endswith(":*") for action in actions), (name, statement)
            if statement["Resource"] == "*":
                assert statement["Sid"] in ("EcrLogin", "PutEndpointMetrics"), (name, statement)
            if statement["Sid"] == "PutEndpointMetrics":
                assert statement["Condition"] == {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}}


# ---------------------------------------------------------------- encryption and data capture


def test_endpoint_volume_encrypted_with_the_app_key_where_sagemaker_allows(template):
    flan = resources_of(template, "AWS::SageMaker::EndpointConfig", "flan-t5-realtime")["Properties"]
    assert flan["KmsKeyId"] == key_arn_ref(template)
    # ml.g5 has NVMe instance storage: CreateEndpointConfig rejects a KmsKeyId, the hardware encrypts it.
    falcon = resources_of(template, "AWS::SageMaker::EndpointConfig", "falcon-stream")["Properties"]
    assert "KmsKeyId" not in falcon


def test_data_capture_goes_encrypted_to_the_endpoints_prefix(template):
    flan = resources_of(template, "AWS::SageMaker::EndpointConfig", "flan-t5-realtime")["Properties"]
    capture = flan["DataCaptureConfig"]
    assert capture["EnableCapture"] is True
    assert capture["InitialSamplingPercentage"] == 50
    assert capture["DestinationS3Uri"] == {
        "Fn::Join": ["", ["s3://", {"Ref": bucket_id(template)}, "/datacapture/flan-t5-realtime"]]
    }
    assert capture["KmsKeyId"] == key_arn_ref(template)
    assert capture["CaptureOptions"] == [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]
    assert capture["CaptureContentTypeHeader"] == {"JsonContentTypes": ["application/json"]}

    falcon = resources_of(template, "AWS::SageMaker::EndpointConfig", "falcon-stream")["Properties"]
    assert "DataCaptureConfig" not in falcon


def test_variants_carry_instance_settings(template):
    flan = resources_of(template, "AWS::SageMaker::EndpointConfig", "flan-t5-realtime")["Properties"]
    [variant] = flan["ProductionVariants"]
    assert variant["InstanceType"] == "ml.p3.2xlarge"
    assert variant["InitialInstanceCount"] == 1
    assert variant["VariantName"] == "AllTraffic"
    falcon = resources_of(template, "AWS::SageMaker::EndpointConfig", "falcon-stream")["Properties"]
    [variant] = falcon["ProductionVariants"]
    assert variant["InstanceType"] == "ml.g5.2xlarge"
    assert variant["ContainerStartupHealthCheckTimeoutInSeconds"] == 900


def test_without_a_key_nothing_names_one(tmp_path):
    raw = raw_config(encryption="s3")
    _, _, _, template = build(raw, use_key=False)
    text = json.dumps(template.to_json())
    assert "KmsKeyId" not in text
    assert "kms:" not in text


# ---------------------------------------------------------------- autoscaling


def test_autoscaling_tracks_invocations_per_instance(template):
    template.resource_count_is("AWS::ApplicationAutoScaling::ScalableTarget", 1)
    [target_id] = template.find_resources("AWS::ApplicationAutoScaling::ScalableTarget")
    template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget",
        {
            "ServiceNamespace": "sagemaker",
            "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
            "MinCapacity": 1,
            "MaxCapacity": 4,
            "ResourceId": {
                "Fn::Join": [
                    "",
                    [
                        "endpoint/",
                        {"Fn::GetAtt": [Match.string_like_regexp("flant5realtime"), "EndpointName"]},
                        "/variant/AllTraffic",
                    ],
                ]
            },
            # No RoleARN: SageMaker scaling uses Application Auto Scaling's service-linked role.
            "RoleARN": Match.absent(),
        },
    )
    template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "PolicyType": "TargetTrackingScaling",
            "ScalingTargetId": {"Ref": target_id},
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": 120,
                "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
                "ScaleInCooldown": 300,
                "ScaleOutCooldown": 60,
            },
        },
    )


# ---------------------------------------------------------------- supplied roles, empty config


def test_a_supplied_role_is_used_and_given_the_same_statements():
    made = []

    def shared_role(scope, key, endpoint):
        role = iam.Role(scope, f"Shared-{key}", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"))
        made.append((key, endpoint.model))
        return role

    _, _, endpoints, template = build(raw_config(), execution_role_for=shared_role)
    assert sorted(made) == [("falcon-stream", "falcon-7b-instruct"), ("flan-t5-realtime", "flan-t5-large")]
    roles = template.find_resources("AWS::IAM::Role")
    assert len(roles) == 2 and all("Shared" in name for name in roles)
    assert "WriteDataCapture" in policy_statements(template, "flan-t5-realtime")


def test_no_endpoints_configured_means_no_resources():
    _, _, endpoints, template = build(raw_config(endpoints={}))
    assert endpoints.endpoint_names == {}
    for kind in (
        "AWS::SageMaker::Model",
        "AWS::SageMaker::Endpoint",
        "AWS::IAM::Role",
        "AWS::ApplicationAutoScaling::ScalableTarget",
    ):
        template.resource_count_is(kind, 0)


# ---------------------------------------------------------------- synth checks


def test_cdk_nag_has_no_unacknowledged_finding(built):
    app = built[0]
    app.synth()  # raises on any unacknowledged AwsSolutions finding


def test_cfn_lint_is_clean(template):
    from cfnlint.api import lint

    matches = lint(json.dumps(template.to_json()), regions=["us-east-1"])
    assert [str(m) for m in matches] == []


# ---------------------------------------------------------------- configuration rules the construct relies on


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda c: c["endpoints"]["falcon-stream"].update(max_instance_count=3),
            "autoscaling needs both max_instance_count and invocations_per_instance",
        ),
        (
            lambda c: c["endpoints"]["flan-t5-realtime"].update(max_instance_count=1, instance_count=2),
            "max_instance_count must not be below instance_count",
        ),
        (
            lambda c: c["endpoints"].update({"Bad_Name": copy.deepcopy(ENDPOINTS["falcon-stream"])}),
            "endpoints.Bad_Name: name must match",
        ),
        (
            lambda c: c["models"]["falcon-7b-instruct"].update(network_isolation=True),
            "no model_data_uri, so the container downloads its weights: set network_isolation to false",
        ),
        (
            lambda c: c["models"]["flan-t5-large"]["regions"]["us-east-1"].pop("model_data_uri"),
            "model_data_uri is required for a text2text model",
        ),
        (
            lambda c: c["pipelines"]["summarize"].update(model="falcon-7b-instruct"),
            "pipelines.summarize.model: 'falcon-7b-instruct' is a text-generation model, "
            "served by real-time endpoints only",
        ),
    ],
)
def test_endpoint_configuration_errors_are_named(mutate, expected):
    raw = raw_config()
    mutate(raw)
    with pytest.raises(ConfigError) as error:
        load_app_config(raw)
    assert expected in str(error.value)


def test_the_default_configuration_still_validates():
    config = load_app_config(copy.deepcopy(BASE))
    assert config.endpoints == {}


@pytest.mark.parametrize(
    ("instance_type", "local"),
    [
        ("ml.g5.2xlarge", True),
        ("ml.g4dn.xlarge", True),
        ("ml.p4d.24xlarge", True),
        ("ml.m5d.large", True),
        ("ml.c6gd.large", True),
        ("ml.p3dn.24xlarge", True),
        ("ml.g6e.xlarge", True),
        ("ml.p3.2xlarge", False),
        ("ml.m5.xlarge", False),
        ("ml.c5.2xlarge", False),
        ("ml.inf2.xlarge", False),
        ("ml.t2.medium", False),
        ("ml.g5g.xlarge", False),
    ],
)
def test_instance_storage_families(instance_type, local):
    assert has_instance_storage(instance_type) is local
