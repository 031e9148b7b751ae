"""`batch-pipeline plan FILE --pipeline NAME [--json]`: the shards or Bedrock jobs intake would write, and what the
run will cost (its estimate logic: plan_estimate.py)."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from batch_pipeline.config.app import ConfigError
from batch_pipeline.intake.stream import IntakeResult, LocalDirSink, run_intake
from batch_pipeline_local.cli.options import Subcommands
from batch_pipeline_local.cli.output import emit_json
from batch_pipeline_local.cli.plan_estimate import (
    DEFAULT_CHARS_PER_TOKEN,
    DEFAULT_COUNT_TOKENS_SAMPLE,
    DEFAULT_OUTPUT_RATIO,
    EstimateSettings,
    estimate,
)
from batch_pipeline_local.cli.validate import (
    EXIT_ACCEPTED,
    EXIT_REJECTED,
    add_common_arguments,
    open_input,
    read_chunks,
    summary,
)
from batch_pipeline_local.project import load_config, load_pipeline


def register(subparsers: Subcommands) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="show the shards or batch jobs intake would create for a file, and estimate the run's tokens and cost",
        description="Validate FILE as intake does, then print the shards (SageMaker: instance_count x "
        "shards_per_instance, the records sorted by length and dealt out so that every shard gets the same number of "
        "records and bytes, within one record) or Bedrock batch jobs (within the per-job record and size quotas, "
        "contiguous and split evenly; a file "
        "under the per-job minimum shows the on-demand InvokeModel route) that intake would write, with records and "
        "bytes each, and an estimate of the run's input and output tokens and its cost at the catalog's prices, "
        "with every assumption stated. Input tokens come from Bedrock CountTokens (on a sample of records, "
        "extrapolated) when AWS credentials are present and the model supports it, else from characters per token. "
        "Nothing is kept (intake's output goes to a temporary folder). Exit status: 0 accepted, 1 rejected, 2 usage "
        "or configuration error.",
    )
    add_common_arguments(parser)
    parser.add_argument(
        "--json",
        action="store_true",
        help="print {accepted, route, note, shards: [{key, name, records, bytes}], estimated_tokens: "
        "{input, output, method}, estimated_cost_usd, assumptions, report} as JSON",
    )
    estimate_options = parser.add_argument_group("estimate")
    estimate_options.add_argument(
        "--tokens",
        choices=("auto", "count-tokens", "heuristic"),
        default="auto",
        help="how to count input tokens: auto (CountTokens when possible, else the "
        "heuristic; the default), count-tokens (fail if it cannot be used), heuristic",
    )
    estimate_options.add_argument(
        "--chars-per-token",
        type=float,
        default=DEFAULT_CHARS_PER_TOKEN,
        metavar="N",
        help=f"the heuristic's characters per token (default {DEFAULT_CHARS_PER_TOKEN:g})",
    )
    estimate_options.add_argument(
        "--output-ratio",
        type=float,
        default=DEFAULT_OUTPUT_RATIO,
        metavar="R",
        help="expected output tokens as a fraction of each record's maximum (max_tokens or "
        f"max_length), 0..1 (default {DEFAULT_OUTPUT_RATIO:g}: an upper bound)",
    )
    estimate_options.add_argument(
        "--count-tokens-sample",
        type=int,
        default=DEFAULT_COUNT_TOKENS_SAMPLE,
        metavar="N",
        help=f"at most this many CountTokens calls, on evenly spaced records (default {DEFAULT_COUNT_TOKENS_SAMPLE})",
    )
    estimate_options.add_argument(
        "--records-per-second",
        type=float,
        default=None,
        metavar="N",
        help="SageMaker throughput per instance (default: the catalog's planning assumption for the instance type)",
    )
    parser.set_defaults(run=run)


class _ScratchSink(LocalDirSink):
    """Intake's run folder in a temporary directory, with keys reported relative to it (as the plan shows them)."""

    def location(self, key: str) -> str:
        return key


