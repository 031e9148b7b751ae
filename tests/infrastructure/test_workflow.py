"""The run's state machine, read from the synthesized template: the job loop, retries and catches."""

from __future__ import annotations

import json

import pytest


def definition_of(template) -> dict:
    """The state machine's ASL, with every intrinsic (function ARNs) replaced by a placeholder string."""
    (machine,) = template.find_resources("AWS::StepFunctions::StateMachine").values()
    body = machine["Properties"]["DefinitionString"]
    if isinstance(body, dict):
        separator, parts = body["Fn::Join"]
        body = separator.join(p if isinstance(p, str) else "arn:intrinsic" for p in parts)
    return json.loads(body)


def all_states(definition: dict) -> dict[str, dict]:
    """Every state by name, Map item processors included."""
    found: dict[str, dict] = {}
    for name, state in definition["States"].items():
        found[name] = state
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            found.update(all_states(processor))
    return found


@pytest.fixture(scope="module")
def states(template) -> dict[str, dict]:
    return all_states(definition_of(template))


def test_a_submitted_job_goes_to_the_done_choice_before_any_check(states):
    """An on-demand job is done when its submit step returns: the loop must not check (and rerun) it."""
    assert states["Submit job"]["Next"] == "Job finished?"
    choice = states["Job finished?"]
    assert choice["Type"] == "Choice"
    assert choice["Choices"][0]["Variable"] == "$.job.done" and choice["Choices"][0]["BooleanEquals"] is True
    assert choice["Choices"][0]["Next"] == "Job ended"
    assert states[choice["Default"]]["Type"] == "Wait"
    assert states[states[choice["Default"]]["Next"]]["Next"] == "Job finished?"
