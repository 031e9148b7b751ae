"""CDK tests as fixtures: app, then stack, then template, built once per session."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Built-in CloudFormation validation costs seconds per synth; CI runs a full `cdk synth` + cfn-lint instead.
os.environ.setdefault("CDK_VALIDATION", "false")


def cdk_context() -> dict:
    context = json.loads((REPO / "cdk.json").read_text())["context"]
    # Skip asset bundling (pip) in unit synths; the full synth in `make test` bundles for real.
    context["aws:cdk:bundling-stacks"] = []
    return context


def synth(context: dict):
    from aws_cdk.assertions import Template

    from app import build_app

    app, stack = build_app(copy.deepcopy(context))
    return app, stack, Template.from_stack(stack)


@pytest.fixture(scope="session")
def default_context() -> dict:
    return cdk_context()


@pytest.fixture(scope="session")
def synthesized(default_context):
    return synth(default_context)


@pytest.fixture(scope="session")
def template(synthesized):
    return synthesized[2]
