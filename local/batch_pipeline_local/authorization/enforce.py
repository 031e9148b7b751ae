"""Authorization in local mode: every AWS call a handler makes is evaluated before moto answers it.

- Identity follows the invocation: LocalApp.invoke runs each handler under its function's own role
  (`acting_as`), held in a context variable, so Step Functions' Map threads and a handler's thread pools
  (copied context, see `propagate_to_thread_pools`) each carry the right role.
- The hook wraps botocore's BaseClient._make_api_call, the one funnel every client call goes through (including
  s3transfer's upload_file and paginators), and asks the evaluator about each IAM request the call implies
  (operations.py): the role's identity policies, the target's resource policy, the key policy for calls that use
  the KMS key on the caller's behalf, iam:PassRole with iam:PassedToService.
- A denied call raises the service's own AccessDenied error in the handler, as AWS does.
- Calls our local engines make while serving a call (the stand-in transform container writing raw/ outputs) are
  the service's, not the handler's: they are not attributed to the handler; service_calls.py checks them.
- Clients made outside a handler can carry an identity of their own (`carry_identity`): local mode gives the Step
  Functions interpreter's Lambda clients the state machine role's, as its Invoke calls are that role's on AWS.

What it needs from local mode comes in as arguments: the template's policies (a PolicyStore), where the evaluator is
installed, and the tags the emulated services keep on their resources.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypedDict, TypeVar
from unittest import mock

from botocore.client import BaseClient
from botocore.exceptions import ClientError

from batch_pipeline_local.authorization.evaluator import ContextValue, RequestDenial, Simulation, Verdict, evaluate
from batch_pipeline_local.authorization.operations import Params, Request, missing_object_listing, requests_for
from batch_pipeline_local.authorization.policies import NamedPolicy, PolicyDocument, PolicyStore, Role
from batch_pipeline_local.project import Project
from batch_pipeline_local.template import ACCOUNT

# The tags a resource carries, by its ARN (none for a resource the emulated services keep no tags for).
ResourceTags = Callable[[str], Mapping[str, str]]

# The error each service returns for a denied request (code, HTTP status): the codes in each API reference.
ACCESS_DENIED = {
    "s3": ("AccessDenied", 403),
    "sns": ("AuthorizationError", 403),
    "sqs": ("AccessDenied", 403),
    "kms": ("AccessDeniedException", 400),
    "stepfunctions": ("AccessDeniedException", 400),
    "sagemaker": ("AccessDeniedException", 400),
    "sagemaker-runtime": ("AccessDeniedException", 400),
    "bedrock": ("AccessDeniedException", 403),
    "bedrock-runtime": ("AccessDeniedException", 403),
    "lambda": ("AccessDeniedException", 403),
    "iam": ("AccessDenied", 403),
    "sts": ("AccessDenied", 403),
}


@dataclass(frozen=True)
class Identity:
    role: Role
    session: str  # the function name: Lambda names the role session after the function

    @property
    def principal(self) -> str:
        return self.role.session_arn(self.session)


_identity: contextvars.ContextVar[Identity | None] = contextvars.ContextVar("local_identity", default=None)
_serving: contextvars.ContextVar[bool] = contextvars.ContextVar("local_serving_call", default=False)


@contextlib.contextmanager
def acting_as(identity: Identity | None) -> Iterator[None]:
    """Run the block as `identity` (a handler invocation): its calls are checked against its role."""
    tokens = (_identity.set(identity), _serving.set(False))
    try:
        yield
    finally:
        _serving.reset(tokens[1])
        _identity.reset(tokens[0])


@dataclass
class Denial:
    principal: str
    action: str
    resource: str
    operation: str
    reason: str
    denied_by: list[RequestDenial] = field(default_factory=list)

    def describe(self) -> str:
        return f"{self.principal} {self.operation}: {self.action} on {self.resource}: {self.reason}"

    def record(self) -> DenialRecord:
        return DenialRecord(
            principal=self.principal,
            action=self.action,
            resource=self.resource,
            operation=self.operation,
            reason=self.reason,
            denied_by=list(self.denied_by),
            message=self.describe(),
        )


class DenialRecord(TypedDict):
    """A denial as the run's authorization report lists it (`batch-pipeline local run --json`)."""

    principal: str
    action: str
    resource: str
    operation: str
    reason: str
    denied_by: list[RequestDenial]
    message: str


class AuthorizationReport(TypedDict):
    checked: int
    denied: int
    denials: list[DenialRecord]


def simulate(
    principal: str,
    request: Request,
    identity_policies: list[NamedPolicy],
    resource_policy: PolicyDocument | None,
    extra_context: Mapping[str, ContextValue] | None = None,
    *,
    node_modules: Path | None = None,
) -> Verdict:
    """One question to the evaluator, shaped as iam-simulate takes it; the evaluator is the one installed in
    `node_modules` (default: the current project's)."""
    simulation: Simulation = {
        "request": {
            "principal": principal,
            "action": request.action,
            "resource": {"resource": request.resource, "accountId": ACCOUNT},
            "contextVariables": {**request.context, **(extra_context or {})},
        },
        "identityPolicies": identity_policies,
        "serviceControlPolicies": [],
        "resourceControlPolicies": [],
    }
    if resource_policy is not None:
        simulation["resourcePolicy"] = resource_policy
    return evaluate(simulation, node_modules or Project.find().node_modules)


