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
    wait = states[choice["Default"]]
    assert wait["Resource"].endswith(":states:::lambda:invoke.waitForTaskToken")
    assert wait["Parameters"]["Payload"]["action"] == "wait" and wait["Next"] == "Job finished?"


def test_a_waiting_job_resumes_by_its_task_token_and_a_lost_event_ends_in_a_direct_check(states):
    wait = states["Wait for job to end"]
    assert wait["Parameters"]["Payload"]["task_token.$"] == "$$.Task.Token"
    assert wait["TimeoutSecondsPath"] == "$.backstop_seconds"
    (catch,) = [c for c in wait["Catch"] if c["ErrorEquals"] == ["States.Timeout"]]
    assert catch["ResultPath"] == "$.backstop"  # the iteration's run, job and attempt survive the timeout
    assert states[catch["Next"]]["Next"] == "Wait for job to end"
    # A refused submission backs off in a Wait state before it is tried again, never in a tight loop.
    queued = states["Job finished?"]["Choices"][1]
    assert queued["Variable"] == "$.job.state" and states[queued["Next"]]["Type"] == "Wait"


# Step Functions best practices, "Handle Lambda service exceptions"
# (https://docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html): these are the Lambda
# service's own transient failures, reported as Lambda.<code>; a throttled invoke is Lambda.TooManyRequestsException.
DOCUMENTED_TRANSIENT = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.ClientExecutionTimeoutException",
}
NOTIFY_STATES = ("Notify run finished", "Notify run failed")


def fault_handling_problems(states: dict[str, dict]) -> list[str]:
    """What moto cannot tell us about the definition's fault handling: AWS's error names and where failures go."""
    problems = []
    for name, state in states.items():
        if state["Type"] != "Task":
            continue
        retried = {error for retrier in state.get("Retry", []) for error in retrier["ErrorEquals"]}
        if missing := DOCUMENTED_TRANSIENT - retried:
            problems.append(f"{name}: no Retry on {sorted(missing)}")
        if "Sandbox.Timedout" not in retried:
            problems.append(f"{name}: no Retry on Sandbox.Timedout")
        catches = [c["Next"] for c in state.get("Catch", []) if "States.ALL" in c["ErrorEquals"]]
        if not catches and name not in ("Submit job", "Wait for job to end"):  # these fail their Map, which is caught
            problems.append(f"{name}: no Catch")
        if name in NOTIFY_STATES:
            reachable = reach(states, catches)
            if "Write failure manifest" in reachable or "Stop the run's jobs" in reachable:
                problems.append(f"{name}: a failed notification rewrites the run's outcome")
    return problems


def reach(states: dict[str, dict], starts: list[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(starts)
    while todo:
        name = todo.pop()
        if name in seen or name not in states:
            continue
        seen.add(name)
        state = states[name]
        todo += [state["Next"]] if "Next" in state else []
        todo += [c["Next"] for c in state.get("Choices", [])] + ([state["Default"]] if "Default" in state else [])
        todo += [c["Next"] for c in state.get("Catch", [])]
    return seen


def test_every_task_retries_the_documented_transient_lambda_errors_and_is_caught(states):
    assert fault_handling_problems(states) == []


def test_the_fault_handling_check_fires_on_a_planted_defect(states):
    import copy

    planted = copy.deepcopy(states)
    planted["Wait for job to end"]["Retry"] = [
        r for r in planted["Wait for job to end"]["Retry"] if "Lambda.TooManyRequestsException" not in r["ErrorEquals"]
    ]
    planted["Notify run finished"]["Catch"] = [
        {"ErrorEquals": ["States.ALL"], "Next": "Collect and score outputs failed"}
    ]
    problems = fault_handling_problems(planted)
    assert any("Wait for job to end: no Retry" in p for p in problems)
    assert any("rewrites the run's outcome" in p for p in problems)


def test_a_failure_after_the_jobs_ran_keeps_them_and_the_run_stops_them(states):
    for name in ("Collect and score outputs", "Write manifest"):
        (catch,) = states[name]["Catch"]
        assert states[catch["Next"]]["Parameters"]["jobs.$"] == "$.jobs"
        assert states[catch["Next"]]["Next"] == "Stop the run's jobs"
    (catch,) = states["Run jobs"]["Catch"]
    assert states[catch["Next"]]["Parameters"]["jobs.$"] == "$.plan.jobs"


# Events Step Functions records per state entered (Standard workflows): a Lambda task records TaskStateEntered,
# LambdaFunctionScheduled, LambdaFunctionStarted, LambdaFunctionSucceeded and TaskStateExited; other states an
# Entered and an Exited event. A `.waitForTaskToken` task records TaskStateEntered, TaskScheduled, TaskStarted,
# TaskSubmitted, then TaskSucceeded or TaskTimedOut, and TaskStateExited.
EVENTS_PER_STATE = {"Task": 5, "Wait": 2, "Choice": 2, "Pass": 2, "TokenTask": 6}
DAY = 24 * 3600


def kind(state: dict) -> str:
    return "TokenTask" if state.get("Resource", "").endswith(".waitForTaskToken") else state["Type"]


def loop_events_per_job_hour(states: dict[str, dict], hours: float = 24.0, backstop_seconds: int = 3600) -> float:
    """History events a running job's iteration records per hour when no event comes at all (the worst case): the
    wait times out every `backstop_seconds` (JOB_BACKSTOP_SECONDS' default, batch_pipeline.jobs.loop) and goes round the
    loop the definition draws from its Timeout catch back to the wait."""
    wait = states["Wait for job to end"]
    (catch,) = [c for c in wait["Catch"] if c["ErrorEquals"] == ["States.Timeout"]]
    cycle, name = [wait], catch["Next"]
    while name != "Wait for job to end":
        cycle.append(states[name])
        name = states[name]["Next"]
    per_backstop = sum(EVENTS_PER_STATE[kind(state)] for state in cycle)
    return per_backstop * (hours * 3600 / backstop_seconds) / hours


def test_the_backstop_default_is_about_hourly():
    from batch_pipeline.settings import Settings

    assert Settings().job_backstop_seconds == 3600


def test_a_day_long_job_costs_a_few_history_events_per_job_hour(states):
    # 25,000 events (the history quota) / 9 events per job-hour: about 115 job-days per run, against ~17 polling.
    assert loop_events_per_job_hour(states) <= 10


def test_the_history_measurement_fires_on_a_polling_loop(states):
    """Planted defect: a 6-minute backstop, i.e. polling by another name."""
    assert loop_events_per_job_hour(states, backstop_seconds=360) > 50


def test_a_map_item_carries_one_job_and_the_small_run_reference_job_control_reads(states):
    selector = states["Run jobs"]["ItemSelector"]
    assert selector["job.$"] == "$$.Map.Item.Value"
    assert selector["run"] == {
        "run_id.$": "$.run.run_id",
        "pipeline.$": "$.run.pipeline",
        "output_bucket.$": "$.run.output_bucket",
        "run_prefix.$": "$.run.run_prefix",
    }
