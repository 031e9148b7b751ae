"""`batch-pipeline validate FILE --pipeline NAME [--json]`: the intake Lambda's validation, offline."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from typing import Any, BinaryIO

from batch_pipeline.config.app import ConfigError
from batch_pipeline.intake.stream import IntakeResult, run_intake
from batch_pipeline_local.cli.options import Subcommands, add_config_option
from batch_pipeline_local.cli.output import emit_json
from batch_pipeline_local.project import load_pipeline

CHUNK = 1024 * 1024
EXIT_ACCEPTED, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2


def register(subparsers: Subcommands) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check a JSONL file the way intake will, without uploading it",
        description="Validate FILE line by line against the pipeline's input format, exactly as the intake Lambda "
        "does: UTF-8, one JSON object per line, required fields and types, generation parameters, blank text, "
        "unique ids, record size and count limits. Exit status: 0 accepted, 1 rejected, 2 usage or configuration "
        "error.",
    )
    add_common_arguments(parser)
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the report object the Lambda writes (<name>.report.json) instead of a summary",
    )
    parser.set_defaults(run=run)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the JSONL file to check ('-' reads standard input)")
    parser.add_argument(
        "--pipeline",
        required=True,
        metavar="NAME",
        help="the pipeline (first key segment of the upload) whose format and limits apply",
    )
    add_config_option(parser)


def open_input(path: str) -> tuple[BinaryIO, int | None]:
    if path == "-":
        return sys.stdin.buffer, None
    try:
        handle = open(path, "rb")  # noqa: SIM115 - returned to the caller, which closes it
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from None
    return handle, os.fstat(handle.fileno()).st_size


def read_chunks(handle: BinaryIO, size: int | None) -> Iterator[bytes]:
    """The file in 1 MiB chunks, with a progress bar on stderr when stderr is a terminal."""
    progress = None
    if sys.stderr.isatty():
        from tqdm import tqdm  # deferred: only an interactive run shows a progress bar

        progress = tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr, leave=False)
    try:
        while chunk := handle.read(CHUNK):
            if progress is not None:
                progress.update(len(chunk))
            yield chunk
    finally:
        if progress is not None:
            progress.close()


def validate_file(args: argparse.Namespace) -> IntakeResult:
    pipeline = load_pipeline(args.pipeline, args.config)
    handle, size = open_input(args.file)
    with handle:
        input_object = {"file": args.file, "size": size}
        return run_intake(read_chunks(handle, size), pipeline, input_object=input_object)


def run(args: argparse.Namespace) -> int:
    result = validate_file(args)
    if args.json:
        emit_json(result.report, indent=2, ensure_ascii=False)
    else:
        print(summary(result.report))
    return EXIT_ACCEPTED if result.accepted else EXIT_REJECTED


def summary(report: dict[str, Any]) -> str:
    verdict = "ACCEPTED" if report["accepted"] else "REJECTED"
    counts = report["counts"]
    lines = [
        f"{verdict}: {counts['valid']} valid of {counts['total']} records "
        f"(pipeline {report['pipeline']}, format {report['input_format']}, on_invalid={report['policy']})",
    ]
    if counts["rejected"]:
        lines.append(
            f"rejected: {counts['rejected']}" + (f" (skipped: {counts['skipped']})" if counts["skipped"] else "")
        )
    if report["reason"]:
        lines.append(f"reason: {report['reason']}")
    for error in report["errors"]:
        where = f"line {error['line']}" if error["line"] is not None else "file"
        field = f" [{error['field']}]" if error["field"] else ""
        lines.append(f"  {where}{field}: {error['reason']}")
    if report["errors_truncated"]:
        lines.append(
            f"  ... first {report['errors_reported']} errors shown; counts by reason: "
            + ", ".join(f"{code} {count}" for code, count in report["counts_by_reason"].items())
        )
    if report["ids_assigned"]:
        lines.append(f"ids assigned from line numbers: {report['ids_assigned_count']}")
    for warning in report["warnings"]:
        lines.append(f"warning: {warning}")
    return "\n".join(lines)
