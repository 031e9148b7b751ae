"""Every hook local mode puts into moto's private internals for Lambda and Step Functions, in one place.

moto 5 cannot run a Lambda function without Docker and cannot fail one the way the Lambda service does.
Local mode needs these things from it, and each is a patch on a moto-private name, so each lives here and
nowhere else (a moto upgrade that moves one breaks this module and its tests, not the whole of local mode). They are
imported at the top of this module, so the moto-private names local mode depends on are listed in one place:

1. `LambdaSimpleBackend.invoke`: run the handler named in the template in-process. A handler exception is
   answered as Lambda answers an unhandled error (`X-Amz-Function-Error: Unhandled`, payload
   `{"errorType": <exception class>, "errorMessage", "stackTrace"}`), so moto's interpreter names the error after
   the exception class, as Step Functions does on AWS. And `StateTaskLambda._from_error`: moto names a failed
   Invoke API call (throttling, a Lambda service error) `Exception`; Step Functions names it `Lambda.<code>`.
2. `StateTaskLambda._eval_execution` and `lambda_eval_utils.execute_lambda_function_integration`: rehearsed
   faults (`--fault STATE:ERROR:TIMES`). The first TIMES invocations of that Task state fail before the
   function runs, the way the Lambda service reports them to Step Functions: a `Lambda.<Code>` error is an
   Invoke API error with that code (moto's interpreter then names it `Lambda.<Code>`, as Step Functions does);
   any other name (`Sandbox.Timedout`, an exception class) is an unhandled function error with that errorType.
   The template's own Retry and Catch then decide what happens (which faults: faults.py).
3. The Retry wait: moto's retrier sleeps IntervalSeconds for real. Local mode compresses those waits as it
   compresses poll waits (jobs end at once here), by RETRY_TIME_SCALE; the number and order of attempts is
   the template's.
4. `lambda_eval_utils.boto_client_for`: the interpreter's own Lambda clients carry the state machine's identity,
   so local-mode authorization judges its Invoke calls under the state machine role (authorization/enforce.py).

And for the stand-in engines and the tests (each function below says which moto gap it fills):

5. `BotocoreStubber.process_request`: answer routes moto does not have (Bedrock batch inference, InvokeModel) before
   moto's URL table is consulted (`answering_requests`, used by engines/bedrock_batch.py).
6. `SageMakerModelBackend.create_transform_job` / `describe_transform_job` and a `StopTransformJob` action moto lacks:
   transform jobs that run, take time, can be stopped and say when they changed state (`transform_job_hooks`, used by
   engines/sagemaker_transform.py).
7. Reading moto state a test needs: the account moto puts in ARNs (`default_account_id`) and the requests moto's
   InvokeEndpoint answered (`invoke_endpoint_answers`).

Public moto API (`mock_aws`, `ThreadedMotoServer`) may be used anywhere; a moto-private name only here
(tests/unit/test_moto_boundary.py fails otherwise).
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar
from unittest import mock

import moto.core.models
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.core.models import botocore_stubber
from moto.core.responses import EmptyResult
from moto.sagemaker.exceptions import ValidationError
from moto.sagemaker.models import FakeTransformJob, SageMakerModelBackend
from moto.sagemaker.responses import SageMakerResponse
from moto.sagemakerruntime.models import sagemakerruntime_backends
from moto.stepfunctions.parser.api import HistoryEventType, LambdaFunctionFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
from moto.stepfunctions.parser.asl.component.state.exec.state_task.credentials import StateCredentials
from moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils import (
    LambdaFunctionErrorException,
)

# The `.waitForTaskToken` wait is a Lambda service integration (arn:aws:states:::lambda:invoke...): its own class,
# which already names Lambda errors Lambda.<code> (recorded as TaskFailed, as on AWS), but must be told its state.
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_lambda import (
    StateTaskServiceLambda,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task import StateTask
from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task_lambda import StateTaskLambda
from moto.stepfunctions.parser.asl.eval.environment import Environment
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.utils import boto_client

from batch_pipeline_local.emulator.faults import Fault, FaultPlan

# IntervalSeconds 2, 4, 8 ... become 20 ms, 40 ms, 80 ms.
RETRY_TIME_SCALE = 0.01
# HTTP statuses the Lambda Invoke API answers these errors with (Lambda API reference, Invoke: Errors).
LAMBDA_SERVICE_STATUS = {
    "TooManyRequestsException": 429,
    "ServiceException": 500,
    "AWSLambdaException": 500,
    "SdkClientException": 500,
    "ClientExecutionTimeoutException": 500,
    "ResourceNotReadyException": 502,
    "EC2ThrottledException": 502,
}


def fault_exception(fault: Fault) -> Exception:
    """The exception moto's Lambda task sees when the Lambda service fails this invocation with `fault.error`."""
    message = f"rehearsed fault {fault.injected} of {fault.times} (batch-pipeline local run --fault)"
    if fault.error.startswith("Lambda."):
        code = fault.error.removeprefix("Lambda.")
        error: Exception = ClientError(
            {
                "Error": {"Code": code, "Message": message},
                "ResponseMetadata": {
                    "HTTPStatusCode": LAMBDA_SERVICE_STATUS.get(code, 500),
                    "RequestId": str(uuid.uuid4()),
                },
            },
            "Invoke",
        )
        return error
    if fault.error == "Sandbox.Timedout":
        message = f"Task timed out ({message})"
    return LambdaFunctionErrorException(
        "Unhandled", json.dumps({"errorType": fault.error, "errorMessage": message}, separators=(",", ":"))
    )


