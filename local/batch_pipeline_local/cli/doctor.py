"""`batch-pipeline doctor`: does the configured Bedrock catalog work in this account and Region today?

For each Bedrock model that a pipeline uses, in the deployment Region:
  - lifecycle: GetFoundationModel -> modelDetails.modelLifecycle.status (ACTIVE passes, LEGACY warns with the
    model's end-of-life coming, anything else fails);
  - access: GetFoundationModelAvailability -> authorizationStatus AUTHORIZED, and the entitlement, agreement and
    Region availability AVAILABLE (what the console's "Model access" grants);
  - batch quotas: Service Quotas (service code `bedrock`) "<quota> for <model name>" for the five per-model batch
    quotas and the submitted-plus-in-progress job count, compared with `pipelines.<name>.bedrock`: a configured
    maximum above the account's, or a minimum below it, fails.

The clients are parameters so the tests hand in botocore Stubber clients; the command creates real ones.
Exit status: 0 every check passed (warnings allowed), 1 a check failed, 2 usage or configuration error, 3 skipped
because no AWS credentials were found.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from batch_pipeline.config.app import AppConfig, BedrockModel, BedrockSettings
from batch_pipeline_local.cli.options import Subcommands, add_config_option
from batch_pipeline_local.project import load_config

if TYPE_CHECKING:  # boto3 is imported only where an account is checked (the CLI imports every command at start-up)
    from botocore.client import BaseClient

PASS, WARN, FAIL = "ok", "warn", "FAIL"

# Service Quotas names ("<name> for <model name>") -> (setting, how the setting must relate, unit factor).
# "min": the setting must be at least the account's value; "max": at most. Sizes are quoted in GB.
BATCH_QUOTAS: tuple[tuple[str, str, str, float], ...] = (
    ("Minimum number of records per batch inference job", "min_records_per_job", "min", 1),
    ("Records per batch inference job", "max_records_per_job", "max", 1),
    ("Records per input file per batch inference job", "max_records_per_input_file", "max", 1),
    ("Batch inference input file size (in GB)", "max_input_file_size_mb", "max", 1024),
    ("Batch inference job size (in GB)", "max_job_size_mb", "max", 1024),
)
CONCURRENT_JOBS = "Sum of in-progress and submitted batch inference jobs using a base model"


@dataclass(frozen=True)
class Check:
    model: str
    check: str
    status: str
    detail: str


def bedrock_models(config: AppConfig) -> dict[str, tuple[BedrockModel, list[tuple[str, BedrockSettings]]]]:
    """Catalog key -> (model, [(pipeline, its bedrock settings)]) for the models Bedrock pipelines use."""
    used: dict[str, tuple[BedrockModel, list[tuple[str, BedrockSettings]]]] = {}
    for name, pipeline in sorted(config.pipelines.items()):
        model = config.models[pipeline.model]
        if isinstance(model, BedrockModel) and pipeline.bedrock is not None:
            used.setdefault(pipeline.model, (model, []))[1].append((name, pipeline.bedrock))
    return used


def _code(error: Exception) -> str:
    code: str = getattr(error, "response", {}).get("Error", {}).get("Code", type(error).__name__)
    return code


def lifecycle_check(key: str, model: BedrockModel, bedrock: BaseClient) -> tuple[Check, str | None]:
    """The lifecycle check, and the model's display name (Service Quotas names quotas by it)."""
    try:
        details = bedrock.get_foundation_model(modelIdentifier=model.base_model_id)["modelDetails"]
    except Exception as error:  # botocore ClientError, matched on its code
        return Check(key, "lifecycle", FAIL, f"GetFoundationModel {model.base_model_id}: {_code(error)}"), None
    status = (details.get("modelLifecycle") or {}).get("status", "unknown")
    verdict = {"ACTIVE": PASS, "LEGACY": WARN}.get(status, FAIL)
    note = {"LEGACY": " (end of life is scheduled: move to a current model)"}.get(status, "")
    return Check(
        key, "lifecycle", verdict, f"{details.get('modelId', model.base_model_id)} is {status}{note}"
    ), details.get("modelName")


