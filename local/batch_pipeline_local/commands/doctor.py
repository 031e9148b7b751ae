"""`batch-pipeline doctor [--config CDK_JSON] [--region REGION] [--json]`: check the Bedrock catalog in your account."""

from __future__ import annotations

import argparse
import json
import sys

from batch_pipeline_local.doctor import failed, run_checks, table
from batch_pipeline_local.settings import load_config

EXIT_OK, EXIT_FAILED, EXIT_SKIPPED = 0, 1, 3


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check each configured Bedrock model's lifecycle, model access and batch quotas in your account",
        description="With your AWS credentials, for each Bedrock model a pipeline uses, in the deployment Region: "
        "GetFoundationModel's lifecycle status, GetFoundationModelAvailability's model access, and the five per-model "
        "batch quotas and the concurrent-job quota from Service Quotas compared with the configuration. Prints a "
        "table. Exit status: 0 every check passed (warnings allowed), 1 a check failed, 2 usage or configuration "
        "error, 3 skipped because no AWS credentials were found.",
    )
    parser.add_argument(
        "--config",
        metavar="CDK_JSON",
        default=None,
        help="read the configuration from this cdk.json (default: the repository's)",
    )
    parser.add_argument("--region", default=None, help="the deployment Region (default: your AWS configuration's)")
    parser.add_argument("--json", action="store_true", help="print [{model, check, status, detail}] as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, clients: tuple | None = None) -> int:
    config = load_config(args.config)
    if clients is None:
        import boto3

        session = boto3.Session(region_name=args.region)
        if session.get_credentials() is None:
            print(
                "batch-pipeline doctor: skipped, no AWS credentials found (configure a profile or environment "
                "credentials to check the account)",
                file=sys.stderr,
            )
            return EXIT_SKIPPED
        clients = (session.client("bedrock"), session.client("service-quotas"))
    checks = run_checks(config, *clients)
    if args.json:
        print(json.dumps([check.__dict__ for check in checks], indent=2))
    else:
        print(table(checks))
    return EXIT_FAILED if failed(checks) else EXIT_OK