# ---------------------------------------------------------------------------- the hooks


# LambdaSimpleBackend.invoke's signature (moto types body and headers as Any).
_Invoke = Callable[[LambdaSimpleBackend, str, str | None, Any, Any, dict[str, str]], bytes]


def _dispatching_invoke(handlers: Mapping[str, Callable[[Any], Any]]) -> _Invoke:
    def invoke(
        backend: LambdaSimpleBackend,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: dict[str, str],
    ) -> bytes:
        name = function_name.rsplit(":function:", 1)[-1].split(":")[0]
        handler = handlers.get(name)
        if handler is None:
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps({"errorType": "ResourceNotFoundException", "errorMessage": name}).encode()
        event = json.loads(body) if body else {}
        try:
            result = handler(event)
        except Exception as error:  # reported to Step Functions like Lambda does
            response_headers["x-amz-function-error"] = "Unhandled"
            # The Python runtime's errorType is the exception's class name; Step Functions uses it as the error.
            return json.dumps(
                {
                    "errorType": type(error).__name__,
                    "errorMessage": str(error),
                    "stackTrace": traceback.format_exception(error)[-5:],
                }
            ).encode()
        return json.dumps(result, default=str).encode()

    return invoke


_CURRENT_STATE = threading.local()  # the Task state a Map iteration's thread is running


_Task = TypeVar("_Task", bound=StateTask)


def _remember_state(original: Callable[[_Task, Environment], None]) -> Callable[[_Task, Environment], None]:
    def _eval_execution(self: _Task, env: Environment) -> None:
        _CURRENT_STATE.name = self.name
        try:
            original(self, env)
        finally:
            _CURRENT_STATE.name = None

    return _eval_execution


# lambda_eval_utils.execute_lambda_function_integration's signature.
_Integration = Callable[[Environment, dict[str, Any], str, StateCredentials], None]


def _faulty_invoke(plan: FaultPlan, original: _Integration) -> _Integration:
    def execute_lambda_function_integration(
        env: Environment, parameters: dict[str, Any], region: str, state_credentials: StateCredentials
    ) -> None:
        fault = plan.take(getattr(_CURRENT_STATE, "name", None) or "")
        if fault is not None:
            raise fault_exception(fault)
        original(env, parameters, region, state_credentials)

    return execute_lambda_function_integration


_FromError = Callable[[StateTaskLambda, Environment, Exception], FailureEvent]


def _lambda_error_names(original: _FromError) -> _FromError:
    """moto names every failed Invoke API call `Exception`; Step Functions names it `Lambda.<error code>`
    (https://docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html), which is what a
    Retry on Lambda.TooManyRequestsException matches."""

    def _from_error(self: StateTaskLambda, env: Environment, ex: Exception) -> FailureEvent:
        if not isinstance(ex, ClientError):
            return original(self, env, ex)
        code = ex.response["Error"]["Code"]
        meta = ex.response.get("ResponseMetadata", {})
        error = f"Lambda.{code}"
        cause = (
            f"{ex.response['Error']['Message']} (Service: AWSLambda; Status Code: {meta.get('HTTPStatusCode')}; "
            f"Error Code: {code}; Request ID: {meta.get('RequestId')}; Proxy: null)"
        )
        return FailureEvent(
            env=env,
            error_name=CustomErrorName(error),
            event_type=HistoryEventType.LambdaFunctionFailed,
            # moto declares EventDetails total (every key required), yet builds it with the one key that applies,
            # as its own StateTaskLambda._from_error does.
            event_details=EventDetails(  # type: ignore[typeddict-item]
                lambdaFunctionFailedEventDetails=LambdaFunctionFailedEventDetails(error=error, cause=cause)
            ),
        )

    return _from_error


