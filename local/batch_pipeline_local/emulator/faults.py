"""Rehearsed faults (`batch-pipeline local run --fault STATE:ERROR:TIMES`): which Task state fails, how, how often.

The first TIMES invocations of Task state STATE fail before the function runs, the way the Lambda service reports
them to Step Functions (moto_hooks.fault_exception builds that error): a `Lambda.<Code>` error is an Invoke API
error with that code; any other name (`Sandbox.Timedout`, an exception class) is an unhandled function error with
that errorType. The template's own Retry and Catch then decide what happens. A fault must name a Task state of the
template (`check_fault_states`), or it would silently rehearse nothing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from batch_pipeline.config.app import ConfigError


class FaultSpecError(ConfigError):
    """A --fault value that is not STATE:ERROR:TIMES."""


@dataclass
class Fault:
    """The first `times` invocations of Task state `state` fail with `error`."""

    state: str
    error: str
    times: int
    injected: int = 0

    @classmethod
    def parse(cls, text: str) -> Fault:
        # State names may hold spaces and dots, error names dots; neither holds a colon.
        parts = text.rsplit(":", 2)
        if len(parts) != 3 or not parts[0].strip() or not parts[1].strip():
            raise FaultSpecError(
                f"--fault {text!r}: expected STATE:ERROR:TIMES, e.g. "
                "'Wait for job to end:Lambda.TooManyRequestsException:2'"
            )
        state, error, times = (p.strip() for p in parts)
        if not times.isdigit() or int(times) < 1:
            raise FaultSpecError(f"--fault {text!r}: TIMES must be a whole number of at least 1, got {times!r}")
        return cls(state, error, int(times))


@dataclass
class FaultPlan:
    faults: list[Fault] = field(default_factory=list)
    # (state, error) of every injected failure, in order: what a test or the CLI reports.
    injected: list[tuple[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, state: str) -> Fault | None:
        """The fault to inject into this invocation of `state`, if one is still due (Map iterations share it)."""
        with self._lock:
            for fault in self.faults:
                if fault.state == state and fault.injected < fault.times:
                    fault.injected += 1
                    self.injected.append((state, fault.error))
                    return fault
        return None


def check_fault_states(faults: list[Fault], task_states: set[str]) -> None:
    """A fault must name a Task state of the template, or it would silently rehearse nothing."""
    for fault in faults:
        if fault.state not in task_states:
            raise FaultSpecError(
                f"--fault names no Task state of the state machine: {fault.state!r}; "
                f"Task states: {', '.join(sorted(task_states))}"
            )


def task_state_names(definition: dict[str, Any]) -> set[str]:  # an Amazon States Language definition
    names: set[str] = set()
    for name, state in definition.get("States", {}).items():
        if state.get("Type") == "Task":
            names.add(name)
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            names |= task_state_names(processor)
    return names
