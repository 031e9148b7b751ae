"""Deploying the template into moto: its buckets, topic, keys, roles, models, functions and state machine.

Each resource gets a local name (the template's own name where it sets one) and each intrinsic function is resolved
against those names (template.Resolver), so the functions' environments, the state machine's definition and the
policies read from the template (authorization/policies.py) all name what moto holds. The result is a LocalApp:
the deployed app, whose `invoke` runs a function's handler in-process under the function's own role.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import uuid
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.client import BaseClient

from batch_pipeline_local.authorization.enforce import Authorizer, Identity, acting_as
from batch_pipeline_local.authorization.policies import PolicyStore, build_policy_store
from batch_pipeline_local.emulator.events import LocalEventBus
from batch_pipeline_local.emulator.faults import FaultPlan
from batch_pipeline_local.emulator.lambda_runtime import Invocation, LocalFunction, run_handler
from batch_pipeline_local.template import ACCOUNT, REGION, Resolver, Template, resources_of

# Waits in local mode: jobs end at once, so polling waits seconds, not minutes.
LOCAL_POLL_ENVIRONMENT = {"POLL_INITIAL_SECONDS": "0", "POLL_MAX_SECONDS": "1"}


class LocalRunError(RuntimeError):
    """Local mode cannot deploy or run the template as asked."""


@dataclass
class LocalApp:
    """The app as deployed into moto: where its resources are, its functions, and what happened while it ran."""

    template: Template
    input_bucket: str
    output_bucket: str
    topic_arn: str
    state_machine_arn: str
    functions: dict[str, LocalFunction]
    invocations: list[Invocation] = field(default_factory=list)
    policies: PolicyStore | None = None  # what the template allows
    authorizer: Authorizer | None = None  # the calls checked and denied, while session.local_aws() is active
    definition: str = "{}"  # the state machine's ASL as deployed
    fault_plan: FaultPlan | None = None  # the rehearsed faults and what was injected
    event_bus: LocalEventBus | None = None  # the template's rules, what they delivered and any delivery failure

    def function_by_handler(self, handler: str) -> LocalFunction:
        return next(f for f in self.functions.values() if f.handler == handler)

    def invoke(self, function: LocalFunction, event: Any) -> Any:
        """Run the function's handler in-process, as Lambda would run it, its AWS calls made as its own role."""
        record = Invocation(function.logical_id, event)
        self.invocations.append(record)
        try:
            with self._acting_as(function):
                return run_handler(function, event)
        except Exception as error:
            record.error = f"{type(error).__name__}: {error}"
            raise

    def handlers(self) -> dict[str, Callable[[Any], Any]]:
        """Function name -> what runs it with an event (for moto's Lambda backend and the event bus)."""
        return {name: _invoker(self, function) for name, function in self.functions.items()}

    def _acting_as(self, function: LocalFunction) -> contextlib.AbstractContextManager[None]:
        """Authorization: the handler's AWS calls are made as its own role, as in Lambda."""
        role = self.policies.role_by_arn(function.role_arn) if self.policies is not None else None
        return acting_as(Identity(role, function.name) if role is not None else None)


def _invoker(local: LocalApp, function: LocalFunction) -> Callable[[Any], Any]:
    def invoke(event: Any) -> Any:
        return local.invoke(function, event)

    return invoke


def _dummy_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "local mode runs the handler in-process; this zip is never executed\n")
    return buffer.getvalue()


