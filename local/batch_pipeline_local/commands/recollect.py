"""`batch-pipeline recollect RUN_PREFIX`: finish a failed run from the raw outputs it already paid for."""

from __future__ import annotations

import json

from batch_pipeline_local.recollect import RecollectError, aws_invoker, read_manifest, recollect

DEFAULT_STACK = "LlmBatchPipeline"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "recollect",
        help="re-run collect (and its scoring), the manifest and the notification of a run from its raw outputs",
        description="Read RUN_PREFIX/manifest.json (a failed run's manifest lists every job and where its output "
        "is), then invoke the deployed CollectOutputs, WriteManifest and Notify functions of the stack "
        "on the raw outputs already in S3: no job is submitted and no record is sent to a model again. Uses your "
        "AWS credentials. In local mode the same steps run in-process (batch_pipeline_local.recollect). Exit "
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


def run_command(args) -> int:
    import boto3

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