def access_check(key: str, model: BedrockModel, bedrock: BaseClient) -> Check:
    try:
        answer = bedrock.get_foundation_model_availability(modelId=model.base_model_id)
    except Exception as error:
        return Check(key, "access", FAIL, f"GetFoundationModelAvailability {model.base_model_id}: {_code(error)}")
    problems = []
    if answer.get("authorizationStatus") != "AUTHORIZED":
        problems.append(f"authorization {answer.get('authorizationStatus')}")
    for field in ("entitlementAvailability", "regionAvailability"):
        if answer.get(field) != "AVAILABLE":
            problems.append(f"{field} {answer.get(field)}")
    agreement = (answer.get("agreementAvailability") or {}).get("status")
    if agreement not in ("AVAILABLE", None):
        problems.append(f"agreement {agreement}")
    if problems:
        return Check(
            key,
            "access",
            FAIL,
            "model access not granted: "
            + ", ".join(problems)
            + " (enable it under Model access in the Bedrock console)",
        )
    return Check(key, "access", PASS, "authorized and available in this Region")


def account_quotas(service_quotas: BaseClient) -> dict[str, float]:
    """Every Amazon Bedrock quota of the account in this Region: name -> value."""
    values: dict[str, float] = {}
    for page in service_quotas.get_paginator("list_service_quotas").paginate(ServiceCode="bedrock"):
        for quota in page.get("Quotas", []):
            values[quota["QuotaName"]] = float(quota["Value"])
    return values


def quota_checks(
    key: str,
    model_name: str | None,
    pipelines: list[tuple[str, BedrockSettings]],
    quotas: dict[str, float],
    max_concurrent_jobs_per_run: int,
) -> Iterable[Check]:
    if model_name is None:
        yield Check(key, "batch quotas", FAIL, "unknown model name (GetFoundationModel failed), quotas not compared")
        return
    for quota_name, setting, relation, factor in BATCH_QUOTAS:
        full = f"{quota_name} for {model_name}"
        if full not in quotas:
            yield Check(key, setting, WARN, f"no quota {full!r} in Service Quotas (no batch support here?)")
            continue
        account = quotas[full] * factor
        for pipeline, settings in pipelines:
            configured = getattr(settings, setting)
            bad = configured < account if relation == "min" else configured > account
            word = "at least" if relation == "min" else "at most"
            yield Check(
                key,
                setting,
                FAIL if bad else PASS,
                f"{pipeline}: configured {configured:g}, the account allows {word} {account:g} ({full})",
            )
    concurrent = quotas.get(f"{CONCURRENT_JOBS} for {model_name}")
    if concurrent is not None:
        # Submissions above the quota queue (ServiceQuotaExceededException is retried), so this only informs.
        status = WARN if max_concurrent_jobs_per_run > concurrent else PASS
        yield Check(
            key,
            "concurrent jobs",
            status,
            f"max_concurrent_jobs_per_run {max_concurrent_jobs_per_run}, the account allows {concurrent:g} "
            "submitted plus in progress for this model (more queue)",
        )


def run_checks(config: AppConfig, bedrock: BaseClient, service_quotas: BaseClient) -> list[Check]:
    checks: list[Check] = []
    used = bedrock_models(config)
    quotas = account_quotas(service_quotas) if used else {}
    for key, (model, pipelines) in used.items():
        lifecycle, name = lifecycle_check(key, model, bedrock)
        checks.append(lifecycle)
        checks.append(access_check(key, model, bedrock))
        checks.extend(quota_checks(key, name, pipelines, quotas, config.max_concurrent_jobs_per_run))
    return checks


def table(checks: list[Check]) -> str:
    headers = ("model", "check", "status", "detail")
    rows = [headers] + [(c.model, c.check, c.status, c.detail) for c in checks]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}" for r in rows)


def failed(checks: list[Check]) -> bool:
    return any(c.status == FAIL for c in checks)


# ---------------------------------------------------------------- the command

EXIT_OK, EXIT_FAILED, EXIT_SKIPPED = 0, 1, 3


def register(subparsers: Subcommands) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check each configured Bedrock model's lifecycle, model access and batch quotas in your account",
        description="With your AWS credentials, for each Bedrock model a pipeline uses, in the deployment Region: "
        "GetFoundationModel's lifecycle status, GetFoundationModelAvailability's model access, and the five per-model "
        "batch quotas and the concurrent-job quota from Service Quotas compared with the configuration. Prints a "
        "table. Exit status: 0 every check passed (warnings allowed), 1 a check failed, 2 usage or configuration "
        "error, 3 skipped because no AWS credentials were found.",
    )
    add_config_option(parser)
    parser.add_argument("--region", default=None, help="the deployment Region (default: your AWS configuration's)")
    parser.add_argument("--json", action="store_true", help="print [{model, check, status, detail}] as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, clients: tuple[BaseClient, BaseClient] | None = None) -> int:
    config = load_config(args.config)
    if clients is None:
        import boto3  # deferred: the CLI imports every command at start-up, and only this path needs it

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
