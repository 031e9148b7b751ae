"""Local mode: the synthesized application, run for real on emulated AWS.

- The app is synthesized in-process and its CloudFormation template is read back.
- moto plays S3, SageMaker, SNS, IAM, Lambda and Step Functions. The state machine is created from
  the template's exact definition and executed by moto's interpreter (`execute_state_machine`).
- Lambda invocations run our handlers in-process: moto's Docker-free Lambda backend is pointed at
  the handler named in the template, with the function's environment from the template.
- Local engines stand in for the model containers. They exercise the pipeline, not a model, and
  every output they write says so.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import json
import os
import time
import uuid
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

from batch_pipeline.config.app import ConfigError
from batch_pipeline.storage.jsonl import split_lines
from batch_pipeline.storage.layout import REJECTION_REPORT_SUFFIX, RunFolder, rejected_pipeline_prefix

ACCOUNT = "123456789012"
REGION = "us-east-1"
STACK_NAME = "LlmBatchPipeline"
STAND_IN_LABEL = "local stand-in engine (not a model)"
# Waits in local mode: jobs end at once, so polling waits seconds, not minutes.
LOCAL_POLL_ENVIRONMENT = {"POLL_INITIAL_SECONDS": "0", "POLL_MAX_SECONDS": "1"}


class LocalRunError(RuntimeError):
    pass


# ---------------------------------------------------------------------------- template


def synthesize_template(context_overrides: dict | None = None) -> dict:
    """Synthesize the app exactly as `cdk synth` would (minus asset bundling) and return the template."""
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    os.environ.setdefault("CDK_VALIDATION", "false")
    import sys

    from batch_pipeline_local.settings import DEFAULT_CDK_JSON, REPO_ROOT

    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))  # app.py and stacks/ live at the repository root
    from app import STACK_NAME as APP_STACK  # jsii start-up only when needed
    from app import build_app

    context = json.loads(Path(DEFAULT_CDK_JSON).read_text())["context"]
    context["aws:cdk:bundling-stacks"] = []
    for key, value in (context_overrides or {}).items():
        context[key] = value
    app, _ = build_app(copy.deepcopy(context))
    return app.synth().get_stack_by_name(APP_STACK).template


def template_from_assembly(directory: Path | str, stack: str = STACK_NAME) -> dict:
    """The stack's template from a cloud assembly directory (`npx cdk synth` writes one to cdk.out)."""
    directory = Path(directory)
    try:
        manifest = json.loads((directory / "manifest.json").read_text())  # not-a-run-key: the cloud assembly's
    except (OSError, ValueError) as error:
        raise ConfigError(f"{directory}: not a cloud assembly (manifest.json: {error})") from None
    artifact = manifest.get("artifacts", {}).get(stack)
    if not artifact or artifact.get("type") != "aws:cloudformation:stack":
        raise ConfigError(f"{directory}: no stack {stack!r} in the cloud assembly")
    name = artifact.get("properties", {}).get("templateFile", f"{stack}.template.json")
    try:
        return json.loads((directory / name).read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"{directory / name}: cannot read the template: {error}") from None


def resources_of(template: dict, kind: str) -> dict[str, dict]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


class Resolver:
    """Resolves the intrinsic functions the synthesized template uses, against local names."""

    def __init__(self, physical: dict[str, str], attributes: dict[tuple[str, str], str]) -> None:
        self.physical = physical
        self.attributes = attributes
        self.pseudo = {
            "AWS::Partition": "aws",
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": STACK_NAME,
        }

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((fn, arg),) = value.items()
            if fn == "Ref":
                if arg in self.pseudo:
                    return self.pseudo[arg]
                return self.physical.get(arg, f"local-{arg}")
            if fn == "Fn::GetAtt":
                logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.attributes.get((logical, attribute), f"local-{logical}-{attribute}")
            if fn == "Fn::Join":
                separator, parts = arg
                return separator.join(str(self(p)) for p in parts)
            if fn == "Fn::Select":
                index, items = arg
                return self(items)[int(index)]
            if fn == "Fn::Split":
                separator, text = arg
                return str(self(text)).split(separator)
        return {k: self(v) for k, v in value.items()}


