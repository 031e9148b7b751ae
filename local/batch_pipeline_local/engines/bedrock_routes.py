"""The Bedrock stand-in's HTTP face: which botocore request is which Bedrock operation, and the HTTP answer.

moto 5 has no model-invocation-job APIs (its `bedrock` backend answers every unknown path with its own catch-all)
and its bedrock-runtime InvokeModel returns `{}`. The stand-in answers six routes before moto's URL table is
consulted (emulator/moto_hooks.answering_requests); everything else falls through to moto unchanged:

  - bedrock   CreateModelInvocationJob (POST /model-invocation-job), GetModelInvocationJob (GET
    /model-invocation-job/{id}), StopModelInvocationJob (POST /model-invocation-job/{id}/stop),
    ListModelInvocationJobs (GET /model-invocation-jobs)
  - bedrock-runtime   InvokeModel (POST /model/{modelId}/invoke) and Converse (POST /model/{modelId}/converse)

So botocore still validates parameters and serializes a real rest-json HTTP request, and still parses our HTTP
status, headers and JSON body with the service model: errors arrive as `client.exceptions.ServiceQuotaExceededException`
and the like. A botocore `before-call` handler was the alternative, but a response returned there is handed back
already parsed, so response parsing (and the serialized request) would leave the loop.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from batch_pipeline_local.engines.service_model import ApiError
from batch_pipeline_local.engines.stand_in import ENGINE_LABEL

# An HTTP answer: (status, headers, body).
HttpAnswer = tuple[int, dict[str, str], bytes]

log = logging.getLogger(__name__)

_BEDROCK_URL = re.compile(r"^https?://bedrock\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?(?P<path>/[^?]*)")
_RUNTIME_URL = re.compile(r"^https?://bedrock-runtime\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?(?P<path>/[^?]*)")


class BedrockApi(Protocol):
    """The operations the routes lead to (the emulator, bedrock_batch.BedrockBatchEmulator)."""

    def count_call(self, operation: str) -> None: ...

    def create_job(self, region: str, params: dict[str, Any]) -> dict[str, Any]: ...

    def get_job(self, region: str, identifier: str) -> dict[str, Any]: ...

    def stop_job(self, region: str, identifier: str) -> dict[str, Any]: ...

    def list_jobs(self, region: str, query: dict[str, str]) -> dict[str, Any]: ...

    def invoke_model(
        self, region: str, model_id: str, content_type: str | None, body: bytes
    ) -> tuple[bytes, dict[str, str]]: ...

    def converse(self, region: str, model_id: str, body: bytes) -> tuple[bytes, dict[str, str]]: ...


def answer_request(request: Any, api: BedrockApi) -> HttpAnswer | None:
    """Answer one botocore request (an AWSPreparedRequest) through `api`, or None when it is not a Bedrock route."""
    url = request.url
    method = request.method.upper()
    runtime = _RUNTIME_URL.match(url)
    if runtime:
        parts = runtime["path"].strip("/").split("/")
        if method == "POST" and len(parts) == 3 and parts[0] == "model" and parts[2] == "invoke":
            return _respond(
                api,
                "InvokeModel",
                lambda: api.invoke_model(
                    runtime["region"], unquote(parts[1]), _header(request, "Content-Type"), _body(request)
                ),
            )
        if method == "POST" and len(parts) == 3 and parts[0] == "model" and parts[2] == "converse":
            return _respond(api, "Converse", lambda: api.converse(runtime["region"], unquote(parts[1]), _body(request)))
        return None
    control = _BEDROCK_URL.match(url)
    if not control:
        return None
    region, parts = control["region"], control["path"].strip("/").split("/")
    if parts == ["model-invocation-job"] and method == "POST":
        return _respond(
            api, "CreateModelInvocationJob", lambda: api.create_job(region, json.loads(_body(request) or b"{}"))
        )
    if len(parts) == 2 and parts[0] == "model-invocation-job" and method == "GET":
        return _respond(api, "GetModelInvocationJob", lambda: api.get_job(region, unquote(parts[1])))
    if len(parts) == 3 and parts[0] == "model-invocation-job" and parts[2] == "stop" and method == "POST":
        return _respond(api, "StopModelInvocationJob", lambda: api.stop_job(region, unquote(parts[1])))
    if parts == ["model-invocation-jobs"] and method == "GET":
        query = {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}
        return _respond(api, "ListModelInvocationJobs", lambda: api.list_jobs(region, query))
    return None


def _respond(api: BedrockApi, operation: str, call: Callable[[], Any]) -> HttpAnswer:
    headers = {"x-amzn-RequestId": str(uuid.uuid4())}
    api.count_call(operation)
    try:
        result = call()
    except ApiError as error:
        log.info("%s: %s answered %s: %s", ENGINE_LABEL, operation, error.code, error.message)
        headers.update({"Content-Type": "application/json", "x-amzn-ErrorType": error.code})
        return error.status, headers, json.dumps({"message": error.message}).encode()
    if isinstance(result, tuple):  # InvokeModel: (body bytes, extra headers)
        body, extra = result
        headers.update(extra)
        return 200, headers, body
    headers["Content-Type"] = "application/json"
    return 200, headers, json.dumps(result).encode()


def _header(request: Any, name: str) -> str | None:
    value = request.headers.get(name)
    return value.decode() if isinstance(value, bytes) else value


def _body(request: Any) -> bytes:
    body = request.body
    if body is None:
        return b""
    if hasattr(body, "read"):
        data = body.read()
        if hasattr(body, "seek"):
            body.seek(0)
        body = data
    return body.encode() if isinstance(body, str) else bytes(body)
