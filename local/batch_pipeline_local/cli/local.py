"""`batch-pipeline local run FILE --pipeline NAME`: one whole run on emulated AWS, no account needed."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batch_pipeline.config.app import ConfigError
from batch_pipeline.storage.layout import REJECTION_PAGE_SUFFIX, REJECTION_REPORT_SUFFIX
from batch_pipeline_local.cli.options import Subcommands, add_config_option
from batch_pipeline_local.cli.output import emit_json
from batch_pipeline_local.emulator.faults import Fault, FaultSpecError
from batch_pipeline_local.engines.stand_in import ENGINE_LABEL
from batch_pipeline_local.project import Project, load_pipeline
from batch_pipeline_local.template import template_from_assembly

if TYPE_CHECKING:  # for annotations only: the emulator (boto3, moto) loads when a run starts
    from batch_pipeline_local.authorization.enforce import AuthorizationReport
    from batch_pipeline_local.emulator.run import RunResult


def register(subparsers: Subcommands) -> None:
    parser = subparsers.add_parser(
        "local",
        help="run pipelines end to end on emulated AWS (local mode)",
        description="Local mode, no AWS account needed: synthesize the app, deploy its template into moto (S3, "
        "SageMaker, IAM, SNS, Lambda, Step Functions), and run files through the template's exact state machine, "
        "with our handlers in-process. Local engines stand in for SageMaker Batch Transform and Bedrock batch "
        f"inference: outputs come from a {ENGINE_LABEL}. `batch-pipeline demo` runs every sample file.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    run = actions.add_parser(
        "run",
        help="upload FILE under <pipeline>/ and run it to its manifest",
        description="Upload FILE to the emulated input bucket under <pipeline>/, deliver the S3 event to intake, "
        "wait for the execution, and print the run's manifest.json (--json) or a summary. Exit status: 0 the run "
        "SUCCEEDED or was PARTIAL, 1 it FAILED or the file was rejected, 2 usage or configuration error.",
    )
    run.add_argument("file", type=Path, metavar="FILE", help="a JSONL file in the pipeline's input format")
    run.add_argument("--pipeline", required=True, metavar="NAME", help="pipeline name from cdk.json")
    add_config_option(run)
    run.add_argument("--json", action="store_true", help="print manifest.json (or the rejection report) as JSON")
    run.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="copy the finished run folder (or, for a rejected file, its copy and reports) from emulated "
        "S3 to DIR/<run-id>/, to open report.html and run `batch-pipeline evaluate` on the real files",
    )
    run.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="seconds to wait for the execution (default: 120)",
    )
    run.add_argument(
        "--app",
        type=Path,
        metavar="DIR",
        help="run against this cloud assembly (e.g. cdk.out from `npx cdk synth`) instead of "
        "synthesizing the app in-process",
    )
    run.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="STATE:ERROR:TIMES",
        help="rehearse a fault (repeatable): the first TIMES invocations of Task state STATE fail with "
        "ERROR as the Lambda service reports it to Step Functions, e.g. "
        "'Wait for job to end:Lambda.TooManyRequestsException:2'; the template's Retry/Catch decide",
    )
    run.set_defaults(run=run_command)


def run_command(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise ConfigError(f"{args.file}: no such file")
    project = Project.find(getattr(args, "config", None))
    load_pipeline(args.pipeline, project.cdk_json)  # a clear error for an unknown pipeline before the emulator starts
    faults = parse_faults(args.fault)
    template = template_from_assembly(args.app) if getattr(args, "app", None) else None
    # Deferred: the emulator loads boto3 and moto, which the CLI's other commands do without.
    from batch_pipeline_local.emulator.export import export_run
    from batch_pipeline_local.emulator.run import run_file
    from batch_pipeline_local.emulator.session import local_aws

    with local_aws(template=template, faults=faults, project=project) as local:
        result = run_file(local, args.file, args.pipeline, timeout=args.timeout)
        report = export_run(result, args.out) if getattr(args, "out", None) else None
        assert local.fault_plan is not None and local.authorizer is not None  # local_aws sets both
        injected = list(local.fault_plan.injected)
        authorization = local.authorizer.report()
    if args.json:
        emit_json(
            {
                **(result.manifest or result.rejection or {"status": result.status}),
                "authorization": authorization,
                **({"local_report": str(report)} if report else {}),
            },
            indent=2,
        )
    else:
        print(describe(result))
        for state, error in injected:
            print(f"  rehearsed fault: {state}: {error}")
        print(describe_authorization(authorization))
        if report is not None:
            print(f"  copied to {report.parent}/\n  open {report}")
    denied = authorization["denied"] > 0
    return 0 if result.status in ("SUCCEEDED", "PARTIAL") and not denied else 1


def describe_authorization(report: AuthorizationReport) -> str:
    """The authorization tally of a run: every call checked, and each denial with its principal and reason."""
    lines = [f"authorization: {report['checked']} calls checked, {report['denied']} denied"]
    lines += [f"  denied: {d['message']}" for d in report["denials"][:20]]
    if report["denied"] > 20:
        lines.append(f"  ... and {report['denied'] - 20} more (--json lists all)")
    return "\n".join(lines)


def parse_faults(texts: list[str]) -> list[str]:
    """--fault values, checked for shape before the emulator starts (state names are checked against the template)."""
    try:
        for text in texts:
            Fault.parse(text)
    except FaultSpecError as error:
        raise ConfigError(str(error)) from None
    return texts


def describe_rejection(key: str, report: dict[str, Any]) -> str:
    counts = report.get("counts") or {}
    lines = [f"{key}: REJECTED ({counts.get('rejected')} of {counts.get('total')} records rejected)"]
    for error in report.get("errors", [])[:10]:
        lines.append(f"  line {error['line']}: {error.get('field') or '-'}: {error['reason']}")
    lines.append(f"  report: {report.get('report_uri')}")
    report_uri = str(report.get("report_uri", ""))
    if report_uri.endswith(REJECTION_REPORT_SUFFIX):
        lines.append(f"  report page: {report_uri.removesuffix(REJECTION_REPORT_SUFFIX)}{REJECTION_PAGE_SUFFIX}")
    return "\n".join(lines)


def describe(result: RunResult) -> str:
    if result.rejection is not None:
        return describe_rejection(result.key, result.rejection)
    if result.manifest is None:
        return f"{result.key}: no run started and no rejection report found (see the intake log above)"
    m = result.manifest
    counts = m["counts"]
    lines = [
        f"{result.key}: {m['status']} in {result.seconds:.1f} s  [{ENGINE_LABEL}]",
        "  records: " + ", ".join(f"{k} {v if v is not None else '-'}" for k, v in counts.items()),
    ]
    if m.get("cause"):
        lines.append(f"  failure: {m.get('failed_state') or 'jobs'}: {m.get('error')}: {m['cause']}")
    headline = m.get("evaluation") or {}
    if headline.get("rouge_f"):
        lines.append(
            "  ROUGE F1: " + ", ".join(f"{k} {v:.4f}" for k, v in headline["rouge_f"].items() if v is not None)
        )
    for key in ("accuracy", "macro_f1"):
        if headline.get(key) is not None:
            lines.append(f"  {key}: {headline[key]:.4f}")
    jobs = [
        j["name"]
        + (" (on-demand)" if j.get("route") == "on-demand" else "")
        + (f" (retried {j['retry']['records']}, recovered {j['retry']['recovered']})" if j.get("retry") else "")
        for j in m.get("jobs", [])
    ]
    lines.append(f"  jobs: {', '.join(jobs)}")
    if m.get("model_invocations"):
        lines.append(f"  model invocations (billed requests): {m['model_invocations']['total']}")
    if (m.get("recover") or {}).get("command"):
        lines.append(f"  recover without paying again: {m['recover']['command']}")
    if m.get("tokens"):
        lines.append(f"  tokens: {m['tokens'].get('input_tokens')} in, {m['tokens'].get('output_tokens')} out")
    if m.get("backend_counts"):
        lines.append("  backend counts: " + ", ".join(f"{k} {v}" for k, v in m["backend_counts"].items()))
    lines.append(f"  manifest: {m['outputs']['manifest']}")
    if m["outputs"].get("report"):
        lines.append(f"  report: {m['outputs']['report']}")
    return "\n".join(lines)
