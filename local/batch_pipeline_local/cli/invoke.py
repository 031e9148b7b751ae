"""`batch-pipeline invoke`: send a JSONL file through a real-time text2text endpoint, many inputs per request."""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from batch_pipeline.storage.jsonl import split_lines
from batch_pipeline_local import realtime
from batch_pipeline_local.cli.options import Subcommands

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# Fields that describe a record rather than ask the model for something; never sent to the endpoint.
RECORD_FIELDS = ("id", "text_inputs", "prompt", "reference", "label", "highlights")
MAX_ERRORS_SHOWN = 20

DESCRIPTION = """\
Generate for every line of a JSONL file through a deployed real-time SageMaker endpoint serving a
JumpStart text2text model (for example FLAN-T5), using real-time batch inference: each request
carries a list of text_inputs plus generation parameters, and the answer holds one generation per
input.

Input lines: {"id": ..., "text_inputs": "..."} (the jumpstart-text2text format) or
{"id": ..., "prompt": "..."}; id is optional (missing ids become "line-<n>"). Other fields on a line
(max_length, top_k, do_sample, ...) are generation parameters for that line and override --param;
reference, label and highlights are ignored. Lines with the same parameters share requests.

Requests are cut to fit the payload limit and --max-texts-per-request, and at most
--max-concurrency of them are in flight.

Output: one JSON line per input, in input order:
  {"id": "a-1", "index": 0, "generated_text": "..."}
or, with num_return_sequences > 1, "generated_texts": [...] instead of "generated_text".

Exit status: 0 all inputs answered, 1 a bad input line or a failed request (nothing is written),
2 bad usage."""


def parse_params(pairs: list[str] | None) -> dict[str, Any]:
    """--param k=v pairs; a value that reads as JSON (50, 0.9, true, null, [..]) is taken as such, else as text."""
    params: dict[str, Any] = {}
    for pair in pairs or []:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise argparse.ArgumentTypeError(f"--param {pair!r}: expected KEY=VALUE")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


def register(subparsers: Subcommands) -> None:
    parser = subparsers.add_parser(
        "invoke",
        help="generate for a JSONL file through a real-time text2text endpoint",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--endpoint", required=True, metavar="NAME", help="SageMaker endpoint name")
    parser.add_argument("--file", required=True, metavar="INPUT.jsonl", help="input JSON lines ('-' for stdin)")
    parser.add_argument("--output", metavar="FILE", help="where to write the output lines (default: stdout)")
    parser.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="generation parameter for every request, e.g. max_length=50 or do_sample=true (repeatable)",
    )
    parser.add_argument("--region", help="AWS region of the endpoint (default: the AWS configuration's)")
    parser.add_argument(
        "--max-concurrency",
        type=int,
        default=realtime.DEFAULT_MAX_CONCURRENCY,
        metavar="N",
        help=f"requests in flight at once (default: {realtime.DEFAULT_MAX_CONCURRENCY})",
    )
    parser.add_argument(
        "--max-texts-per-request",
        type=int,
        default=realtime.DEFAULT_MAX_TEXTS_PER_REQUEST,
        metavar="N",
        help=f"inputs per request at most (default: {realtime.DEFAULT_MAX_TEXTS_PER_REQUEST}); keep a request "
        "inside the endpoint's 60-second limit",
    )
    parser.add_argument(
        "--max-payload-bytes",
        type=int,
        default=realtime.DEFAULT_MAX_PAYLOAD_BYTES,
        metavar="N",
        help=f"request body size at most (default: {realtime.DEFAULT_MAX_PAYLOAD_BYTES}; SageMaker's limit is "
        f"{realtime.SAGEMAKER_PAYLOAD_LIMIT_BYTES})",
    )
    parser.set_defaults(run=run)


