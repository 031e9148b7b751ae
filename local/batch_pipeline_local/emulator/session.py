"""A local-mode session: emulated AWS (moto) with the synthesized app deployed into it, for the life of a block.

`local_aws()` puts together, in this order (and takes down in the reverse one):
- fake credentials and `mock_aws`, with moto's Docker-free Lambda and its Step Functions interpreter running the
  exact definition from the template;
- the template deployed (deploy.py), its functions' environment set process-wide;
- the Lambda and Step Functions hooks (moto_hooks.py): handlers run in-process, errors named as Lambda names them,
  rehearsed faults (faults.py), the interpreter's own Lambda clients acting as the state machine's role;
- authorization, always on (authorization/enforce.py): every call a handler makes is judged against the template's
  policies before moto answers it;
- the stand-in engines (engines/) for SageMaker Batch Transform and Bedrock, whose job-state events reach the
  template's EventBridge rules (events.py).
Everything is gone when the block ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Iterator
from typing import Any
from unittest import mock

import boto3
from moto import mock_aws

from batch_pipeline.config.runtime import parse_runtime_pipelines
from batch_pipeline_local.authorization.enforce import Authorizer, Identity, carry_identity, enforce
from batch_pipeline_local.emulator.deploy import LocalApp, deploy, shared_environment
from batch_pipeline_local.emulator.events import LocalEventBus
from batch_pipeline_local.emulator.faults import Fault, check_fault_states, task_state_names
from batch_pipeline_local.emulator.lambda_runtime import forget_handler_modules
from batch_pipeline_local.emulator.moto_hooks import lambda_and_sfn_hooks, state_machine_lambda_clients
from batch_pipeline_local.engines.bedrock_batch import active_job_tags, install_bedrock_engine
from batch_pipeline_local.engines.sagemaker_transform import install_sagemaker_engine
from batch_pipeline_local.project import Project
from batch_pipeline_local.template import REGION, Template, resources_of, synthesize_template


@contextlib.contextmanager
def local_aws(
    context_overrides: dict[str, Any] | None = None,
    template: Template | None = None,
    bedrock_options: dict[str, Any] | None = None,
    faults: list[str] | None = None,
    project: Project | None = None,
) -> Iterator[LocalApp]:
    """Emulated AWS with the app deployed into it. Everything is gone when the block ends.
    template: the template to deploy (default: the project's app, synthesized with `context_overrides`).
    bedrock_options: for the Bedrock emulator (engines.bedrock_batch.BedrockBatchEmulator).
    faults: rehearsed Lambda faults, "STATE:ERROR:TIMES" each (faults.py).
    project: the project whose app is synthesized and whose node_modules holds the IAM evaluator (default: the one
    the current directory is in)."""
    project = project or Project.find()
    template = template or synthesize_template(context_overrides, project)
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
            authorization_enforced(local, project),
            install_engines(local, bedrock_options),
            warnings.catch_warnings(),
        ):
            # Local mode disables metrics, and Powertools clears dimensions only when it publishes, so handlers that
            # share one process see the previous invocation's 'pipeline' dimension. In Lambda each flush clears it.
            warnings.filterwarnings("ignore", message="Dimension 'pipeline' has already been added")
            forget_handler_modules()
            yield local


@contextlib.contextmanager
def install_engines(
    local: LocalApp, bedrock_options: dict[str, Any] | None = None, **sagemaker_options: Any
) -> Iterator[None]:
    """Local stand-ins for the model containers, told which task each SageMaker model serves, and the Bedrock
    batch/InvokeModel emulator with the configured per-job record quotas (reach it with active_bedrock_emulator())."""
    pipelines = parse_runtime_pipelines(shared_environment(local)["PIPELINES"])
    tasks = {p.sagemaker_model_name: p.task for p in pipelines.values() if p.sagemaker_model_name}
    # The emulated account has the quotas the configuration says it has.
    quotas = [p.pipeline.bedrock for p in pipelines.values() if p.pipeline.bedrock is not None]
    bedrock: dict[str, Any] = (
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


def local_event_bus(local: LocalApp) -> LocalEventBus:
    """The template's EventBridge rules, delivering to the deployed functions in-process."""
    return LocalEventBus(local.template, lambda logical, event: local.invoke(local.functions[logical], event))


@contextlib.contextmanager
def authorization_enforced(local: LocalApp, project: Project) -> Iterator[None]:
    """Authorization, always on: every call a handler makes is evaluated against the template's policies before
    moto answers it (authorization/enforce.py); local.authorizer keeps the tally for the run report. Calls the Step
    Functions interpreter makes to Lambda are the state machine role's."""
    if local.policies is None:
        raise ValueError("the deployed app has no policies to enforce")
    local.authorizer = Authorizer(local.policies, node_modules=project.node_modules, resource_tags=active_job_tags)
    state_machine = resources_of(local.template, "AWS::StepFunctions::StateMachine")
    ((_, sm_resource),) = state_machine.items()
    sm_role_logical = sm_resource["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    sm_identity = Identity(local.policies.roles[sm_role_logical], local.state_machine_arn.rsplit(":", 1)[-1])
    with (
        enforce(local.authorizer),
        state_machine_lambda_clients(lambda client: carry_identity(client, sm_identity)),
    ):
        yield


@contextlib.contextmanager
def _lambda_hooks(local: LocalApp, faults: list[str] | None) -> Iterator[None]:
    """Handlers in-process, Lambda's error names, and rehearsed faults checked against the template's Task states."""
    parsed = [Fault.parse(text) for text in faults or []]
    check_fault_states(parsed, task_state_names(json.loads(local.definition)))
    with lambda_and_sfn_hooks(local.handlers(), parsed) as plan:
        local.fault_plan = plan
        yield