# ---------------------------------------------------------------------------- Lambda dispatch


@dataclass
class LocalFunction:
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
    function: str
    event: Any
    error: str | None = None


@dataclass
class LocalApp:
    template: dict
    input_bucket: str
    output_bucket: str
    topic_arn: str
    state_machine_arn: str
    functions: dict[str, LocalFunction]
    invocations: list[Invocation] = field(default_factory=list)
    policies: Any = None  # authorization.policies.PolicyStore: what the template allows
    authorizer: Any = None  # authorization.enforce.Authorizer while local_aws() is active
    definition: str = "{}"  # the state machine's ASL as deployed
    fault_plan: Any = None  # moto_hooks.FaultPlan: the rehearsed faults and what was injected
    event_bus: Any = None  # events.LocalEventBus: the template's rules, what they delivered and any delivery failure

    def function_by_handler(self, handler: str) -> LocalFunction:
        return next(f for f in self.functions.values() if f.handler == handler)

    def invoke(self, function: LocalFunction, event: Any) -> Any:
        """Run the function's handler in-process, as Lambda would run it."""
        record = Invocation(function.logical_id, event)
        self.invocations.append(record)
        module_name, _, attribute = function.handler.rpartition(".")
        handler: Callable = getattr(importlib.import_module(module_name), attribute)
        try:
            with _acting_as_function(self, function):
                return handler(copy.deepcopy(event), FakeContext(function))
        except Exception as error:
            record.error = f"{type(error).__name__}: {error}"
            raise


def _acting_as_function(local: LocalApp, function: LocalFunction) -> contextlib.AbstractContextManager:
    """Authorization: the handler's AWS calls are made as its own role, as in Lambda."""
    from batch_pipeline_local.authorization.enforce import Identity, acting_as

    role = local.policies.role_by_arn(function.role_arn) if local.policies is not None else None
    return acting_as(Identity(role, function.name) if role is not None else None)


# ---------------------------------------------------------------------------- building the emulated app


def _dummy_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "local mode runs the handler in-process; this zip is never executed\n")
    return buffer.getvalue()


def deploy(template: dict, clients: dict) -> LocalApp:
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
        policies=_policy_store(template, resolve, physical, attributes),
    )


def _create_roles(template: dict, iam: Any, attributes: dict[tuple[str, str], str]) -> None:
    """Authorization: one IAM role per template role, with its trust policy, so each function, the state machine
    and each service runs as its own principal (as deployed), not as one shared identity."""
    for logical, role in resources_of(template, "AWS::IAM::Role").items():
        resolve = Resolver({}, {})
        trust = resolve(role["Properties"]["AssumeRolePolicyDocument"])
        name = role["Properties"].get("RoleName") or f"local-{logical}"[:64]
        attributes[(logical, "Arn")] = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))[
            "Role"
        ]["Arn"]


def _policy_store(template: dict, resolve: Resolver, physical: dict[str, str], attributes: dict) -> Any:
    from batch_pipeline_local.authorization.policies import build_policy_store

    return build_policy_store(template, resolve, physical, attributes)


def _input_and_output(template: dict, physical: dict[str, str]) -> tuple[str, str]:
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


# ---------------------------------------------------------------------------- the session


