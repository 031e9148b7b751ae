"""The one hand-written table: each boto3 operation the handlers call -> the IAM request(s) AWS authorizes.

Everything else comes from the Service Authorization Reference through iam-simulate/iam-data: the evaluator
rejects an action that does not exist, a resource ARN of a type the action does not take, and drops context keys
the action does not have (tests/unit/test_authorization_map.py checks every mapped request against it, and that
every operation called under lambdas/ is here).

A Request is what the evaluator gets: action, resource ARN and the request context AWS sends. `implied` requests
are the ones AWS makes with the caller's credentials on its behalf (S3 and SNS asking KMS for the key).
Sources for the implied KMS calls and their encryption context:
- S3 SSE-KMS: GetObject needs kms:Decrypt, PutObject kms:GenerateDataKey, multipart uploads both; the encryption
  context is {"aws:s3:arn": object ARN}, or the bucket ARN when S3 Bucket Keys are on (S3 User Guide, "Using
  server-side encryption with AWS KMS keys", "Multipart upload API and permissions", "Reducing the cost of
  SSE-KMS with Amazon S3 Bucket Keys").
- SNS SSE: publishers need kms:GenerateDataKey and kms:Decrypt; context {"aws:sns:topicArn": topic ARN} (SNS
  Developer Guide, "Encryption at rest", key management).
- iam:PassRole with iam:PassedToService when an API takes a role ARN (IAM User Guide, "Granting a user
  permissions to pass a role to an AWS service").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias
from urllib.parse import parse_qsl

from batch_pipeline_local.authorization.evaluator import ContextValue
from batch_pipeline_local.authorization.policies import PolicyStore
from batch_pipeline_local.template import ACCOUNT, REGION

# A call's parameters as the handler passed them to boto3 (botocore validates them against the service model).
Params: TypeAlias = dict[str, Any]
RequestContext: TypeAlias = Mapping[str, ContextValue]

SECURE: RequestContext = {"aws:SecureTransport": "true"}


@dataclass(frozen=True)
class Request:
    action: str
    resource: str
    context: RequestContext = field(default_factory=dict)
    # "kms" for calls made to KMS on the caller's behalf: evaluated against the key policy.
    via: str | None = None

    def key(self) -> tuple[str, str, tuple[tuple[str, str], ...]]:
        return (self.action, self.resource, tuple(sorted((k, str(v)) for k, v in self.context.items())))


Mapper = Callable[[Params, PolicyStore], list[Request]]


# ---------------------------------------------------------------------------- S3


def _object_arn(params: Params) -> str:
    return f"arn:aws:s3:::{params['Bucket']}/{params['Key']}"


def _s3_kms(store: PolicyStore, bucket_name: str, object_arn: str, actions: tuple[str, ...]) -> list[Request]:
    bucket = store.buckets.get(bucket_name)
    if bucket is None or bucket.kms_key_arn is None:
        return []
    context = {
        "kms:EncryptionContext:aws:s3:arn": bucket.arn if bucket.bucket_key else object_arn,
        "kms:ViaService": f"s3.{REGION}.amazonaws.com",
        "kms:CallerAccount": ACCOUNT,
        **SECURE,
    }
    return [Request(action, bucket.kms_key_arn, context, via="kms") for action in actions]


def _tags(params: Params, key: str = "Tagging") -> list[str]:
    return [k for k, _ in parse_qsl(params.get(key) or "")]


def s3_get(params: Params, store: PolicyStore) -> list[Request]:
    action = "s3:GetObjectVersion" if params.get("VersionId") else "s3:GetObject"
    return [
        Request(action, _object_arn(params), SECURE),
        *_s3_kms(store, params["Bucket"], _object_arn(params), ("kms:Decrypt",)),
    ]


def s3_head(params: Params, store: PolicyStore) -> list[Request]:  # HEAD reads no data: no key use
    return [Request("s3:GetObjectVersion" if params.get("VersionId") else "s3:GetObject", _object_arn(params), SECURE)]


def s3_put(params: Params, store: PolicyStore) -> list[Request]:
    requests = [Request("s3:PutObject", _object_arn(params), SECURE)]
    if _tags(params):
        requests.append(Request("s3:PutObjectTagging", _object_arn(params), SECURE))
    return requests + _s3_kms(store, params["Bucket"], _object_arn(params), ("kms:GenerateDataKey",))


def s3_create_multipart(params: Params, store: PolicyStore) -> list[Request]:
    requests = [Request("s3:PutObject", _object_arn(params), SECURE)]
    if _tags(params):
        requests.append(Request("s3:PutObjectTagging", _object_arn(params), SECURE))
    return requests + _s3_kms(store, params["Bucket"], _object_arn(params), ("kms:GenerateDataKey", "kms:Decrypt"))


def s3_upload_part(params: Params, store: PolicyStore) -> list[Request]:
    return [Request("s3:PutObject", _object_arn(params), SECURE)]


def s3_complete_multipart(params: Params, store: PolicyStore) -> list[Request]:
    return [
        Request("s3:PutObject", _object_arn(params), SECURE),
        *_s3_kms(store, params["Bucket"], _object_arn(params), ("kms:Decrypt",)),
    ]


def s3_abort_multipart(params: Params, store: PolicyStore) -> list[Request]:
    return [Request("s3:AbortMultipartUpload", _object_arn(params), SECURE)]


def _copy_source(params: Params) -> tuple[str, str, str | None]:
    source = params["CopySource"]
    if isinstance(source, dict):
        return source["Bucket"], source["Key"], source.get("VersionId")
    path, _, query = str(source).lstrip("/").partition("?versionId=")
    bucket, _, key = path.partition("/")
    return bucket, key, query or None


def s3_copy(params: Params, store: PolicyStore) -> list[Request]:
    bucket, key, version = _copy_source(params)
    source_arn = f"arn:aws:s3:::{bucket}/{key}"
    return [
        Request("s3:GetObjectVersion" if version else "s3:GetObject", source_arn, SECURE),
        *_s3_kms(store, bucket, source_arn, ("kms:Decrypt",)),
        *s3_put({k: v for k, v in params.items() if k in ("Bucket", "Key", "Tagging")}, store),
    ]


def s3_upload_part_copy(params: Params, store: PolicyStore) -> list[Request]:
    bucket, key, version = _copy_source(params)
    source_arn = f"arn:aws:s3:::{bucket}/{key}"
    return [
        Request("s3:GetObjectVersion" if version else "s3:GetObject", source_arn, SECURE),
        *_s3_kms(store, bucket, source_arn, ("kms:Decrypt",)),
        Request("s3:PutObject", _object_arn(params), SECURE),
    ]


def s3_put_tagging(params: Params, store: PolicyStore) -> list[Request]:
    action = "s3:PutObjectVersionTagging" if params.get("VersionId") else "s3:PutObjectTagging"
    return [Request(action, _object_arn(params), SECURE)]


def s3_get_tagging(params: Params, store: PolicyStore) -> list[Request]:
    action = "s3:GetObjectVersionTagging" if params.get("VersionId") else "s3:GetObjectTagging"
    return [Request(action, _object_arn(params), SECURE)]


def s3_delete(params: Params, store: PolicyStore) -> list[Request]:
    action = "s3:DeleteObjectVersion" if params.get("VersionId") else "s3:DeleteObject"
    return [Request(action, _object_arn(params), SECURE)]


def s3_list(params: Params, store: PolicyStore) -> list[Request]:
    # s3:prefix is in the request context only when the request has a prefix, as in AWS.
    context = {**SECURE, **({"s3:prefix": params["Prefix"]} if params.get("Prefix") is not None else {})}
    return [Request("s3:ListBucket", f"arn:aws:s3:::{params['Bucket']}", context)]


def s3_list_versions(params: Params, store: PolicyStore) -> list[Request]:
    context = {**SECURE, **({"s3:prefix": params["Prefix"]} if params.get("Prefix") is not None else {})}
    return [Request("s3:ListBucketVersions", f"arn:aws:s3:::{params['Bucket']}", context)]


def missing_object_listing(params: Params) -> Request:
    """S3 answers a read of a missing key with NoSuchKey only if the caller may list the bucket, else AccessDenied
    (S3 API Reference, GetObject/HeadObject "Permissions"). The listing asked for is that key's."""
    return Request("s3:ListBucket", f"arn:aws:s3:::{params['Bucket']}", {**SECURE, "s3:prefix": params["Key"]})


