"""`batch-pipeline plan FILE --pipeline NAME [--json]`: the shards or Bedrock jobs intake would write."""

from __future__ import annotations

import argparse

from ..output import emit_json
from .validate import EXIT_ACCEPTED, EXIT_REJECTED, add_common_arguments, summary, validate_file


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="show the shards (SageMaker) or batch jobs (Bedrock) intake would create for a file",
        description="Validate FILE as intake does, then print the shards (SageMaker: at least one per instance, "
        "balanced by bytes) or Bedrock batch jobs (within the per-job record and size quotas, split evenly; a file "
        "under the per-job minimum shows the on-demand InvokeModel route) that intake would write, with records and "
        "bytes each. Nothing is written. Exit status: 0 accepted, 1 rejected, 2 usage or "
        "configuration error.",
    )
    add_common_arguments(parser)
    parser.add_argument("--json", action="store_true",
                        help="print {accepted, route, note, shards: [{key, name, records, bytes}], report} as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    result = validate_file(args)
    plan = result.plan
    if args.json:
        emit_json({
            "accepted": result.accepted,
            "route": plan.route if plan else None,
            "note": plan.note if plan else None,
            "shards": result.shards,
            "report": result.report,
        }, indent=2, ensure_ascii=False)
        return EXIT_ACCEPTED if result.accepted else EXIT_REJECTED
    if not result.accepted or plan is None:
        print(summary(result.report))
        return EXIT_REJECTED
    what = {"sagemaker-shards": "SageMaker shards", "bedrock-jobs": "Bedrock batch jobs",
            "bedrock-on-demand": "on-demand (InvokeModel) batch"}[plan.kind]
    print(f"{len(plan.shards)} {what} for {result.report['valid']} records:")
    width = max(len(shard["key"]) for shard in result.shards)
    for shard in result.shards:
        print(f"  {shard['key']:<{width}}  {shard['records']:>9} records  {shard['bytes']:>13,} bytes")
    if plan.note:
        print(f"note: {plan.note}")
    return EXIT_ACCEPTED
