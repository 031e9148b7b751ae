#!/usr/bin/env python3
"""CDK entry point: validate the configuration, build the stack, run cdk-nag on every synth."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

sys.path.insert(0, str(Path(__file__).resolve().parent / "lambdas"))

from batch_pipeline.config.app import ConfigError
from stacks.pipeline_stack import BatchPipelineStack
from stacks.settings import config_from_context

STACK_NAME = "LlmBatchPipeline"


def build_app(context: Mapping[str, object] | None = None) -> tuple[cdk.App, BatchPipelineStack]:
    app = cdk.App(context=context) if context is not None else cdk.App()
    config = config_from_context(app)
    env = cdk.Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION"))
    stack = BatchPipelineStack(
        app,
        STACK_NAME,
        config=config,
        env=env,
        description="llm-batch-pipeline: JSONL in S3 -> validated, evaluated LLM batch inference",
    )
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, stack


if __name__ == "__main__":
    try:
        build_app()[0].synth()
    except ConfigError as error:
        print(error, file=sys.stderr)
        sys.exit(1)
