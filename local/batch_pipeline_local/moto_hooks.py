"""Every hook local mode puts into moto's private internals for Lambda and Step Functions, in one place.

moto 5 cannot run a Lambda function without Docker and cannot fail one the way the Lambda service does.
Local mode needs these things from it, and each is a patch on a moto-private name, so each lives here and
nowhere else (a moto upgrade that moves one breaks this module and its tests, not the whole runner):

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
   The template's own Retry and Catch then decide what happens.
3. The Retry wait: moto's retrier sleeps IntervalSeconds for real. Local mode compresses those waits as it
   compresses poll waits (jobs end at once here), by RETRY_TIME_SCALE; the number and order of attempts is
   the template's.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from unittest import mock

from batch_pipeline.config import ConfigError

if TYPE_CHECKING:
    from .runner import LocalApp

# IntervalSeconds 2, 4, 8 ... become 20 ms, 40 ms, 80 ms.
RETRY_TIME_SCALE = 0.01
# HTTP statuses the Lambda Invoke API answers these errors with (Lambda API reference, Invoke: Errors).
LAMBDA_SERVICE_STATUS = {"TooManyRequestsException": 429, "ServiceException": 500, "AWSLambdaException": 500,
                         "SdkClientException": 500, "ClientExecutionTimeoutException": 500,
                         "ResourceNotReadyException": 502, "EC2ThrottledException": 502}


class FaultSpecError(ConfigError):
    """A --fault value that is not STATE:ERROR:TIMES."""


@dataclass
class Fault:
    """The first `times` invocations of Task state `state` fail with `error`."""

    state: str
    error: str
    times: int
    injected: int = 0

    @classmethod
    def parse(cls, text: str) -> Fault:
        # State names may hold spaces and dots, error names dots; neither holds a colon.
        parts = text.rsplit(":", 2)
        if len(parts) != 3 or not parts[0].strip() or not parts[1].strip():
            raise FaultSpecError(f"--fault {text!r}: expected STATE:ERROR:TIMES, e.g. "
                                 "'Wait for job to end:Lambda.TooManyRequestsException:2'")
        state, error, times = (p.strip() for p in parts)
        if not times.isdigit() or int(times) < 1:
            raise FaultSpecError(f"--fault {text!r}: TIMES must be a whole number of at least 1, got {times!r}")
        return cls(state, error, int(times))


@dataclass
class FaultPlan:
    faults: list[Fault] = field(default_factory=list)
    # (state, error) of every injected failure, in order: what a test or the CLI reports.
    injected: list[tuple[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, state: str) -> Fault | None:
        """The fault to inject into this invocation of `state`, if one is still due (Map iterations share it)."""
        with self._lock:
            for fault in self.faults:
                if fault.state == state and fault.injected < fault.times:
                    fault.injected += 1
                    self.injected.append((state, fault.error))
                    return fault
        return None


def check_fault_states(faults: list[Fault], task_states: set[str]) -> None:
    """A fault must name a Task state of the template, or it would silently rehearse nothing."""
    for fault in faults:
        if fault.state not in task_states:
            raise FaultSpecError(f"--fault names no Task state of the state machine: {fault.state!r}; "
                                 f"Task states: {', '.join(sorted(task_states))}")


def task_state_names(definition: dict) -> set[str]:
    names: set[str] = set()
    for name, state in definition.get("States", {}).items():
        if state.get("Type") == "Task":
            names.add(name)
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            names |= task_state_names(processor)
    return names


def fault_exception(fault: Fault) -> Exception:
    """The exception moto's Lambda task sees when the Lambda service fails this invocation with `fault.error`."""
    from botocore.exceptions import ClientError  # noqa: PLC0415
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils import (  # noqa: PLC0415
        LambdaFunctionErrorException,
    )

    message = f"rehearsed fault {fault.injected} of {fault.times} (batch-pipeline local run --fault)"
    if fault.error.startswith("Lambda."):
        code = fault.error.removeprefix("Lambda.")
        return ClientError({"Error": {"Code": code, "Message": message},
                            "ResponseMetadata": {"HTTPStatusCode": LAMBDA_SERVICE_STATUS.get(code, 500),
                                                 "RequestId": str(uuid.uuid4())}}, "Invoke")
    if fault.error == "Sandbox.Timedout":
        message = f"Task timed out ({message})"
    return LambdaFunctionErrorException("Unhandled", json.dumps({"errorType": fault.error, "errorMessage": message},
                                                                separators=(",", ":")))


# ---------------------------------------------------------------------------- the hooks


