"""Local stand-ins for the control planes job control calls in the scale benchmark: SageMaker transform jobs,
Bedrock model invocation jobs, and Bedrock runtime InvokeModel/Converse. They are stand-ins, not AWS.

Why not the local-mode engines (local/batch_pipeline_local/engines/): they run inside moto, whose S3 keeps every
object in the measuring process's heap; the benchmark's S3 is bench/file_s3.py. Why not a fake client object:
the clients here are real botocore clients, and each stand-in answers from a `before-send` handler, so botocore
validates and serializes every request with the service model and parses every answer with it, exactly as it
would AWS's (an answer missing a required field or of the wrong type fails the parse, not the benchmark).

State (the jobs created and their status) is a JSON file, so the benchmark's steps, each in its own process,
see the same jobs. A job stays InProgress until the benchmark's model stand-in has written its output and calls
`complete(name, counts)`. Runtime calls (on-demand records) answer a short summary in Nova's native shape, which
is also Converse's; a share of them, chosen by a hash of the request body so that it is reproducible, answers a
400 ValidationException, as for a record the model refused. Step Functions: intake's StartExecution is recorded
(its input is the run reference every later step reads) and DescribeExecution finds no earlier run.
"""

from __future__ import annotations

import hashlib
import io
import json
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from botocore.awsrequest import AWSResponse

REGION = "us-east-1"
ACCOUNT = "123456789012"
STAND_IN_ANSWER = "The council said a new bridge would open in spring, and officials found that residents agreed."


class _Raw(io.BytesIO):
    """What botocore reads an HTTP body from (urllib3's response has `stream`)."""

    def stream(self, amt: int = 65536, decode_content: bool = False) -> Iterator[bytes]:
        while chunk := self.read(amt):
            yield chunk


def fails(text: str | bytes, share: float, salt: str = "") -> bool:
    """Whether the stand-in model refuses this record: a stable hash of its id or text, `share` of them."""
    data = text.encode() if isinstance(text, str) else text
    return zlib.crc32(salt.encode() + data) % 10_000 < share * 10_000