def read_records(lines: list[bytes], defaults: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """Records {id, text, params} from input lines, and a message per bad line (1-based line numbers)."""
    records, errors = [], []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError as error:
            errors.append(f"line {number}: not JSON ({error})")
            continue
        if not isinstance(line, dict):
            errors.append(f"line {number}: not a JSON object")
            continue
        field = "text_inputs" if "text_inputs" in line else "prompt"
        text = line.get(field)
        if not isinstance(text, str) or not text:
            errors.append(f"line {number}: needs a non-empty string 'text_inputs' or 'prompt'")
            continue
        record_id = line.get("id", f"line-{number}")
        if isinstance(record_id, bool) or not isinstance(record_id, (str, int)):
            errors.append(f"line {number}: id must be a string or an integer")
            continue
        params = {**defaults, **{key: value for key, value in line.items() if key not in RECORD_FIELDS}}
        records.append({"id": record_id, "text": text, "params": params})
    return records, errors


def generate(endpoint: str, records: list[dict[str, Any]], client: Any, **limits: Any) -> list[Any]:
    """One output per record, in record order; records sharing parameters share requests."""
    groups: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        groups.setdefault(json.dumps(record["params"], sort_keys=True), []).append(index)
    outputs: list[Any] = [None] * len(records)
    for indexes in groups.values():
        params = records[indexes[0]]["params"]
        texts = [records[i]["text"] for i in indexes]
        for index, output in zip(
            indexes, realtime.invoke_batch(endpoint, texts, client=client, **limits, **params), strict=True
        ):
            outputs[index] = output
    return outputs


def run(args: argparse.Namespace) -> int:
    try:
        defaults = parse_params(args.param)
    except argparse.ArgumentTypeError as error:
        print(f"batch-pipeline invoke: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.max_concurrency < 1 or args.max_texts_per_request < 1:
        print(
            "batch-pipeline invoke: --max-concurrency and --max-texts-per-request must be at least 1", file=sys.stderr
        )
        return EXIT_USAGE
    if not 0 < args.max_payload_bytes <= realtime.SAGEMAKER_PAYLOAD_LIMIT_BYTES:
        print(
            f"batch-pipeline invoke: --max-payload-bytes must be 1..{realtime.SAGEMAKER_PAYLOAD_LIMIT_BYTES}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        lines = sys.stdin.buffer.readlines() if args.file == "-" else split_lines(Path(args.file).read_bytes())
    except OSError as error:
        print(f"batch-pipeline invoke: cannot read {args.file}: {error}", file=sys.stderr)
        return EXIT_USAGE

    records, errors = read_records(lines, defaults)
    if errors:
        shown = errors[:MAX_ERRORS_SHOWN]
        more = f"\n  ... and {len(errors) - len(shown)} more" if len(errors) > len(shown) else ""
        print(
            f"batch-pipeline invoke: {len(errors)} bad input line(s), nothing sent:\n  " + "\n  ".join(shown) + more,
            file=sys.stderr,
        )
        return EXIT_FAILED

    # Deferred: botocore loads only when a request is sent (the CLI imports every command at start-up).
    from botocore.exceptions import BotoCoreError, ClientError

    client = realtime.runtime_client(args.region, args.max_concurrency)
    try:
        outputs = generate(
            args.endpoint,
            records,
            client,
            max_concurrency=args.max_concurrency,
            max_texts_per_request=args.max_texts_per_request,
            max_payload_bytes=args.max_payload_bytes,
        )
    except (ClientError, BotoCoreError, realtime.RealtimeError, ValueError) as error:
        notes = "".join(f" ({note})" for note in getattr(error, "__notes__", []))
        print(f"batch-pipeline invoke: {error}{notes}", file=sys.stderr)
        return EXIT_FAILED

    with open(args.output, "w", encoding="utf-8") if args.output else nullcontext(sys.stdout) as out:
        for index, (record, output) in enumerate(zip(records, outputs, strict=True)):
            key = "generated_texts" if isinstance(output, list) else "generated_text"
            out.write(json.dumps({"id": record["id"], "index": index, key: output}, ensure_ascii=False) + "\n")
    if args.output:
        print(f"batch-pipeline invoke: {len(outputs)} outputs written to {args.output}", file=sys.stderr)
    return EXIT_OK