def _dispatching_invoke(local: LocalApp) -> Callable:
    def invoke(backend, function_name, qualifier, body, headers, response_headers):  # noqa: ARG001 - moto's signature
        name = function_name.rsplit(":function:", 1)[-1].split(":")[0]
        function = local.functions.get(name)
        if function is None:
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps({"errorType": "ResourceNotFoundException", "errorMessage": name}).encode()
        event = json.loads(body) if body else {}
        try:
            result = local.invoke(function, event)
        except Exception as error:  # noqa: BLE001 - reported to Step Functions like Lambda does
            response_headers["x-amz-function-error"] = "Unhandled"
            # The Python runtime's errorType is the exception's class name; Step Functions uses it as the error.
            return json.dumps({"errorType": type(error).__name__, "errorMessage": str(error),
                               "stackTrace": traceback.format_exception(error)[-5:]}).encode()
        return json.dumps(result, default=str).encode()

    return invoke


_CURRENT_STATE = threading.local()  # the Task state a Map iteration's thread is running


def _remember_state(original: Callable) -> Callable:
    def _eval_execution(self, env):
        _CURRENT_STATE.name = self.name
        try:
            return original(self, env)
        finally:
            _CURRENT_STATE.name = None

    return _eval_execution


def _faulty_invoke(plan: FaultPlan, original: Callable) -> Callable:
    def execute_lambda_function_integration(env, parameters, region, state_credentials):
        fault = plan.take(getattr(_CURRENT_STATE, "name", None) or "")
        if fault is not None:
            raise fault_exception(fault)
        return original(env=env, parameters=parameters, region=region, state_credentials=state_credentials)

    return execute_lambda_function_integration


def _lambda_error_names(original: Callable) -> Callable:
    """moto names every failed Invoke API call `Exception`; Step Functions names it `Lambda.<error code>`
    (https://docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html), which is what a
    Retry on Lambda.TooManyRequestsException matches."""
    from botocore.exceptions import ClientError  # noqa: PLC0415
    from moto.stepfunctions.parser.api import HistoryEventType, LambdaFunctionFailedEventDetails  # noqa: PLC0415
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import (  # noqa: PLC0415
        CustomErrorName,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent  # noqa: PLC0415
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails  # noqa: PLC0415

    def _from_error(self, env, ex):
        if not isinstance(ex, ClientError):
            return original(self, env, ex)
        code = ex.response["Error"]["Code"]
        meta = ex.response.get("ResponseMetadata", {})
        error = f"Lambda.{code}"
        cause = (f"{ex.response['Error']['Message']} (Service: AWSLambda; Status Code: {meta.get('HTTPStatusCode')}; "
                 f"Error Code: {code}; Request ID: {meta.get('RequestId')}; Proxy: null)")
        return FailureEvent(
            env=env,
            error_name=CustomErrorName(error),
            event_type=HistoryEventType.LambdaFunctionFailed,
            event_details=EventDetails(
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
def lambda_and_sfn_hooks(local: LocalApp, faults: list[Fault] | None = None) -> Iterator[FaultPlan]:
    """Install the hooks for one local session; yields the fault plan (what was injected)."""
    from moto.awslambda_simple.models import LambdaSimpleBackend  # noqa: PLC0415
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl  # noqa: PLC0415
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils  # noqa: PLC0415

    # The `.waitForTaskToken` wait is a Lambda service integration (arn:aws:states:::lambda:invoke...): its own class,
    # which already names Lambda errors Lambda.<code> (recorded as TaskFailed, as on AWS), but must be told its state.
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_lambda import (  # noqa: PLC0415
        StateTaskServiceLambda,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task_lambda import (  # noqa: PLC0415
        StateTaskLambda,
    )

    plan = FaultPlan(list(faults or []))
    with mock.patch.object(LambdaSimpleBackend, "invoke", _dispatching_invoke(local)), \
            mock.patch.object(StateTaskLambda, "_eval_execution", _remember_state(StateTaskLambda._eval_execution)), \
            mock.patch.object(StateTaskServiceLambda, "_eval_execution",
                              _remember_state(StateTaskServiceLambda._eval_execution)), \
            mock.patch.object(StateTaskLambda, "_from_error", _lambda_error_names(StateTaskLambda._from_error)), \
            mock.patch.object(lambda_eval_utils, "execute_lambda_function_integration",
                              _faulty_invoke(plan, lambda_eval_utils.execute_lambda_function_integration)), \
            mock.patch.object(retrier_decl, "time", _ScaledTime()):
        yield plan
