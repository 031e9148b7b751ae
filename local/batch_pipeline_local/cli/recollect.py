"""`batch-pipeline recollect RUN_PREFIX`: recover a failed run without paying again.

collect (and its scoring) -> manifest -> notify from the raw outputs already in S3, through the same handlers the state
machine runs (no model is called, no job is submitted). The run and its jobs come from the run's failure manifest,
which lists every job with what collect needs (`batch_pipeline.results.manifest.RECOLLECT_FIELDS`).
`invoke(handler, event)` runs one step: against AWS the deployed function (`aws_invoker`, what the command uses), in
local mode the handler in-process (`local_invoker`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from batch_pipeline.config.app import ConfigError
from batch_pipeline.jobs.backends import OUTPUT_STATES
from batch_pipeline.results.manifest import run_from_manifest
from batch_pipeline.storage.layout import MANIFEST, as_folder, split_s3_uri
from batch_pipeline_local.cli.options import Subcommands

if TYPE_CHECKING:  # for annotations only: the emulator (botocore, the authorization checks) loads when local mode runs
    from boto3.session import Session
    from botocore.client import BaseClient

    from batch_pipeline_local.emulator.deploy import LocalApp

# A manifest as the manifest step writes it (manifest.json, JSON).
Manifest = dict[str, Any]
# Run one step: the handler's dotted name, its event -> what the handler returned.
Invoke = Callable[[str, dict[str, Any]], Any]
HANDLERS = {name: f"batch_pipeline.handlers.{name}.handler" for name in ("collect", "finalize", "notify")}


class RecollectError(RuntimeError):
    """A step failed while recollecting; the run folder keeps what it had."""


def run_folder(uri: str) -> tuple[str, str]:
    """s3://bucket/runs/<pipeline>/<run-id>/ -> (bucket, prefix ending in /)."""
    try:
        bucket, prefix = split_s3_uri(uri)
    except ValueError as error:
        raise ConfigError(f"RUN_PREFIX must be the run folder, s3://BUCKET/runs/PIPELINE/RUN_ID/: {error}") from None
    if not bucket or not prefix:
        raise ConfigError(f"RUN_PREFIX must be the run folder, s3://BUCKET/runs/PIPELINE/RUN_ID/, got {uri!r}")
    return bucket, as_folder(prefix)


def recollect(manifest: Manifest, invoke: Invoke) -> Manifest:
    """Run the result steps again for the run `manifest` describes; returns the new manifest."""
    jobs = manifest.get("jobs") or []
    with_output = [job for job in jobs if job.get("state") in OUTPUT_STATES]
    if not with_output:
        listed = ", ".join(f"{job.get('name')}: {job.get('state')}" for job in jobs) or "no jobs listed"
        raise ConfigError(
            f"run {manifest.get('run_id')}: no job has output to collect ({listed}); upload the file again"
        )
    run = run_from_manifest(manifest)
    collect = invoke(HANDLERS["collect"], {"run": run, "jobs": jobs})
    previous = {key: manifest.get(key) for key in ("status", "failed_state", "error", "cause")}
    result: Manifest = invoke(
        HANDLERS["finalize"], {"run": run, "jobs": jobs, "collect": collect, "recollected": previous}
    )
    try:
        invoke(HANDLERS["notify"], {"run": run, "manifest": result})
    except RecollectError as error:
        # As in the state machine: a notification that cannot be sent changes nothing.
        result = dict(result, notification_error=str(error))
    return result


def aws_invoker(stack_name: str, session: Session) -> Invoke:
    """Invoke the deployed functions of `stack_name` (in `session`'s account and Region) by the handler each runs."""
    cloudformation, lam = session.client("cloudformation"), session.client("lambda")
    by_handler: dict[str, str] = {}
    for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack_name):
        for resource in page["StackResourceSummaries"]:
            if resource["ResourceType"] == "AWS::Lambda::Function":
                name = resource["PhysicalResourceId"]
                by_handler[lam.get_function_configuration(FunctionName=name)["Handler"]] = name

    def invoke(handler: str, event: dict[str, Any]) -> Any:
        if handler not in by_handler:
            raise ConfigError(f"stack {stack_name} has no function running {handler}")
        response = lam.invoke(FunctionName=by_handler[handler], Payload=json.dumps(event).encode())
        payload = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            raise RecollectError(f"{handler}: {payload.get('errorType')}: {payload.get('errorMessage')}")
        return payload

    return invoke


def local_invoker(local: LocalApp) -> Invoke:
    """Local mode: the template's handlers in-process (inside `emulator.session.local_aws`), as the state machine
    runs them."""

    def invoke(handler: str, event: dict[str, Any]) -> Any:
        try:
            return local.invoke(local.function_by_handler(handler), event)
        except Exception as error:  # reported like a deployed function's error
            raise RecollectError(f"{handler}: {type(error).__name__}: {error}") from error

    return invoke


def read_manifest(s3: BaseClient, uri: str) -> Manifest:
    bucket, prefix = run_folder(uri)
    try:
        body = s3.get_object(Bucket=bucket, Key=prefix + MANIFEST)["Body"].read()
    except Exception as error:
        code = getattr(error, "response", {}).get("Error", {}).get("Code")
        if code in ("NoSuchKey", "404"):
            raise ConfigError(f"{uri}: no manifest.json in this run folder") from None
        raise
    manifest: Manifest = json.loads(body)
    return manifest


# ---------------------------------------------------------------- the command

DEFAULT_STACK = "LlmBatchPipeline"


def register(subparsers: Subcommands) -> None:
    parser = subparsers.add_parser(
        "recollect",
        help="re-run collect (and its scoring), the manifest and the notification of a run from its raw outputs",
        description="Read RUN_PREFIX/manifest.json (a failed run's manifest lists every job and where its output "
        "is), then invoke the deployed CollectOutputs, WriteManifest and Notify functions of the stack "
        "on the raw outputs already in S3: no job is submitted and no record is sent to a model again. Uses your "
        "AWS credentials. In local mode the same steps run in-process (`local_invoker`). Exit "
        "status: 0 the run is now SUCCEEDED or PARTIAL, 1 it is still FAILED or a step failed, 2 usage error.",
    )
    parser.add_argument("run_prefix", metavar="RUN_PREFIX", help="the run folder, s3://BUCKET/runs/PIPELINE/RUN_ID/")
    parser.add_argument(
        "--stack",
        default=DEFAULT_STACK,
        metavar="NAME",
        help=f"the deployed stack whose functions to invoke (default: {DEFAULT_STACK})",
    )
    parser.add_argument("--json", action="store_true", help="print the new manifest.json as JSON")
    parser.set_defaults(run=run_command)


def run_command(args: argparse.Namespace) -> int:
    import boto3  # deferred: the CLI imports every command at start-up, and only this command needs it here

    session = boto3.session.Session()
    manifest = read_manifest(session.client("s3"), args.run_prefix)
    try:
        result = recollect(manifest, aws_invoker(args.stack, session))
    except RecollectError as error:
        print(f"batch-pipeline recollect: {error}", flush=True)
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['run_id']}: {result['status']} (was {manifest['status']}); counts "
            + ", ".join(f"{k} {v}" for k, v in result["counts"].items())
            + f"; manifest: {result['outputs']['manifest']}"
        )
    return 0 if result["status"] in ("SUCCEEDED", "PARTIAL") else 1
