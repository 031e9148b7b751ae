"""Lambda, as local mode runs it: each function's handler called in-process, with a Lambda-like context.

moto's Docker-free Lambda backend is pointed at the handler named in the template (moto_hooks.lambda_and_sfn_hooks),
so the state machine's Task states and the EventBridge rules' targets run our handlers in this process, each with its
function's environment from the template (deploy.shared_environment) and, for authorization, its own role
(deploy.LocalApp.invoke).
"""

from __future__ import annotations

import copy
import importlib
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from batch_pipeline_local.template import ACCOUNT, REGION

# Handler modules: the package every function of the template runs (batch_pipeline.handlers.<step>.handler).
HANDLERS_PACKAGE = "batch_pipeline.handlers."


@dataclass
class LocalFunction:
    """One AWS::Lambda::Function of the template, as deployed locally."""

    logical_id: str
    name: str
    handler: str
    environment: dict[str, str]
    role_arn: str = ""


class FakeContext:
    """The attributes Powertools reads from a Lambda context."""

    def __init__(self, function: LocalFunction) -> None:
        self.function_name = function.name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 1024
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function.name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function.name}"
        self.log_stream_name = "local"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 900_000


@dataclass
class Invocation:
    """One invocation of a function: the event it got, and the error it raised, if any."""

    function: str
    event: Any
    error: str | None = None


def run_handler(function: LocalFunction, event: Any) -> Any:
    """Call the function's handler with a copy of `event` (Lambda hands each invocation its own deserialized event)."""
    module_name, _, attribute = function.handler.rpartition(".")
    handler: Callable[[Any, FakeContext], Any] = getattr(importlib.import_module(module_name), attribute)
    return handler(copy.deepcopy(event), FakeContext(function))


def forget_handler_modules() -> None:
    """Handlers make their boto3 clients at import; a module imported in an earlier session holds
    clients bound to that session's credentials and region, so import them afresh."""
    for name in [m for m in sys.modules if m.startswith(HANDLERS_PACKAGE)]:
        del sys.modules[name]