# ---------------------------------------------------------------------------- SNS, Step Functions


def sns_publish(params: Params, store: PolicyStore) -> list[Request]:
    topic = params.get("TopicArn") or params.get("TargetArn")
    if not topic:  # a text message to a phone number: no handler sends one
        raise KeyError("sns:Publish without a TopicArn or TargetArn is not in the authorization map")
    requests = [Request("sns:Publish", topic, SECURE)]
    key = store.kms_keys.get(topic)
    if key:
        context = {
            "kms:EncryptionContext:aws:sns:topicArn": topic,
            "kms:ViaService": f"sns.{REGION}.amazonaws.com",
            "kms:CallerAccount": ACCOUNT,
            **SECURE,
        }
        requests += [Request(a, key, context, via="kms") for a in ("kms:GenerateDataKey", "kms:Decrypt")]
    return requests


def states_start(params: Params, store: PolicyStore) -> list[Request]:
    return [Request("states:StartExecution", params["stateMachineArn"], SECURE)]


def states_describe_execution(params: Params, store: PolicyStore) -> list[Request]:
    return [Request("states:DescribeExecution", params["executionArn"], SECURE)]


def states_task_callback(action: str) -> Mapper:
    """SendTaskSuccess/Failure/Heartbeat: the Service Authorization Reference lists no resource type for them, so
    they are authorized on "*" (a policy naming the state machine would not allow them)."""

    def mapper(params: Params, store: PolicyStore) -> list[Request]:
        return [Request(action, "*", SECURE)]

    return mapper