def deploy(template: Template, clients: Mapping[str, BaseClient]) -> LocalApp:
    """Create the template's buckets, topic, models, functions and state machine in moto."""
    s3, sns, iam, lam, sfn, sagemaker = (
        clients[n] for n in ("s3", "sns", "iam", "lambda", "stepfunctions", "sagemaker")
    )
    physical: dict[str, str] = {}
    attributes: dict[tuple[str, str], str] = {}
    suffix = uuid.uuid4().hex[:8]
    buckets = resources_of(template, "AWS::S3::Bucket")
    for logical, bucket in buckets.items():
        name = f"local-{logical.lower()[:40]}-{suffix}"
        s3.create_bucket(Bucket=name)
        if bucket["Properties"].get("VersioningConfiguration", {}).get("Status") == "Enabled":
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        physical[logical] = name
        attributes[(logical, "Arn")] = f"arn:aws:s3:::{name}"
    for logical in resources_of(template, "AWS::SNS::Topic"):
        arn = sns.create_topic(Name=f"local-{logical}-{suffix}")["TopicArn"]
        physical[logical] = arn
        attributes[(logical, "TopicArn")] = arn
    for logical in resources_of(template, "AWS::KMS::Key"):
        # Key ids are UUIDs in AWS, and APIs check the shape (Bedrock's s3EncryptionKeyId pattern does).
        attributes[(logical, "Arn")] = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{uuid.uuid5(uuid.NAMESPACE_URL, logical)}"
    for logical in resources_of(template, "AWS::SQS::Queue"):
        attributes[(logical, "Arn")] = f"arn:aws:sqs:{REGION}:{ACCOUNT}:local-{logical}"
    _create_roles(template, iam, attributes)
    state_machines = resources_of(template, "AWS::StepFunctions::StateMachine")
    ((sm_logical, sm_resource),) = state_machines.items()
    sm_name = sm_resource["Properties"].get("StateMachineName") or f"local-run-state-machine-{suffix}"
    sm_arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{sm_name}"
    physical[sm_logical] = sm_arn
    attributes[(sm_logical, "Name")] = sm_name
    functions_raw = resources_of(template, "AWS::Lambda::Function")
    for logical in functions_raw:
        physical[logical] = logical
        attributes[(logical, "Arn")] = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{logical}"
    resolve = Resolver(physical, attributes)

    for model in resources_of(template, "AWS::SageMaker::Model").values():
        props = resolve(model["Properties"])
        sagemaker.create_model(
            ModelName=props["ModelName"],
            ExecutionRoleArn=props["ExecutionRoleArn"],
            PrimaryContainer={
                k: v
                for k, v in props["PrimaryContainer"].items()
                if k in ("Image", "ModelDataUrl", "Environment", "Mode")
            },
            EnableNetworkIsolation=props.get("EnableNetworkIsolation", False),
        )

    functions: dict[str, LocalFunction] = {}
    code = _dummy_zip()
    for logical, fn in functions_raw.items():
        props = fn["Properties"]
        environment = {k: str(v) for k, v in resolve(props.get("Environment", {}).get("Variables", {})).items()}
        role_arn = resolve(props["Role"])
        lam.create_function(
            FunctionName=logical,
            Runtime=props["Runtime"],
            Role=role_arn,
            Handler=props["Handler"],
            Code={"ZipFile": code},
            Description=props.get("Description", "")[:256],
            Environment={"Variables": environment},
        )
        functions[logical] = LocalFunction(logical, logical, props["Handler"], environment, role_arn)

    definition = resolve(sm_resource["Properties"]["DefinitionString"])
    sfn.create_state_machine(
        name=sm_name, definition=definition, roleArn=resolve(sm_resource["Properties"]["RoleArn"]), type="STANDARD"
    )
    input_bucket, output_bucket = _input_and_output(template, physical)
    topic_arn = next(iter(physical[t] for t in resources_of(template, "AWS::SNS::Topic")))
    return LocalApp(
        template,
        input_bucket,
        output_bucket,
        topic_arn,
        sm_arn,
        functions,
        definition=definition,
        policies=build_policy_store(template, resolve, physical, attributes),
    )


def _create_roles(template: Template, iam: BaseClient, attributes: dict[tuple[str, str], str]) -> None:
    """Authorization: one IAM role per template role, with its trust policy, so each function, the state machine
    and each service runs as its own principal (as deployed), not as one shared identity."""
    for logical, role in resources_of(template, "AWS::IAM::Role").items():
        resolve = Resolver({}, {})
        trust = resolve(role["Properties"]["AssumeRolePolicyDocument"])
        name = role["Properties"].get("RoleName") or f"local-{logical}"[:64]
        attributes[(logical, "Arn")] = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))[
            "Role"
        ]["Arn"]


def _input_and_output(template: Template, physical: dict[str, str]) -> tuple[str, str]:
    """The input bucket is the one with EventBridge notifications; the output one is the other versioned one."""
    buckets = resources_of(template, "AWS::S3::Bucket")
    versioned = [n for n, b in buckets.items() if "VersioningConfiguration" in b["Properties"]]
    inputs = [n for n in versioned if "NotificationConfiguration" in buckets[n]["Properties"]]
    outputs = [n for n in versioned if n not in inputs]
    if len(inputs) != 1 or len(outputs) != 1:
        raise LocalRunError(f"cannot tell input from output bucket in the template: {versioned}")
    return physical[inputs[0]], physical[outputs[0]]


def shared_environment(local: LocalApp) -> dict[str, str]:
    """The union of every function's environment (they agree on shared keys), plus local-mode settings.

    Step Functions runs Map iterations in threads, so per-invocation environment swaps would race;
    one process-wide environment is both simpler and exact."""
    merged: dict[str, str] = {}
    for function in local.functions.values():
        for key, value in function.environment.items():
            if merged.get(key, value) != value:
                raise LocalRunError(f"functions disagree on environment variable {key}")
            merged[key] = value
    merged.update(LOCAL_POLL_ENVIRONMENT)
    merged.update(
        {
            "LOCAL_STAND_IN": "1",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "POWERTOOLS_TRACE_DISABLED": "1",
            "POWERTOOLS_METRICS_DISABLED": "1",
            "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
        }
    )
    return merged