def settings_from(args: argparse.Namespace) -> EstimateSettings:
    try:
        return EstimateSettings(
            tokens=args.tokens,
            chars_per_token=args.chars_per_token,
            output_ratio=args.output_ratio,
            count_tokens_sample=args.count_tokens_sample,
            records_per_second=args.records_per_second,
        )
    except ValueError as error:
        raise ConfigError(str(error)) from None


def plan_with_estimate(args: argparse.Namespace) -> tuple[IntakeResult, dict[str, Any] | None]:
    settings = settings_from(args)
    config = load_config(args.config)
    pipeline = load_pipeline(args.pipeline, args.config)
    handle, size = open_input(args.file)
    with handle, tempfile.TemporaryDirectory(prefix="plan-") as scratch:
        result = run_intake(
            read_chunks(handle, size),
            pipeline,
            sink=_ScratchSink(scratch),
            workdir=scratch,
            input_object={"file": args.file, "size": size},
        )
        if not result.accepted or result.plan is None:
            return result, None
        return result, estimate(config, pipeline, result.plan.route, Path(scratch), result.shards, settings)


def run(args: argparse.Namespace) -> int:
    result, estimated = plan_with_estimate(args)
    plan = result.plan
    if args.json:
        emit_json(
            {
                "accepted": result.accepted,
                "route": plan.route if plan else None,
                "note": plan.note if plan else None,
                "shards": result.shards,
                **(estimated or {"estimated_tokens": None, "estimated_cost_usd": None, "assumptions": []}),
                "report": result.report,
            },
            indent=2,
            ensure_ascii=False,
        )
        return EXIT_ACCEPTED if result.accepted else EXIT_REJECTED
    if not result.accepted or plan is None or estimated is None:
        print(summary(result.report))
        return EXIT_REJECTED
    if plan.route == "on-demand":
        what = "on-demand (InvokeModel) batch"
    else:
        what = {"sagemaker-shards": "SageMaker shards", "bedrock-jobs": "Bedrock batch jobs"}[plan.kind]
    print(f"{len(plan.shards)} {what} for {result.report['counts']['valid']} records:")
    width = max(len(shard["key"]) for shard in result.shards)
    for shard in result.shards:
        print(f"  {shard['key']:<{width}}  {shard['records']:>9} records  {shard['bytes']:>13,} bytes")
    if plan.note:
        print(f"note: {plan.note}")
    print()
    print(estimate_table(estimated))
    return EXIT_ACCEPTED


def _money(value: float | None) -> str:
    return "unknown" if value is None else f"{value:,.6f} USD"


def estimate_table(estimated: dict[str, Any]) -> str:
    """The estimate for a person: a two-column table, then every assumption it rests on."""
    tokens, cost = estimated["estimated_tokens"], estimated["estimated_cost_usd"]
    output = tokens["output"]
    rows = [
        ("input tokens", f"{tokens['input']:,}  ({tokens['method'].replace('_', ' ')})"),
        ("output tokens", "unknown" if output is None else f"{output:,}"),
    ]
    if cost is not None:
        rows.append(("route", cost["route"]))
        if cost.get("instance_hours") is not None:  # SageMaker: priced by instance time
            rows.append(
                (
                    "instance-hours",
                    f"{cost['instance_hours']:,}  ({cost['instance_count']} x "
                    f"{cost['instance_type']}, {cost['wall_clock_hours']:,} h wall clock)",
                )
            )
        rows.append(("estimated cost", _money(cost.get("usd"))))
        if cost.get("by_route") is not None:  # Bedrock: priced by tokens
            rows.append(("  input / output", f"{_money(cost.get('input_usd'))} / {_money(cost.get('output_usd'))}"))
        for route, priced in (cost.get("by_route") or {}).items():
            if route != cost["route"]:
                rows.append((f"  {route} would be", _money(priced["usd"])))
        rows.append(("prices", f"as of {cost['prices_as_of']}, {cost['source']}"))
    width = max(len(name) for name, _ in rows)
    lines = ["Estimate before the run:"] + [f"  {name:<{width}}  {value}" for name, value in rows]
    lines += ["Assumptions:"] + [f"  - {assumption}" for assumption in estimated["assumptions"]]
    return "\n".join(lines)