class StandInAws:
    """Real botocore clients for sagemaker, bedrock and bedrock-runtime, answered locally (see the module doc)."""

    def __init__(self, state_path: Path, runtime_failed_share: float = 0.0) -> None:
        self.state_path = state_path
        self.runtime_failed_share = runtime_failed_share
        self.runtime_calls = 0

    # ------------------------------------------------------------ state shared between processes

    def jobs(self) -> dict[str, dict[str, Any]]:
        if not self.state_path.exists():
            return {}
        jobs: dict[str, dict[str, Any]] = json.loads(self.state_path.read_text())
        return jobs

    def _save(self, jobs: dict[str, dict[str, Any]]) -> None:
        self.state_path.write_text(json.dumps(jobs))

    def complete(self, name: str, counts: dict[str, int] | None = None) -> None:
        jobs = self.jobs()
        jobs[name].update(status="Completed", counts=counts or {})
        self._save(jobs)

    # ------------------------------------------------------------ clients

    def client(self, service: str) -> Any:
        import boto3

        client = boto3.client(service, region_name=REGION, aws_access_key_id="bench", aws_secret_access_key="bench")
        handlers: dict[str, Callable[[Any], tuple[int, dict[str, Any] | bytes]]] = {
            "sagemaker": {"CreateTransformJob": self._create_transform, "DescribeTransformJob": self._describe},
            "bedrock": {"CreateModelInvocationJob": self._create_invocation, "GetModelInvocationJob": self._get},
            "bedrock-runtime": {"InvokeModel": self._invoke, "Converse": self._converse},
            "stepfunctions": {"DescribeExecution": self._no_execution, "StartExecution": self._start_execution},
        }[service]
        service_id = client.meta.service_model.service_id.hyphenize()
        for operation, handler in handlers.items():
            client.meta.events.register(f"before-send.{service_id}.{operation}", _answer(handler))
        return client

    # ------------------------------------------------------------ Step Functions (intake starts the run)

    def _no_execution(self, request: Any) -> tuple[int, dict[str, Any] | bytes]:
        arn = json.loads(request.body)["executionArn"]
        return 400, {"__type": "ExecutionDoesNotExist", "message": f"Execution Does Not Exist: '{arn}'"}

    def _start_execution(self, request: Any) -> tuple[int, dict[str, Any] | bytes]:
        params = json.loads(request.body)
        self.state_path.with_name("execution-input.json").write_text(params["input"])
        arn = params["stateMachineArn"].replace(":stateMachine:", ":execution:") + ":" + params["name"]
        return 200, {"executionArn": arn, "startDate": 1_767_225_600}

    # ------------------------------------------------------------ SageMaker (JSON protocol: the body is the params)

    def _create_transform(self, request: Any) -> tuple[int, dict[str, Any] | bytes]:
        params = json.loads(request.body)
        jobs = self.jobs()
        name = params["TransformJobName"]
        if name in jobs:
            return 400, {"__type": "ResourceInUse", "message": f"Job name {name} must be unique within the account"}
        arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:transform-job/{name}"
        jobs[name] = {"arn": arn, "status": "InProgress", "request": params}
        self._save(jobs)
        return 200, {"TransformJobArn": arn}

    def _describe(self, request: Any) -> tuple[int, dict[str, Any] | bytes]:
        name = json.loads(request.body)["TransformJobName"]
        job = self.jobs().get(name)
        if job is None:
            return 400, {"__type": "ValidationException", "message": f"Could not find requested job with name {name}"}
        params = job["request"]
        return 200, {
            "TransformJobName": name,
            "TransformJobArn": job["arn"],
            "TransformJobStatus": job["status"],
            "ModelName": params["ModelName"],
            "TransformInput": params["TransformInput"],
            "TransformOutput": params["TransformOutput"],
            "TransformResources": params["TransformResources"],
            "CreationTime": 1_767_225_600,
        }

    # ------------------------------------------------------------ Bedrock batch (rest-json)

    def _create_invocation(self, request: Any) -> tuple[int, dict[str, Any] | bytes]:
        params = json.loads(request.body)
        jobs = self.jobs()
        name = params["jobName"]
        if name in jobs:
            if jobs[name]["request"].get("clientRequestToken") == params.get("clientRequestToken"):
                return 200, {"jobArn": jobs[name]["arn"]}
            return 400, {"__type": "ConflictException", "message": f"A job named {name} already exists."}
        job_id = hashlib.sha256(name.encode()).hexdigest()[:12]
        arn = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:model-invocation-job/{job_id}"
        jobs[name] = {"arn": arn, "status": "InProgress", "request": params}
        self._save(jobs)
        return 200, {"jobArn": arn}

    def _get(self, request: Any) -> tuple[int, dict[str, Any] | bytes]:
        identifier = unquote(request.url.rsplit("/", 1)[-1])
        found = [(name, job) for name, job in self.jobs().items() if identifier in (job["arn"], name)]
        if not found:
            return 404, {"__type": "ResourceNotFoundException", "message": f"no job {identifier}"}
        name, job = found[0]
        params = job["request"]
        return 200, {
            "jobArn": job["arn"],
            "jobName": name,
            "modelId": params["modelId"],
            "roleArn": params["roleArn"],
            "status": job["status"],
            "submitTime": "2026-01-01T00:00:00Z",
            "inputDataConfig": params["inputDataConfig"],
            "outputDataConfig": params["outputDataConfig"],
            "modelInvocationType": params.get("modelInvocationType", "InvokeModel"),
            **job.get("counts", {}),
        }

    # ------------------------------------------------------------ Bedrock runtime (on-demand records)

    def _refused(self, body: bytes) -> bool:
        self.runtime_calls += 1
        return fails(body, self.runtime_failed_share, salt="runtime")

    def _invoke(self, request: Any) -> tuple[int, dict[str, Any] | bytes]:
        if self._refused(request.body):
            return 400, {"__type": "ValidationException", "message": "stand-in model refused the record"}
        return 200, json.dumps(nova_output(STAND_IN_ANSWER)).encode()

    def _converse(self, request: Any) -> tuple[int, dict[str, Any] | bytes]:
        if self._refused(request.body):
            return 400, {"__type": "ValidationException", "message": "stand-in model refused the record"}
        return 200, {**nova_output(STAND_IN_ANSWER), "metrics": {"latencyMs": 420}}


def nova_output(text: str, input_tokens: int = 1000) -> dict[str, Any]:
    """Amazon Nova's InvokeModel answer, which is also Converse's shape (output.message, camelCase usage)."""
    output_tokens = len(text.split())
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": {
            "inputTokens": input_tokens,
            "outputTokens": output_tokens,
            "totalTokens": input_tokens + output_tokens,
        },
    }


def _answer(handler: Callable[[Any], tuple[int, dict[str, Any] | bytes]]) -> Callable[..., AWSResponse]:
    def before_send(request: Any, **_: Any) -> AWSResponse:
        status, body = handler(request)
        headers = {"x-amzn-RequestId": "bench-stand-in", "Content-Type": "application/json"}
        if isinstance(body, dict):
            if status >= 300:
                headers["x-amzn-ErrorType"] = str(body["__type"])
            data = json.dumps(body).encode()
        else:
            data = body
        headers["Content-Length"] = str(len(data))
        return AWSResponse(request.url, status, headers, _Raw(data))

    return before_send