@contextlib.contextmanager
def install_engines(local: LocalApp, bedrock_options: dict | None = None, **sagemaker_options: Any) -> Iterator[None]:
    """Local stand-ins for the model containers, told which task each SageMaker model serves, and the Bedrock
    batch/InvokeModel emulator with the configured per-job record quotas (reach it with active_bedrock_emulator())."""
    from batch_pipeline.config.runtime import parse_runtime_pipelines
    from batch_pipeline_local.engines.bedrock_batch import install_bedrock_engine
    from batch_pipeline_local.engines.sagemaker_transform import install_sagemaker_engine

    pipelines = parse_runtime_pipelines(shared_environment(local)["PIPELINES"])
    tasks = {p.sagemaker_model_name: p.task for p in pipelines.values() if p.sagemaker_model_name}
    # The emulated account has the quotas the configuration says it has.
    quotas = [p.pipeline.bedrock for p in pipelines.values() if p.pipeline.bedrock is not None]
    bedrock = (
        {
            "min_records": min(q.min_records_per_job for q in quotas),
            "max_records": max(q.max_records_per_job for q in quotas),
        }
        if quotas
        else {}
    )
    # Both emulators' job-state events reach the template's EventBridge rules, as on AWS (events.LocalEventBus), whose
    # patterns decide what is delivered. Their jobs run on their own (Bedrock's on a clock, SageMaker's on a thread
    # once first checked), so a run that waits sees its jobs end through their events, not by polling.
    bus = local.event_bus = local_event_bus(local)
    bedrock = {**bedrock, "on_event": bus.publish, "tick_seconds": 0.05}
    sagemaker = {"on_event": bus.publish, "asynchronous": True, **sagemaker_options}
    with (
        install_sagemaker_engine(task_for_model=tasks, **sagemaker),
        install_bedrock_engine(**{**bedrock, **(bedrock_options or {})}),
    ):
        yield
    # No job changes state any more; a delivery still in flight finishes, and one that raised fails the session.
    bus.drain()
    bus.raise_failures()


def local_event_bus(local: LocalApp) -> Any:
    from batch_pipeline_local.events import LocalEventBus

    return LocalEventBus(local.template, lambda logical, event: local.invoke(local.functions[logical], event))


@contextlib.contextmanager
def local_aws(
    context_overrides: dict | None = None,
    template: dict | None = None,
    bedrock_options: dict | None = None,
    faults: list[str] | None = None,
) -> Iterator[LocalApp]:
    """Emulated AWS with the app deployed into it. Everything is gone when the block ends.
    bedrock_options: for the Bedrock emulator (engines.bedrock_batch.BedrockBatchEmulator).
    faults: rehearsed Lambda faults, "STATE:ERROR:TIMES" each (see moto_hooks)."""
    import boto3
    from moto import mock_aws

    template = template or synthesize_template(context_overrides)
    fake_credentials = {
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_SESSION_TOKEN": "local",
        "AWS_DEFAULT_REGION": REGION,
    }
    with (
        mock.patch.dict(os.environ, fake_credentials),
        mock_aws(config={"lambda": {"use_docker": False}, "stepfunctions": {"execute_state_machine": True}}),
    ):
        clients = {
            name: boto3.client(name, region_name=REGION)
            for name in ("s3", "sns", "iam", "lambda", "stepfunctions", "sagemaker")
        }
        local = deploy(template, clients)
        with (
            mock.patch.dict(os.environ, shared_environment(local)),
            _lambda_hooks(local, faults),
            authorization_enforced(local),
            install_engines(local, bedrock_options),
            warnings.catch_warnings(),
        ):
            # Local mode disables metrics, and Powertools clears dimensions only when it publishes, so handlers that
            # share one process see the previous invocation's 'pipeline' dimension. In Lambda each flush clears it.
            warnings.filterwarnings("ignore", message="Dimension 'pipeline' has already been added")
            _reset_handler_clients()
            yield local


