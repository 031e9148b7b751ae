"""`batch-pipeline`: the offline face of the code the Lambdas run.

Exit codes everywhere: 0 success or accepted, 1 the work ran and failed or the file was rejected,
2 a usage or configuration error.
"""

from __future__ import annotations

import argparse
import sys

from batch_pipeline.config.app import ConfigError
from batch_pipeline_local.cli import demo, doctor, evaluate, invoke, local, plan, recollect, stream, summary, validate
from batch_pipeline_local.cli.output import logs_to_stderr, results_only_on_stdout

# Every command, in the order `--help` lists them.
COMMANDS = (demo, doctor, evaluate, invoke, local, plan, recollect, stream, summary, validate)
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batch-pipeline",
        description="Validate, plan, run locally and evaluate LLM batch-inference pipelines; "
        "call real-time SageMaker endpoints.",
        epilog="validate, plan, local, demo, summary and evaluate work offline, without an AWS account; invoke and "
        "stream call deployed endpoints with your AWS credentials. Exit status: 0 success or accepted, 1 the work "
        "ran and failed or the file was rejected, 2 usage or configuration error. "
        "`batch-pipeline COMMAND --help` describes each command.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs_to_stderr()
    try:
        with results_only_on_stdout(bool(getattr(args, "json", False))):
            return int(args.run(args) or 0)
    except ConfigError as error:
        print(f"batch-pipeline: {error}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return 0
