"""EventBridge as local mode needs it: the template's rules, matched against an event, deliver to their Lambda targets.

moto's EventBridge does not invoke Lambda targets without Docker, so local mode reads each `AWS::Events::Rule` from
the synthesized template and runs the target function in-process when the rule's pattern matches, as EventBridge
would. The matcher covers the pattern subset the stack uses: exact values (a list of allowed values, per field,
nested objects) and `{"prefix": ...}` (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns.html);
any other operator raises, so a pattern this matcher cannot judge is never silently treated as a match.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class UnsupportedPattern(ValueError):
    pass


def _value_matches(allowed: list, value: Any) -> bool:
    for option in allowed:
        if isinstance(option, dict):
            if set(option) != {"prefix"}:
                raise UnsupportedPattern(f"pattern operator {sorted(option)} is not supported locally")
            if isinstance(value, str) and value.startswith(option["prefix"]):
                return True
        elif option == value:
            return True
    return False


def matches(pattern: dict, event: dict) -> bool:
    for key, rule in pattern.items():
        if key not in event:
            return False
        value = event[key]
        if isinstance(rule, dict):
            if not isinstance(value, dict) or not matches(rule, value):
                return False
        elif isinstance(value, list):  # an array field matches if any element does
            if not any(_value_matches(rule, item) for item in value):
                return False
        elif not _value_matches(rule, value):
            return False
    return True


class LocalEventBus:
    """The template's rules with Lambda targets; `put(event)` delivers it to every matching rule's targets."""

    def __init__(self, template: dict, invoke: Callable[[str, dict], Any]) -> None:
        self.rules: list[tuple[str, dict, list[str]]] = []
        for logical, resource in template.get("Resources", {}).items():
            if resource.get("Type") != "AWS::Events::Rule":
                continue
            props = resource["Properties"]
            targets = [t["Arn"]["Fn::GetAtt"][0] for t in props.get("Targets", [])
                       if isinstance(t.get("Arn"), dict) and "Fn::GetAtt" in t["Arn"]]
            self.rules.append((logical, props["EventPattern"], targets))
        self._invoke = invoke
        self.delivered: list[tuple[str, dict, Any]] = []
        self._lock = threading.Lock()

    def put(self, event: dict) -> list[Any]:
        results = []
        for rule, pattern, targets in self.rules:
            if not matches(pattern, event):
                continue
            for function in targets:
                result = self._invoke(function, event)
                with self._lock:
                    self.delivered.append((rule, event, result))
                results.append(result)
        return results