@contextlib.contextmanager
def authorization_enforced(local: LocalApp) -> Iterator[None]:
    """Authorization, always on: every call a handler makes is evaluated against the template's policies before
    moto answers it (authorization/enforce.py); local.authorizer keeps the tally for the run report."""
    from batch_pipeline_local.authorization.enforce import Authorizer, Identity, enforce

    local.authorizer = Authorizer(local.policies)
    state_machine = resources_of(local.template, "AWS::StepFunctions::StateMachine")
    ((sm_logical, sm_resource),) = state_machine.items()
    sm_role_logical = sm_resource["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    sm_identity = Identity(local.policies.roles[sm_role_logical], local.state_machine_arn.rsplit(":", 1)[-1])
    with enforce(local.authorizer, sm_identity):
        yield


@contextlib.contextmanager
def _lambda_hooks(local: LocalApp, faults: list[str] | None) -> Iterator[None]:
    """Handlers in-process, Lambda's error names, and rehearsed faults checked against the template's Task states."""
    from batch_pipeline_local.moto_hooks import Fault, check_fault_states, lambda_and_sfn_hooks, task_state_names

    parsed = [Fault.parse(text) for text in faults or []]
    check_fault_states(parsed, task_state_names(json.loads(local.definition)))
    with lambda_and_sfn_hooks(local, parsed) as plan:
        local.fault_plan = plan
        yield


def _reset_handler_clients() -> None:
    """Handlers make their boto3 clients at import; a module imported in an earlier session holds
    clients bound to that session's credentials and region, so import them afresh."""
    import sys

    for name in [m for m in sys.modules if m.startswith("batch_pipeline.handlers.")]:
        del sys.modules[name]


# ---------------------------------------------------------------------------- a run


def eventbridge_object_created(bucket: str, key: str, head: dict) -> dict:
    """The event S3 sends to EventBridge for a new object (the shape the intake rule delivers)."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    obj = {
        "key": key,
        "size": head["ContentLength"],
        "etag": head["ETag"].strip('"'),
        "sequencer": uuid.uuid4().hex[:18].upper(),
    }
    if head.get("VersionId") and head["VersionId"] != "null":
        obj["version-id"] = head["VersionId"]
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": ACCOUNT,
        "time": now,
        "region": REGION,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": obj,
            "request-id": uuid.uuid4().hex[:16].upper(),
            "requester": ACCOUNT,
            "source-ip-address": "127.0.0.1",
            "reason": "PutObject",
        },
    }


def upload(local: LocalApp, path: Path, pipeline: str, name: str | None = None) -> dict:
    import boto3

    s3 = boto3.client("s3", region_name=REGION)
    key = f"{pipeline}/{name or path.name}"
    s3.upload_file(str(path), local.input_bucket, key)
    head = s3.head_object(Bucket=local.input_bucket, Key=key)
    return eventbridge_object_created(local.input_bucket, key, head)


def deliver(local: LocalApp, event: dict) -> Any:
    """Deliver an S3 event to intake, as the EventBridge rule does."""
    intake = local.function_by_handler("batch_pipeline.handlers.intake.handler")
    return local.invoke(intake, event)


def wait_for_executions(local: LocalApp, timeout: float = 120.0) -> list[dict]:
    import boto3

    sfn = boto3.client("stepfunctions", region_name=REGION)
    deadline = time.monotonic() + timeout
    while True:
        if local.event_bus is not None:
            local.event_bus.raise_failures()  # a job-state event's handler raised: fail now, with its traceback
        executions = sfn.list_executions(stateMachineArn=local.state_machine_arn)["executions"]
        if all(e["status"] != "RUNNING" for e in executions):
            return [sfn.describe_execution(executionArn=e["executionArn"]) for e in executions]
        if time.monotonic() > deadline:
            raise LocalRunError(
                f"executions still running after {timeout:.0f} s: "
                f"{[e['name'] for e in executions if e['status'] == 'RUNNING']}"
            )
        time.sleep(0.05)


def read_json(bucket: str, key: str) -> dict | None:
    import boto3

    s3 = boto3.client("s3", region_name=REGION)
    try:
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except s3.exceptions.NoSuchKey:
        return None


def read_lines(bucket: str, key: str) -> list[dict]:
    import boto3

    s3 = boto3.client("s3", region_name=REGION)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return [json.loads(line) for line in split_lines(body) if line.strip()]


@dataclass
class RunResult:
    """What one local run produced: the manifest, or the rejection report, and the execution."""

    pipeline: str
    key: str
    execution: dict | None
    manifest: dict | None
    rejection: dict | None
    seconds: float
    # Billed model requests the emulators received during this run (an independent count: the manifest's
    # model_invocations must equal it).
    model_requests_received: int = 0
    # Jobs whose wait a job-state event resumed during this run (the event handler answered "resumed"), by event
    # source: what tells an event-driven run from one that found its jobs ended or fell back on the backstop.
    resumed_by_event: dict[str, list[str]] = field(default_factory=dict)

    @property
    def status(self) -> str:
        if self.manifest:
            return self.manifest["status"]
        return "REJECTED" if self.rejection else "NO RUN"


def model_requests_received() -> int:
    """Billed requests the installed stand-in engines received so far: InvokeModel requests, records of Bedrock
    batch jobs and records of transform jobs. Counted where the requests arrive, not where they are sent."""
    from batch_pipeline_local.engines.bedrock_batch import active_bedrock_emulator
    from batch_pipeline_local.engines.bedrock_batch import model_requests_received as bedrock_received
    from batch_pipeline_local.engines.sagemaker_transform import active_sagemaker_engine

    total = 0
    with contextlib.suppress(LookupError):
        total += bedrock_received(active_bedrock_emulator())
    with contextlib.suppress(LookupError):
        total += active_sagemaker_engine().records_received
    return total


# Called with every RunResult run_file returns (the e2e suite checks each run's billed requests here).
RUN_OBSERVERS: list[Callable[[RunResult], None]] = []


def run_file(local: LocalApp, path: Path, pipeline: str, *, timeout: float = 120.0) -> RunResult:
    result = _run_file(local, path, pipeline, timeout=timeout)
    for observer in RUN_OBSERVERS:
        observer(result)
    return result


def _run_file(local: LocalApp, path: Path, pipeline: str, *, timeout: float) -> RunResult:
    import boto3

    started = time.monotonic()
    received_before = model_requests_received()
    delivered_before = len(local.event_bus.delivered) if local.event_bus is not None else 0
    event = upload(local, path, pipeline)
    before = {
        e["executionArn"]
        for e in boto3.client("stepfunctions", region_name=REGION).list_executions(
            stateMachineArn=local.state_machine_arn
        )["executions"]
    }
    deliver(local, event)
    executions = [e for e in wait_for_executions(local, timeout) if e["executionArn"] not in before]
    key = event["detail"]["object"]["key"]
    if not executions:
        return RunResult(
            pipeline, key, None, None, _find_rejection(local, pipeline, path.name), time.monotonic() - started
        )
    execution = executions[0]
    run = json.loads(execution["input"])["run"]  # contracts.ExecutionInput
    folder = RunFolder.of(run)
    manifest = read_json(folder.bucket, folder.manifest_key)
    return RunResult(
        pipeline,
        key,
        execution,
        manifest,
        None,
        time.monotonic() - started,
        model_requests_received() - received_before,
        _resumed_by_event(local, delivered_before),
    )


def _resumed_by_event(local: LocalApp, since: int) -> dict[str, list[str]]:
    """Job names whose wait an event delivery resumed (after the `since`-th delivery), by the event's source."""
    if local.event_bus is None:
        return {}
    local.event_bus.drain()  # a delivery that resumed the run records its result just after SendTaskSuccess
    resumed: dict[str, list[str]] = {}
    for _, event, result in local.event_bus.delivered[since:]:
        if isinstance(result, dict) and result.get("outcome") == "resumed":
            resumed.setdefault(event["source"], []).append(result["job_name"])
    return resumed


def _find_rejection(local: LocalApp, pipeline: str, name: str) -> dict | None:
    import boto3

    s3 = boto3.client("s3", region_name=REGION)
    listing = s3.list_objects_v2(Bucket=local.output_bucket, Prefix=rejected_pipeline_prefix(pipeline))
    reports = sorted(
        (o for o in listing.get("Contents", []) if o["Key"].endswith(name + REJECTION_REPORT_SUFFIX)),
        key=lambda o: o["LastModified"],
    )
    if not reports:
        return None
    report = read_json(local.output_bucket, reports[-1]["Key"])
    return dict(report, report_uri=f"s3://{local.output_bucket}/{reports[-1]['Key']}")