def reason_for(verdict: Verdict, action: str) -> str:
    """AWS's wording for why (IAM User Guide, "Troubleshoot access denied error messages")."""
    denials = verdict.get("denials") or []
    explicit = [d for d in denials if d.get("denialType") == "Explicit"]
    if explicit:
        kind = {"identity": "identity-based", "resource": "resource-based"}.get(
            explicit[0]["policyType"], explicit[0]["policyType"]
        )
        sid = explicit[0].get("statementId")
        return f"with an explicit deny in a {kind} policy" + (f" (statement {sid})" if sid else "")
    kinds = {d.get("policyType") for d in denials}
    if "resource" in kinds and "identity" not in kinds:
        return f"because no resource-based policy allows the {action} action"
    return f"because no identity-based policy allows the {action} action"


def _no_tags(arn: str) -> Mapping[str, str]:
    return {}


class Authorizer:
    """Checks calls against the policies of one deployed template and keeps the tally for the run report.

    store: the template's policies. node_modules: where the evaluator is installed (default: the current project's).
    resource_tags: the tags of the resource a request acts on, by ARN; each becomes the request's
    aws:ResourceTag/<key>, as AWS adds the tags of the resource it authorizes an action on."""

    def __init__(
        self, store: PolicyStore, *, node_modules: Path | None = None, resource_tags: ResourceTags = _no_tags
    ) -> None:
        self.store = store
        self.node_modules = node_modules or Project.find().node_modules
        self.resource_tags = resource_tags
        self.checked = 0
        self.denials: list[Denial] = []
        self._lock = threading.Lock()

    def decide(
        self,
        principal: str,
        identity_policies: list[NamedPolicy],
        request: Request,
        extra_context: Mapping[str, ContextValue] | None = None,
    ) -> Verdict:
        policy = (
            self.store.key_policies.get(request.resource)
            if request.via == "kms"
            else (None if request.action == "iam:PassRole" else self.store.resource_policy(request.resource))
        )
        return simulate(principal, request, identity_policies, policy, extra_context, node_modules=self.node_modules)

    def check(self, identity: Identity, service: str, operation: str, requests: list[Request]) -> Denial | None:
        principal = {"aws:PrincipalArn": identity.role.arn, "aws:PrincipalAccount": ACCOUNT}
        for request in requests:
            tags = {f"aws:ResourceTag/{key}": value for key, value in self.resource_tags(request.resource).items()}
            verdict = self.decide(identity.principal, identity.role.identity_policies(), request, {**tags, **principal})
            with self._lock:
                self.checked += 1
            if verdict["result"] != "Allowed":
                denial = Denial(
                    identity.principal,
                    request.action,
                    request.resource,
                    f"{service}:{operation}",
                    reason_for(verdict, request.action),
                    verdict.get("denials") or [],
                )
                with self._lock:
                    self.denials.append(denial)
                return denial
        return None

    def report(self) -> AuthorizationReport:
        with self._lock:
            return {
                "checked": self.checked,
                "denied": len(self.denials),
                "denials": [d.record() for d in self.denials],
            }


def access_denied(client: BaseClient, service: str, operation: str, denial: Denial) -> Exception:
    """The exception botocore raises for the service's AccessDenied response."""
    code, status = ACCESS_DENIED.get(service, ("AccessDeniedException", 403))
    message = (
        f"User: {denial.principal} is not authorized to perform: {denial.action} "
        f"on resource: {denial.resource} {denial.reason}"
    )
    if operation == "HeadObject":  # a HEAD response has no body: botocore sees only the status
        code, message = "403", "Forbidden"
    response = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}},
    }
    error_class = client.exceptions.from_code(code) if hasattr(client, "exceptions") else ClientError
    error: Exception = error_class(response, operation)  # a ClientError subclass (botocore ships no types)
    return error


_IDENTITY_ATTRIBUTE = "_batch_pipeline_local_identity"


def carry_identity(client: BaseClient, identity: Identity) -> None:
    """Calls through `client` are made as `identity`, whichever thread makes them (a client made outside a handler)."""
    setattr(client, _IDENTITY_ATTRIBUTE, identity)


@contextlib.contextmanager
def enforce(authorizer: Authorizer) -> Iterator[Authorizer]:
    """Check every call made under an identity for the life of the block."""
    original = BaseClient._make_api_call

    def checked_call(client: BaseClient, operation: str, params: Params) -> Any:  # the parsed response
        identity = getattr(client, _IDENTITY_ATTRIBUTE, None) or (None if _serving.get() else _identity.get())
        if identity is None:
            return original(client, operation, params)
        service = client.meta.service_model.service_name
        requests = requests_for(service, operation, params, authorizer.store)
        denial = authorizer.check(identity, service, operation, requests)
        if denial is not None:
            raise access_denied(client, service, operation, denial)
        token = _serving.set(True)
        try:
            return original(client, operation, params)
        except client.exceptions.ClientError as error:
            missing = error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404")
            if service == "s3" and operation in ("GetObject", "HeadObject") and missing:
                listing = authorizer.check(identity, service, operation, [missing_object_listing(params)])
                if listing is not None:
                    raise access_denied(client, service, operation, listing) from None
            raise
        finally:
            _serving.reset(token)

    with mock.patch.object(BaseClient, "_make_api_call", checked_call), propagate_to_thread_pools():
        yield authorizer


_T = TypeVar("_T")
_P = ParamSpec("_P")


def propagate_to_thread_pools() -> AbstractContextManager[object]:
    """A handler's thread pool works under the handler's identity, as its threads would in one Lambda sandbox."""
    original_submit = concurrent.futures.ThreadPoolExecutor.submit

    def submit(
        self: concurrent.futures.ThreadPoolExecutor, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> Future[_T]:  # ThreadPoolExecutor.submit's signature
        context = contextvars.copy_context()  # the submitter's identity, copied now
        return original_submit(self, lambda: context.run(fn, *args, **kwargs))

    return mock.patch.object(concurrent.futures.ThreadPoolExecutor, "submit", submit)
