"""The authorization map (batch_pipeline_local/authorization/operations.py) covers every AWS operation the Lambda
code calls, and every IAM action it names exists in the Service Authorization Reference (iam-data)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import botocore.session
import pytest

from batch_pipeline_local.authorization import operations

REPO = Path(__file__).resolve().parents[2]
LAMBDAS = REPO / "lambdas"
IAM_DATA = REPO / "node_modules" / "@cloud-copilot" / "iam-data" / "data" / "actions"
# s3transfer's managed transfers, as the S3 operations they make.
TRANSFER_METHODS = {
    "upload_file": [
        "PutObject",
        "CreateMultipartUpload",
        "UploadPart",
        "CompleteMultipartUpload",
        "AbortMultipartUpload",
    ],
    "upload_fileobj": [
        "PutObject",
        "CreateMultipartUpload",
        "UploadPart",
        "CompleteMultipartUpload",
        "AbortMultipartUpload",
    ],
    "download_file": ["HeadObject", "GetObject"],
    "download_fileobj": ["HeadObject", "GetObject"],
    "copy": [
        "HeadObject",
        "CopyObject",
        "CreateMultipartUpload",
        "UploadPartCopy",
        "CompleteMultipartUpload",
        "AbortMultipartUpload",
    ],
}
# Our own methods that share a name with an AWS operation (checked by hand: not client calls).
NOT_CLIENT_METHODS = {
    "search": "report.charts: a compiled regular expression's search, not SageMaker Search",
}
SERVICES = sorted({service for service, _ in operations.OPERATIONS})


def _operation_names() -> dict[str, set[tuple[str, str]]]:
    """snake_case client method -> the (service, Operation) pairs it can be, for the services we map."""
    session = botocore.session.get_session()
    names: dict[str, set[tuple[str, str]]] = {}
    for service in SERVICES:
        model = session.get_service_model(service)
        for operation in model.operation_names:
            snake = botocore.xform_name(operation)
            names.setdefault(snake, set()).add((service, operation))
    return names


def called_operations() -> set[tuple[str, str]]:
    """Every (service, Operation) a method call or paginator under lambdas/ can make (by name, any service)."""
    names = _operation_names()
    found: set[tuple[str, str]] = set()
    for path in LAMBDAS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            method = node.func.attr
            if method == "get_paginator" and node.args and isinstance(node.args[0], ast.Constant):
                method = node.args[0].value
            if method in TRANSFER_METHODS and node.args:
                found |= {("s3", op) for op in TRANSFER_METHODS[method]}
            found |= names.get(method, set())
    return found


def test_every_operation_the_lambdas_call_is_in_the_map():
    # Matched by method name for every service we map, so a name shared by services counts for each (stricter).
    called = {pair for pair in called_operations() if botocore.xform_name(pair[1]) not in NOT_CLIENT_METHODS}
    missing = sorted(pair for pair in called if pair not in operations.OPERATIONS)
    assert not missing, f"operations called under lambdas/ but missing from the authorization map: {missing}"


def test_the_scan_sees_the_calls_it_must():
    called = called_operations()
    for pair in [
        ("s3", "GetObject"),
        ("s3", "CompleteMultipartUpload"),
        ("sns", "Publish"),
        ("stepfunctions", "StartExecution"),
        ("sagemaker", "CreateTransformJob"),
        ("bedrock", "CreateModelInvocationJob"),
        ("bedrock-runtime", "InvokeModel"),
    ]:
        assert pair in called


def _mapped_actions() -> set[str]:
    source = Path(operations.__file__).read_text()
    # Actions are quoted values; condition keys ("kms:ViaService": ...) are dict keys and are left out.
    return set(re.findall(r'"((?:s3|kms|sns|states|sagemaker|bedrock|iam|lambda):[A-Z][A-Za-z]+)"(?!\s*:)', source))


@pytest.mark.parametrize("action", sorted(_mapped_actions()))
def test_each_mapped_action_exists_in_the_service_authorization_reference(action):
    service, name = action.split(":")
    actions = json.loads((IAM_DATA / f"{service}.json").read_text())
    assert name.lower() in actions, f"{action} is not an action of {service} in iam-data"