def states_list_executions(params: Params, store: PolicyStore) -> list[Request]:
    return [Request("states:ListExecutions", params["stateMachineArn"], SECURE)]


# ---------------------------------------------------------------------------- SageMaker


def _request_tags(tags: list[dict[str, str]] | dict[str, str] | None) -> dict[str, ContextValue]:
    """aws:RequestTag/<k> and aws:TagKeys for a create-with-tags request."""
    pairs = tags.items() if isinstance(tags, dict) else [(t["Key"], t["Value"]) for t in tags or []]
    context: dict[str, ContextValue] = {f"aws:RequestTag/{k}": v for k, v in pairs}
    if context:
        context["aws:TagKeys"] = [k for k, _ in pairs]
    return context


def _sagemaker_arn(kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{kind}/{name.lower()}"


def sagemaker_create_transform(params: Params, store: PolicyStore) -> list[Request]:
    arn = _sagemaker_arn("transform-job", params["TransformJobName"])
    tags = _request_tags(params.get("Tags"))
    requests = [Request("sagemaker:CreateTransformJob", arn, {**SECURE, **tags})]
    if tags:  # creating with tags is also authorized as sagemaker:AddTags (SageMaker Developer Guide, tagging)
        requests.append(Request("sagemaker:AddTags", arn, {**SECURE, **tags}))
    return requests


def sagemaker_transform(action: str) -> Mapper:
    def mapper(params: Params, store: PolicyStore) -> list[Request]:
        return [Request(action, _sagemaker_arn("transform-job", params["TransformJobName"]), SECURE)]

    return mapper


def sagemaker_invoke_endpoint(params: Params, store: PolicyStore) -> list[Request]:
    return [Request("sagemaker:InvokeEndpoint", _sagemaker_arn("endpoint", params["EndpointName"]), SECURE)]


# ---------------------------------------------------------------------------- Bedrock


def _model_arn(model_id: str) -> str:
    if model_id.startswith("arn:"):
        return model_id
    if model_id.split(".", 1)[0] in ("us", "eu", "apac", "global", "jp", "au", "ca", "us-gov"):
        return f"arn:aws:bedrock:{REGION}:{ACCOUNT}:inference-profile/{model_id}"
    return f"arn:aws:bedrock:{REGION}::foundation-model/{model_id}"


def _job_arn(identifier: str) -> str:
    return (
        identifier
        if identifier.startswith("arn:")
        else f"arn:aws:bedrock:{REGION}:{ACCOUNT}:model-invocation-job/{identifier}"
    )


def bedrock_create_job(params: Params, store: PolicyStore) -> list[Request]:
    tags = _request_tags(params.get("tags") and [{"Key": t["key"], "Value": t["value"]} for t in params["tags"]])
    job = _job_arn(params["jobName"])
    requests = [
        Request("bedrock:CreateModelInvocationJob", job, {**SECURE, **tags}),
        Request("bedrock:CreateModelInvocationJob", _model_arn(params["modelId"]), SECURE),
        Request("iam:PassRole", params["roleArn"], {**SECURE, "iam:PassedToService": "bedrock.amazonaws.com"}),
    ]
    if tags:
        requests.append(Request("bedrock:TagResource", job, {**SECURE, **tags}))
    return requests


def bedrock_job(action: str) -> Mapper:
    """An action on an existing job. Its tags (aws:ResourceTag/<k>) are the resource's, which the Authorizer adds to
    every request from what the emulated service keeps (enforce.Authorizer's resource_tags)."""

    def mapper(params: Params, store: PolicyStore) -> list[Request]:
        return [Request(action, _job_arn(params["jobIdentifier"]), SECURE)]

    return mapper


def bedrock_invoke(params: Params, store: PolicyStore) -> list[Request]:
    return [Request("bedrock:InvokeModel", _model_arn(params["modelId"]), SECURE)]


def lambda_invoke(params: Params, store: PolicyStore) -> list[Request]:
    """The state machine's Task states invoking their functions (moto's interpreter makes these calls)."""
    name = params["FunctionName"]
    arn = name if name.startswith("arn:") else f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
    return [Request("lambda:InvokeFunction", arn, SECURE)]


def account_wide(action: str) -> Mapper:
    def mapper(params: Params, store: PolicyStore) -> list[Request]:
        return [Request(action, "*", SECURE)]

    return mapper


# (botocore service name, operation name) -> requests. Operation names are botocore's (PascalCase).
OPERATIONS: dict[tuple[str, str], Mapper] = {
    ("s3", "GetObject"): s3_get,
    ("s3", "HeadObject"): s3_head,
    ("s3", "PutObject"): s3_put,
    ("s3", "CreateMultipartUpload"): s3_create_multipart,
    ("s3", "UploadPart"): s3_upload_part,
    ("s3", "CompleteMultipartUpload"): s3_complete_multipart,
    ("s3", "AbortMultipartUpload"): s3_abort_multipart,
    ("s3", "CopyObject"): s3_copy,
    ("s3", "UploadPartCopy"): s3_upload_part_copy,
    ("s3", "PutObjectTagging"): s3_put_tagging,
    ("s3", "GetObjectTagging"): s3_get_tagging,
    ("s3", "DeleteObject"): s3_delete,
    ("s3", "ListObjectsV2"): s3_list,
    ("s3", "ListObjects"): s3_list,
    ("s3", "ListObjectVersions"): s3_list_versions,
    ("sns", "Publish"): sns_publish,
    ("stepfunctions", "StartExecution"): states_start,
    ("stepfunctions", "DescribeExecution"): states_describe_execution,
    ("stepfunctions", "ListExecutions"): states_list_executions,
    ("stepfunctions", "SendTaskSuccess"): states_task_callback("states:SendTaskSuccess"),
    ("stepfunctions", "SendTaskFailure"): states_task_callback("states:SendTaskFailure"),
    ("stepfunctions", "SendTaskHeartbeat"): states_task_callback("states:SendTaskHeartbeat"),
    ("sagemaker", "CreateTransformJob"): sagemaker_create_transform,
    ("sagemaker", "DescribeTransformJob"): sagemaker_transform("sagemaker:DescribeTransformJob"),
    ("sagemaker", "StopTransformJob"): sagemaker_transform("sagemaker:StopTransformJob"),
    ("sagemaker", "ListTransformJobs"): account_wide("sagemaker:ListTransformJobs"),
    ("sagemaker-runtime", "InvokeEndpoint"): sagemaker_invoke_endpoint,
    ("sagemaker-runtime", "InvokeEndpointWithResponseStream"): sagemaker_invoke_endpoint,
    ("bedrock", "CreateModelInvocationJob"): bedrock_create_job,
    ("bedrock", "GetModelInvocationJob"): bedrock_job("bedrock:GetModelInvocationJob"),
    ("bedrock", "StopModelInvocationJob"): bedrock_job("bedrock:StopModelInvocationJob"),
    ("bedrock", "ListModelInvocationJobs"): account_wide("bedrock:ListModelInvocationJobs"),
    ("bedrock-runtime", "InvokeModel"): bedrock_invoke,
    ("bedrock-runtime", "Converse"): bedrock_invoke,
    ("lambda", "Invoke"): lambda_invoke,
}


def requests_for(service: str, operation: str, params: Params, store: PolicyStore) -> list[Request]:
    mapper = OPERATIONS.get((service, operation))
    if mapper is None:
        raise KeyError(
            f"{service}:{operation} is not in the authorization map "
            "(local/batch_pipeline_local/authorization/operations.py)"
        )
    return mapper(params, store)
