"""Request constraints botocore leaves to the service, checked against botocore's own service model.

botocore validates types and required members before it sends a request; maximum lengths and values, patterns and
enums it leaves to the service. The Bedrock stand-in answers a request that breaks one the way Bedrock does: a
ValidationException worded like AWS's ("1 validation error detected: Value ... failed to satisfy constraint: ...").
"""

from __future__ import annotations

import re
from typing import Any

import botocore.session


class ApiError(Exception):
    """An error answer: the exception shape's name, its HTTP status and message."""

    def __init__(self, code: str, status: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.status, self.message = code, status, message


def validation_error(message: str) -> ApiError:
    return ApiError("ValidationException", 400, message)


_SHAPES: dict[str, Any] = {}


def _input_shape(service: str, operation: str) -> Any:
    key = f"{service}:{operation}"
    if key not in _SHAPES:
        _SHAPES[key] = botocore.session.get_session().get_service_model(service).operation_model(operation).input_shape
    return _SHAPES[key]


def check_constraints(shape: Any, value: Any, path: str = "") -> list[str]:
    """What botocore leaves to the service: maximum lengths and values, patterns and enums."""
    problems: list[str] = []
    meta = shape.metadata
    where = path or shape.name
    if shape.type_name == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                problems += check_constraints(member, value[name], f"{path}.{name}" if path else name)
    elif shape.type_name == "list" and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            problems.append(
                f"Value at '{where}' failed to satisfy constraint: Member must have length less than "
                f"or equal to {meta['max']}"
            )
        for index, item in enumerate(value):
            problems += check_constraints(shape.member, item, f"{where}.{index + 1}")
    elif shape.type_name == "string" and isinstance(value, str):
        if "max" in meta and len(value) > meta["max"]:
            problems.append(
                f"Value at '{where}' failed to satisfy constraint: Member must have length less than "
                f"or equal to {meta['max']}"
            )
        if "pattern" in meta and not re.fullmatch(meta["pattern"], value):
            problems.append(
                f"Value '{value}' at '{where}' failed to satisfy constraint: Member must satisfy "
                f"regular expression pattern: {meta['pattern']}"
            )
        if shape.enum and value not in shape.enum:
            problems.append(
                f"Value '{value}' at '{where}' failed to satisfy constraint: Member must satisfy enum "
                f"value set: [{', '.join(shape.enum)}]"
            )
    elif shape.type_name in ("integer", "long") and isinstance(value, int) and "max" in meta and value > meta["max"]:
        problems.append(
            f"Value '{value}' at '{where}' failed to satisfy constraint: Member must have value "
            f"less than or equal to {meta['max']}"
        )
    return problems


def check_request(service: str, operation: str, params: dict[str, Any]) -> None:
    """Raise the ValidationException the service answers for `params`, if it breaks a constraint of its model."""
    problems = check_constraints(_input_shape(service, operation), params)
    if problems:
        count = len(problems)
        raise validation_error(f"{count} validation error{'s' if count > 1 else ''} detected: " + "; ".join(problems))
