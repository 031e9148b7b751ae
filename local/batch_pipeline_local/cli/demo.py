"""`batch-pipeline demo`: every sample in examples/ through local mode, one table row per run."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from batch_pipeline_local.cli.options import Subcommands, add_config_option
from batch_pipeline_local.engines.stand_in import ENGINE_LABEL
from batch_pipeline_local.project import Project, load_config

if TYPE_CHECKING:  # for annotations only: the emulator (boto3, moto) loads when the demo runs
    from batch_pipeline_local.emulator.run import RunResult

# (file, pipeline, the status the run must end with): the default pipelines on their sample files,
# and one file with bad lines to show a rejection.
DEMO_RUNS = [
    ("summarize.jsonl", "summarize", "SUCCEEDED"),
    ("classify.jsonl", "classify", "SUCCEEDED"),
    ("bedrock-summarize.jsonl", "bedrock-summarize", "SUCCEEDED"),
    ("summarize-with-bad-lines.jsonl", "summarize", "REJECTED"),
]
EXIT_OK, EXIT_FAILED = 0, 1
# Where the runs are copied (relative to the current folder; gitignored): DEFAULT_OUT/<run-id>/report.html ...
DEFAULT_OUT = Path("demo-out")

_SAMPLES = "\n".join(
    f"  examples/{name:32s} pipeline {pipeline:18s} must end {expected}" for name, pipeline, expected in DEMO_RUNS
)
# The pipelines the samples run on: not every default pipeline has a sample (bedrock-converse has none).
_PIPELINES = ", ".join(dict.fromkeys(pipeline for _, pipeline, _ in DEMO_RUNS))
DESCRIPTION = f"""\
Deploy the synthesized app into emulated AWS (moto) once and run each sample file of examples/
through it, exactly as an upload to S3 would run: pipelines {_PIPELINES}
end to end (SageMaker Batch Transform and Bedrock batch inference), and one file with bad lines that
intake rejects. A default pipeline without a sample here is not run (try it with `local run`).

{_SAMPLES}

Prints one row per run (status, records, succeeded, failed, headline metric, seconds), where each
manifest or rejection report is, and the rejection report's first lines. Each run folder (or the
rejected file's copy and reports) is copied from emulated S3 to demo-out/<run-id>/ (--out), and the
path of each report.html is printed: open them in a browser. The folder is emptied first, if an
earlier demo made it. Models are played by a
{ENGINE_LABEL}: the metrics exercise the pipeline, not a model.
A sample whose pipeline is not in cdk.json is skipped with a note.

The app is synthesized in-process (no `cdk synth` needed); no AWS account, no Docker.

