"""The synthesized CloudFormation template, as local mode and the authorization checks read it.

- `synthesize_template` synthesizes the project's app in-process, exactly as `cdk synth` would (minus asset
  bundling); `template_from_assembly` reads the stack's template from a cloud assembly (`npx cdk synth` writes one
  to cdk.out) instead.
- `resources_of` lists a template's resources of one type; `Resolver` resolves the intrinsic functions the template
  uses (Ref, Fn::GetAtt, Fn::Join, Fn::Select, Fn::Split) against the names its resources were given.
- ACCOUNT and REGION are the emulated account and Region that the template's pseudo parameters resolve to, in the
  emulator (emulator/) and in the policies the evaluator judges (authorization/).
"""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path
from typing import Any, TypeAlias

from batch_pipeline.config.app import ConfigError
from batch_pipeline_local.project import Project

ACCOUNT = "123456789012"
REGION = "us-east-1"
STACK_NAME = "LlmBatchPipeline"

# A CloudFormation template and one of its resources ({"Type": ..., "Properties": ...}), as the JSON `cdk synth`
# writes. Their shape is CloudFormation's (cfn-lint checks it in `make synth`), read here key by key.
Template: TypeAlias = dict[str, Any]
Resource: TypeAlias = dict[str, Any]


def synthesize_template(context_overrides: dict[str, Any] | None = None, project: Project | None = None) -> Template:
    """Synthesize the project's app as `cdk synth` would (minus asset bundling) and return the stack's template."""
    project = project or Project.find()
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    os.environ.setdefault("CDK_VALIDATION", "false")
    if str(project.root) not in sys.path:
        sys.path.insert(0, str(project.root))  # app.py and stacks/ are the project's, beside cdk.json
    # Deferred: importing the app starts the jsii runtime (a Node process), which only synthesis needs.
    from app import STACK_NAME as APP_STACK
    from app import build_app

    context = project.context()
    context["aws:cdk:bundling-stacks"] = []
    for key, value in (context_overrides or {}).items():
        context[key] = value
    app, _ = build_app(copy.deepcopy(context))
    template: Template = app.synth().get_stack_by_name(APP_STACK).template
    return template


def template_from_assembly(directory: Path | str, stack: str = STACK_NAME) -> Template:
    """The stack's template from a cloud assembly directory (`npx cdk synth` writes one to cdk.out)."""
    directory = Path(directory)
    try:
        manifest = json.loads((directory / "manifest.json").read_text())  # not-a-run-key: the cloud assembly's
    except (OSError, ValueError) as error:
        raise ConfigError(f"{directory}: not a cloud assembly (manifest.json: {error})") from None
    artifact = manifest.get("artifacts", {}).get(stack)
    if not artifact or artifact.get("type") != "aws:cloudformation:stack":
        raise ConfigError(f"{directory}: no stack {stack!r} in the cloud assembly")
    name = artifact.get("properties", {}).get("templateFile", f"{stack}.template.json")
    try:
        template: Template = json.loads((directory / name).read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"{directory / name}: cannot read the template: {error}") from None
    return template


def resources_of(template: Template, kind: str) -> dict[str, Resource]:
    """The template's resources of type `kind`, by logical id."""
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


class Resolver:
    """Resolves the intrinsic functions the synthesized template uses, against the names its resources were given."""

    def __init__(self, physical: dict[str, str], attributes: dict[tuple[str, str], str]) -> None:
        self.physical = physical
        self.attributes = attributes
        self.pseudo = {
            "AWS::Partition": "aws",
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": STACK_NAME,
        }

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((fn, arg),) = value.items()
            if fn == "Ref":
                if arg in self.pseudo:
                    return self.pseudo[arg]
                return self.physical.get(arg, f"local-{arg}")
            if fn == "Fn::GetAtt":
                logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.attributes.get((logical, attribute), f"local-{logical}-{attribute}")
            if fn == "Fn::Join":
                separator, parts = arg
                return separator.join(str(self(p)) for p in parts)
            if fn == "Fn::Select":
                index, items = arg
                return self(items)[int(index)]
            if fn == "Fn::Split":
                separator, text = arg
                return str(self(text)).split(separator)
        return {k: self(v) for k, v in value.items()}
