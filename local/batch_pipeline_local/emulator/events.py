"""EventBridge as local mode needs it: the template's rules, matched against an event, deliver to their Lambda targets.

moto's EventBridge does not invoke Lambda targets without Docker, so local mode reads each `AWS::Events::Rule` from
the synthesized template and runs the target function in-process when the rule's pattern matches, as EventBridge
would. The matcher covers the pattern subset the stack uses: exact values (a list of allowed values, per field,
nested objects) and `{"prefix": ...}` (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns.html);
any other operator raises, so a pattern this matcher cannot judge is never silently treated as a match.

`publish(event)` is how the emulators hand over their job-state events: delivery happens on a thread of its own, as
EventBridge delivers asynchronously. A target that raises is not a lost event but a bug in local mode or a handler
(on AWS it would be retried and dead-lettered while the run waits for its backstop), so the error is kept and
`raise_failures()` raises it: run.wait_for_executions calls it while it waits for a run, and the session when it ends.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

from batch_pipeline_local.template import Template

log = logging.getLogger(__name__)

# An EventBridge event ({"source", "detail-type", "detail", ...}) and a rule's event pattern, as JSON.
Event: TypeAlias = dict[str, Any]
EventPattern: TypeAlias = dict[str, Any]


class UnsupportedPattern(ValueError):
    pass


@dataclass
class DeliveryFailure:
    rule: str
    function: str
    event: Event
    error: BaseException
    trace: str

    def describe(self) -> str:
        detail = self.event.get("detail") or {}
        job = detail.get("batchJobName") or detail.get("TransformJobName") or "?"
        status = detail.get("status") or detail.get("TransformJobStatus")
        return (
            f"{self.event.get('detail-type')} of {job} ({status}) "
            f"matched rule {self.rule}, and its target {self.function} raised:\n{self.trace}"
        )


class EventDeliveryError(RuntimeError):
    """A rule's target raised while local mode delivered an event to it."""

    def __init__(self, failures: list[DeliveryFailure]) -> None:
        super().__init__(
            f"{len(failures)} event deliver{'y' if len(failures) == 1 else 'ies'} failed:\n"
            + "\n".join(failure.describe() for failure in failures)
        )
        self.failures = failures


def _value_matches(allowed: list[Any], value: Any) -> bool:
    for option in allowed:
        if isinstance(option, dict):
            if set(option) != {"prefix"}:
                raise UnsupportedPattern(f"pattern operator {sorted(option)} is not supported locally")
            if isinstance(value, str) and value.startswith(option["prefix"]):
                return True
        elif option == value:
            return True
    return False


def matches(pattern: EventPattern, event: Event) -> bool:
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

    def __init__(self, template: Template, invoke: Callable[[str, Event], Any]) -> None:
        self.rules: list[tuple[str, EventPattern, list[str]]] = []
        for logical, resource in template.get("Resources", {}).items():
            if resource.get("Type") != "AWS::Events::Rule":
                continue
            props = resource["Properties"]
            targets = [
                t["Arn"]["Fn::GetAtt"][0]
                for t in props.get("Targets", [])
                if isinstance(t.get("Arn"), dict) and "Fn::GetAtt" in t["Arn"]
            ]
            self.rules.append((logical, props["EventPattern"], targets))
        self._invoke = invoke
        self.delivered: list[tuple[str, Event, Any]] = []  # (rule, event, the target's result), in delivery order
        self.failures: list[DeliveryFailure] = []
        self._in_flight: list[threading.Thread] = []
        self._lock = threading.Lock()

    def put(self, event: Event) -> list[Any]:
        """Deliver now, on this thread, to every matching rule's targets; a target's exception propagates."""
        results = []
        for rule, function in self._targets_of(event):
            results.append(self._deliver(rule, function, event))
        return results

    def publish(self, event: Event) -> None:
        """Deliver later, on a thread of its own; a target's exception is kept for raise_failures()."""
        thread = threading.Thread(
            target=self._deliver_recording_failures,
            args=(event,),
            daemon=True,
            name=f"event-delivery-{event.get('id', '')}",
        )
        with self._lock:
            self._in_flight = [t for t in self._in_flight if t.is_alive()] + [thread]
        thread.start()

    def drain(self, timeout: float = 10.0) -> None:
        """Wait for the deliveries in flight (at most `timeout` seconds for each)."""
        with self._lock:
            in_flight = list(self._in_flight)
        for thread in in_flight:
            thread.join(timeout)

    def raise_failures(self) -> None:
        """Raise EventDeliveryError for every delivery that failed since the last call."""
        with self._lock:
            failures, self.failures = self.failures, []
        if failures:
            raise EventDeliveryError(failures)

    def _targets_of(self, event: Event) -> list[tuple[str, str]]:
        return [
            (rule, function) for rule, pattern, targets in self.rules if matches(pattern, event) for function in targets
        ]

    def _deliver(self, rule: str, function: str, event: Event) -> Any:
        result = self._invoke(function, event)
        with self._lock:
            self.delivered.append((rule, event, result))
        return result

    def _deliver_recording_failures(self, event: Event) -> None:
        try:
            targets = self._targets_of(event)
        except UnsupportedPattern as error:
            with self._lock:
                self.failures.append(DeliveryFailure("(matching)", "-", event, error, traceback.format_exc()))
            return
        for rule, function in targets:
            try:
                self._deliver(rule, function, event)
            except Exception as error:  # kept, and raised by raise_failures()
                log.error("event delivery to %s failed: %s", function, error)
                with self._lock:
                    self.failures.append(DeliveryFailure(rule, function, event, error, traceback.format_exc()))