Exit status: 0 every run ended as listed above, 1 a run did not or a sample file is missing,
2 a configuration error."""


def register(subparsers: Subcommands) -> None:
    parser = subparsers.add_parser(
        "demo",
        help=f"run the {len(DEMO_RUNS)} sample files of examples/ in local mode (pipelines {_PIPELINES})",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_option(parser)
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per run (the table's columns, expected status, failure) instead of a table",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"copy each run folder to DIR/<run-id>/ (default: {DEFAULT_OUT}/, emptied first if an "
        "earlier demo made it)",
    )
    parser.set_defaults(run=run)


class DemoRow(TypedDict):
    """One run of the demo: a table row, and an element of `batch-pipeline demo --json`."""

    file: str
    pipeline: str
    status: str
    expected: str
    records: int | None
    succeeded: int | None
    failed: int | None
    metric: str
    tokens: dict[str, Any] | None  # the manifest's token counts
    seconds: float
    where: str | None  # the manifest's (or the rejection report's) S3 URI
    failure: str | None
    engine: str
    report: str | None  # the exported report.html


def _row(result: RunResult, expected: str, report_html: Path | None = None) -> DemoRow:
    manifest = result.manifest or {}
    counts = manifest.get("counts", {})
    headline = manifest.get("evaluation") or {}
    if headline.get("rouge_f"):
        metric = "rougeL F1 {:.3f}".format(headline["rouge_f"].get("rougeL") or 0)
    elif headline.get("accuracy") is not None:
        metric = "accuracy {:.3f}".format(headline["accuracy"])
    else:
        metric = "-"
    if result.rejection is not None:
        rejected = result.rejection.get("counts") or {}
        counts = {"total": rejected.get("total"), "succeeded": 0, "failed": rejected.get("rejected")}
        metric = f"{rejected.get('rejected')} bad lines"
    failure = None
    if manifest.get("cause"):
        failure = f"{manifest.get('failed_state') or 'jobs'}: {manifest.get('error')}: {manifest['cause']}"
    return {
        "file": result.key,
        "pipeline": result.pipeline,
        "status": result.status,
        "expected": expected,
        "records": counts.get("total"),
        "succeeded": counts.get("succeeded"),
        "failed": counts.get("failed"),
        "metric": metric,
        "tokens": manifest.get("tokens"),
        "seconds": round(result.seconds, 1),
        "where": (manifest.get("outputs") or {}).get("manifest") or (result.rejection or {}).get("report_uri"),
        "failure": failure,
        "engine": ENGINE_LABEL,
        "report": str(report_html) if report_html else None,
    }


def plan_runs(configured: set[str], examples: Path) -> tuple[list[tuple[Path, str, str]], list[str], list[str]]:
    """(runs, notes on skipped samples, problems).

    A sample without its pipeline is skipped, a missing file is a problem.
    """
    runs, skipped, problems = [], [], []
    for name, pipeline, expected in DEMO_RUNS:
        path = examples / name
        if pipeline not in configured:
            skipped.append(f"skipped examples/{name}: pipeline {pipeline!r} is not configured in cdk.json")
        elif not path.is_file():
            problems.append(f"examples/{name} is missing")
        else:
            runs.append((path, pipeline, expected))
    return runs, skipped, problems


def unexpected(rows: list[DemoRow]) -> list[str]:
    return [
        f"{row['file']} ended {row['status']}, expected {row['expected']}"
        for row in rows
        if row["status"] != row["expected"]
    ]


def format_table(rows: list[DemoRow]) -> list[str]:
    header = f"{'file':42s} {'status':10s} {'records':>7s} {'ok':>4s} {'failed':>6s}  {'metric':18s} {'secs':>5s}"
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row['file']:42s} {row['status']:10s} {row['records'] or 0:7d} {row['succeeded'] or 0:4d} "
            f"{row['failed'] or 0:6d}  {row['metric']:18s} {row['seconds']:5.1f}"
        )
    return lines


def print_locations(rows: list[DemoRow], results: list[RunResult], out: Path) -> None:
    """Where each manifest or rejection report is in emulated S3, the rejections' first lines, and each report.html."""
    for row in rows:
        tokens = row["tokens"] or {}
        extra = (
            f"  (tokens: {tokens.get('input_tokens') or 0:,} in, {tokens.get('output_tokens') or 0:,} out)"
            if tokens
            else ""
        )
        print(f"{row['file']}: {row['where']}{extra}")
        if row["failure"]:
            print(f"  failure: {row['failure']}")
    for result in results:
        if result.rejection:
            print(f"\nRejection report for {result.key}:")
            for error in result.rejection.get("errors", [])[:10]:
                print(f"  line {error['line']}: {error.get('field') or '-'}: {error['reason']}")
    print(f"\nReports (open in a browser; each run's files are beside its report, under {out}/):")
    for row in rows:
        print(f"  {row['report'] or '-'}")


def run(args: argparse.Namespace) -> int:
    # Deferred: the emulator loads boto3 and moto, which the CLI's other commands do without.
    from batch_pipeline_local.emulator.export import export_run, prepare_demo_folder
    from batch_pipeline_local.emulator.run import run_file
    from batch_pipeline_local.emulator.session import local_aws

    project = Project.find(getattr(args, "config", None))
    runs, skipped, problems = plan_runs(set(load_config(project.cdk_json).pipelines), project.examples)
    # The interpreter logs every failed state at ERROR; a failed run's cause is printed below instead.
    logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)
    started = time.monotonic()
    rows: list[DemoRow] = []
    results: list[RunResult] = []
    out = getattr(args, "out", None) or DEFAULT_OUT
    try:
        prepare_demo_folder(out)
    except FileExistsError as error:
        print(f"demo: {error}")
        return EXIT_FAILED
    with local_aws(project=project) as local:
        for path, pipeline, expected in runs:
            result = run_file(local, path, pipeline)
            results.append(result)
            report = export_run(result, out)
            rows.append(_row(result, expected, report))
    problems += unexpected(rows)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        for problem in problems:
            print(json.dumps({"problem": problem}))
        return EXIT_FAILED if problems else EXIT_OK

    print(f"\nLocal mode: emulated AWS (moto); every model is played by a {ENGINE_LABEL}.\n")
    print("\n".join(format_table(rows)))
    print()
    print_locations(rows, results, out)
    for note in skipped:
        print(f"\n{note}")
    print(
        f"\n{len(rows)} runs in {time.monotonic() - started:.1f} s. The metrics come from the {ENGINE_LABEL}:\n"
        "they show that the pipeline works, not how good a model is."
    )
    if problems:
        print("\ndemo FAILED:\n  " + "\n  ".join(problems))
        return EXIT_FAILED
    return EXIT_OK
