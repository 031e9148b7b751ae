"""`batch-pipeline summary`: what `cdk deploy` would create, read from the synthesized template."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import NotRequired, TypedDict

from batch_pipeline.config.app import ConfigError
from batch_pipeline_local.cli.options import Subcommands, add_config_option
from batch_pipeline_local.cli.output import emit_json
from batch_pipeline_local.project import Project, load_config
from batch_pipeline_local.template import STACK_NAME, Template

# The template `npx cdk synth` writes, in the project's cdk.out/.
TEMPLATE_FILE = f"{STACK_NAME}.template.json"


def register(subparsers: Subcommands) -> None:
    parser = subparsers.add_parser(
        "summary",
        help="summarize what `cdk deploy` would create (run `cdk synth` first)",
        description="Read the synthesized CloudFormation template (`npx cdk synth` or `make synth` writes it) and "
        "print the resources `cdk deploy` would create, by type, the functions, and the configured pipelines with "
        "their backend, model, input format and evaluation. Exit status: 0 printed, 2 no template or a "
        "configuration error.",
    )
    add_config_option(parser)
    parser.add_argument(
        "--template",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"synthesized template (default: the project's cdk.out/{TEMPLATE_FILE})",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(run=run)


class TemplateSummary(TypedDict):
    """What `cdk deploy` would create (`batch-pipeline summary --json`)."""

    resources: dict[str, int]  # resource type -> how many
    total: int
    functions: list[str]  # each function's description
    pipelines: NotRequired[dict[str, dict[str, str]]]  # name -> backend, model, input_format, evaluation


def summarize(template: Template) -> TemplateSummary:
    resources = template.get("Resources", {})
    counts = Counter(resource["Type"] for resource in resources.values())
    functions = sorted(
        resource["Properties"].get("Description", name)
        for name, resource in resources.items()
        if resource["Type"] == "AWS::Lambda::Function"
    )
    return {"resources": dict(sorted(counts.items())), "total": sum(counts.values()), "functions": functions}


def run(args: argparse.Namespace) -> int:
    project = Project.find(getattr(args, "config", None))
    path = args.template or project.cdk_out / TEMPLATE_FILE
    try:
        template = json.loads(path.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}; run `npx cdk synth` first") from None
    config = load_config(project.cdk_json)
    summary = summarize(template)
    summary["pipelines"] = {
        name: {
            "backend": config.backend_of(name),
            "model": p.model,
            "input_format": p.input_format,
            "evaluation": p.evaluation,
        }
        for name, p in config.pipelines.items()
    }
    if args.json:
        emit_json(summary, indent=2)
        return 0
    print(f"`cdk deploy` would create {summary['total']} resources:")
    for kind, count in summary["resources"].items():
        print(f"  {count:3d}  {kind}")
    print("\nFunctions:")
    for description in summary["functions"]:
        print(f"  - {description}")
    print("\nPipelines (upload to s3://<InputBucketName>/<pipeline>/<name>.jsonl):")
    for name, p in summary["pipelines"].items():
        print(f"  {name:20s} {p['backend']:9s} {p['model']:18s} format={p['input_format']:20s} eval={p['evaluation']}")
    return 0