class _ScaledTime:
    """The `time` module as moto's retrier sees it: sleeps shortened by RETRY_TIME_SCALE."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(seconds * RETRY_TIME_SCALE)


@contextlib.contextmanager
def lambda_and_sfn_hooks(
    handlers: Mapping[str, Callable[[Any], Any]], faults: list[Fault] | None = None
) -> Iterator[FaultPlan]:
    """Install the hooks for one local session; yields the fault plan (what was injected).

    handlers: function name -> what runs it with an event (the deployed app's functions, run in-process)."""
    plan = FaultPlan(list(faults or []))
    with (
        mock.patch.object(LambdaSimpleBackend, "invoke", _dispatching_invoke(handlers)),
        mock.patch.object(StateTaskLambda, "_eval_execution", _remember_state(StateTaskLambda._eval_execution)),
        mock.patch.object(
            StateTaskServiceLambda, "_eval_execution", _remember_state(StateTaskServiceLambda._eval_execution)
        ),
        mock.patch.object(StateTaskLambda, "_from_error", _lambda_error_names(StateTaskLambda._from_error)),
        mock.patch.object(
            lambda_eval_utils,
            "execute_lambda_function_integration",
            _faulty_invoke(plan, lambda_eval_utils.execute_lambda_function_integration),
        ),
        mock.patch.object(retrier_decl, "time", _ScaledTime()),
    ):
        yield plan


@contextlib.contextmanager
def state_machine_lambda_clients(mark: Callable[[BaseClient], None]) -> Iterator[None]:
    """Hook 4. moto gap: its interpreter calls Lambda through boto3 clients it makes itself, out of the handlers'
    reach. On AWS those Invoke calls are made by the state machine's execution role (Step Functions developer guide,
    "Execution role"), so each such client is handed to `mark` (which tags it with that identity) as it is made."""
    # lambda_eval_utils holds moto's utils.boto_client.boto_client_for (imported, not re-exported), and is where
    # the interpreter looks it up, so it is replaced there.
    original = boto_client.boto_client_for

    def boto_client_for(*args: Any, **kwargs: Any) -> BaseClient:  # moto's arguments, passed through
        client = original(*args, **kwargs)
        mark(client)
        return client

    with mock.patch.object(lambda_eval_utils, "boto_client_for", boto_client_for):
        yield


# ---------------------------------------------------------------------------- routes moto does not have


# An answer to one HTTP request: (status, headers, body), or None to let moto answer it.
RequestAnswer = tuple[int, dict[str, str], bytes] | None


@contextlib.contextmanager
def answering_requests(answer: Callable[[Any], RequestAnswer]) -> Iterator[None]:
    """Hook 5. moto gap: moto 5 has no Bedrock model-invocation-job APIs and its InvokeModel returns `{}`. `answer`
    sees every botocore request (an AWSPreparedRequest) under `mock_aws` before moto's URL table does, and answers it
    or returns None. It wraps `process_request` of moto's one BotocoreStubber (the `before-send` handler mock_aws
    registers), so botocore still serializes a real request and parses the answer with the service model, as it
    would parse AWS's. Nothing is answered outside mock_aws: the stubber is disabled then."""
    had_instance_attribute = "process_request" in vars(botocore_stubber)
    original = botocore_stubber.process_request

    def process_request(request: Any) -> Any:
        response = answer(request)
        return response if response is not None else original(request)

    process_request.__wrapped__ = original  # type: ignore[attr-defined]
    botocore_stubber.process_request = process_request  # type: ignore[method-assign]
    try:
        yield
    finally:
        if had_instance_attribute:
            botocore_stubber.process_request = original  # type: ignore[method-assign]
        else:
            vars(botocore_stubber).pop("process_request", None)


def answering_any_requests() -> bool:
    """Whether an `answering_requests` hook is in place (a test checks that uninstalling leaves none behind)."""
    return "process_request" in vars(botocore_stubber)


def default_account_id() -> str:
    """The account moto puts in ARNs it makes (moto's DEFAULT_ACCOUNT_ID, unless the environment names another)."""
    return str(moto.core.models.DEFAULT_ACCOUNT_ID)  # read when asked, as moto reads it


# ---------------------------------------------------------------------------- SageMaker transform jobs

TRANSFORM_TERMINAL = ("Completed", "Failed", "Stopped")


class TransformJobRecord:
    """One transform job as moto keeps it (a FakeTransformJob), through the fields the stand-in engine reads and
    sets; moto's attribute names stay in this module."""

    def __init__(self, job: FakeTransformJob, region: str, account: str) -> None:
        self._job = job
        self.region = region
        self.account = account

    @property
    def name(self) -> str:
        return str(self._job.transform_job_name)

    @property
    def arn(self) -> str:
        return str(self._job.arn)

    @property
    def model_name(self) -> str:
        return str(self._job.model_name)

    @property
    def transform_input(self) -> dict[str, Any]:
        return dict(self._job.transform_input or {})

    @property
    def transform_output(self) -> dict[str, Any]:
        return dict(self._job.transform_output or {})

    @property
    def environment(self) -> dict[str, str]:
        return dict(self._job.environment or {})

    @property
    def status(self) -> str:
        return str(self._job.transform_job_status)

    def set_status(self, status: str, failure_reason: str | None = None) -> None:
        """What DescribeTransformJob answers from now on; an ended job gets its TransformEndTime."""
        now = datetime.now(UTC)
        self._job.transform_job_status = status
        self._job.failure_reason = failure_reason or ""
        self._job.last_modified_time = now
        # moto types the end time as always set (its jobs end as they are created); a running job has none.
        self._job.transform_end_time = now if status in TRANSFORM_TERMINAL else None  # type: ignore[assignment]

    def add_tag(self, tag: dict[str, str]) -> None:
        # moto annotates FakeTransformJob.tags as a dict, but stores the request's list of {Key, Value} (as its
        # add_tags, which extends the list, expects).
        self._job.tags = [*(self._job.tags or []), tag]  # type: ignore[assignment]

    def describe(self) -> dict[str, Any]:
        """DescribeTransformJob's answer as moto gives it (what the job-state event's detail mirrors)."""
        return dict(self._job.response_object)


class StopRefused(Exception):
    """StopTransformJob answers ValidationException with this message (a job that already ended)."""


@contextlib.contextmanager
def transform_job_hooks(
    on_create: Callable[[TransformJobRecord], None],
    on_describe: Callable[[TransformJobRecord], None] | None = None,
    on_stop: Callable[[TransformJobRecord], None] | None = None,
) -> Iterator[None]:
    """Hook 6. moto gaps: CreateTransformJob reports a job Completed at once and writes nothing, and moto has no
    StopTransformJob at all. On SageMaker a job runs InProgress, writes `<object>.out` for each input object, ends
    Completed or Failed (TransformJobStatus in the DescribeTransformJob API reference), and StopTransformJob moves a
    running job to Stopping, then Stopped (StopTransformJob API reference).

    `on_create(job)` runs after moto made the job (the engine then sets its status and runs it); `on_describe(job)`
    after moto answered a DescribeTransformJob for it (the engine learns the job was checked); `on_stop(job)` answers
    StopTransformJob, raising StopRefused for a job that cannot be stopped. Stopping a job that does not exist
    answers ValidationException worded like DescribeTransformJob's."""
    original_create = SageMakerModelBackend.create_transform_job
    original_describe = SageMakerModelBackend.describe_transform_job

    def record(backend: SageMakerModelBackend, job: FakeTransformJob) -> TransformJobRecord:
        return TransformJobRecord(job, backend.region_name, backend.account_id)

    def create_transform_job(backend: SageMakerModelBackend, *args: Any, **kwargs: Any) -> FakeTransformJob:
        job = original_create(backend, *args, **kwargs)  # moto's arguments, passed through
        on_create(record(backend, job))
        return job

    def describe_transform_job(backend: SageMakerModelBackend, transform_job_name: str) -> dict[str, Any]:
        answer = original_describe(backend, transform_job_name=transform_job_name)
        if on_describe is not None:
            on_describe(record(backend, backend.transform_jobs[transform_job_name]))
        return answer

    def stop_transform_job(response: SageMakerResponse) -> EmptyResult:
        backend = response.sagemaker_backend
        name = response._get_param("TransformJobName")
        job = backend.transform_jobs.get(name)
        if job is None:
            arn = FakeTransformJob.arn_formatter(name, backend.account_id, backend.region_name)
            raise ValidationError(message=f"Could not find transform job '{arn}'.")
        if on_stop is None:
            raise NotImplementedError("StopTransformJob: no stand-in engine is installed to stop the job")
        try:
            on_stop(record(backend, job))
        except StopRefused as refused:
            raise ValidationError(message=str(refused)) from None
        return EmptyResult()

    with (
        mock.patch.object(SageMakerModelBackend, "create_transform_job", create_transform_job),
        mock.patch.object(SageMakerModelBackend, "describe_transform_job", describe_transform_job),
        mock.patch.object(SageMakerResponse, "stop_transform_job", stop_transform_job, create=True),
    ):
        yield


# ---------------------------------------------------------------------------- moto state a test reads


def invoke_endpoint_answers(account: str, region: str) -> list[tuple[dict[str, Any], str]]:
    """Hook 7. moto gap: moto records which InvokeEndpoint request took which queued result, but has no API to read
    that back. (request, response body) for every distinct request moto's InvokeEndpoint answered; the request is
    moto's record of it: {"Body", "ContentType", "Accept", ...}."""
    backend = sagemakerruntime_backends[account][region]
    answers = []
    for by_request in backend.results.values():  # keyed by endpoint name as moto parsed it
        for unique_repr, (body, *_rest) in by_request.items():
            answers.append((json.loads(base64.b64decode(unique_repr)), body))
    return answers
