"""Local mode fixtures: the app is synthesized once per session and deployed into a fresh moto per test.

Every run a test makes through `run_file` is also checked for exactly-once work: the manifest's
`model_invocations` (what the pipeline says it was billed for) must equal what the stand-in engines
received, counted where the requests arrive. And for event-driven completion: every backend job of a run
(one with an ARN: a SageMaker transform job or a Bedrock batch job) must have had its wait resumed by its
job-state event, delivered through the template's EventBridge rule; a test that rehearses something else
(lost events, a job clock stopped) says so with `@pytest.mark.not_event_driven(reason)`."""

from __future__ import annotations

import pytest

from batch_pipeline_local.emulator import run as runner
from batch_pipeline_local.emulator.session import local_aws
from batch_pipeline_local.template import synthesize_template


@pytest.fixture(scope="session")
def template():
    return synthesize_template()


@pytest.fixture(scope="session")
def athena_runs(template, tmp_path_factory):
    """The local runs the Athena tests read (tests/e2e/test_athena_schema.py), made once per worker."""
    from tests.e2e.test_athena_schema import local_athena_runs

    return local_athena_runs(template, tmp_path_factory)


@pytest.fixture
def local(template):
    with local_aws(template=template) as app:
        yield app


def billed_requests_problems(results: list[runner.RunResult]) -> list[str]:
    """Every run whose manifest's model_invocations differs from what the engines received."""
    problems = []
    for result in results:
        claimed = (result.manifest or {}).get("model_invocations", {}).get("total", 0)
        if claimed != result.model_requests_received:
            problems.append(
                f"{result.key}: manifest says {claimed} model invocations, the engines received "
                f"{result.model_requests_received}"
            )
        jobs = (result.manifest or {}).get("jobs", [])
        if jobs and sum(job.get("model_invocations", 0) for job in jobs) != claimed:
            problems.append(f"{result.key}: per-job model_invocations do not add up to the total {claimed}")
    return problems


def not_event_driven_problems(results: list[runner.RunResult]) -> list[str]:
    """Every backend job whose wait no job-state event resumed."""
    problems = []
    for result in results:
        resumed = {name for names in result.resumed_by_event.values() for name in names}
        for job in (result.manifest or {}).get("jobs", []):
            if job.get("arn") and job["name"] not in resumed:
                problems.append(
                    f"{result.key}: job {job['name']} ({job.get('status')}) ended without its job-state "
                    f"event resuming the run (resumed by event: {result.resumed_by_event})"
                )
    return problems


def pytest_configure(config):
    config.addinivalue_line("markers", "not_event_driven(reason): this test's runs may end without job-state events")


@pytest.fixture(autouse=True)
def every_run_is_billed_once_and_event_driven(request):
    results: list[runner.RunResult] = []
    runner.RUN_OBSERVERS.append(results.append)
    try:
        yield results
    finally:
        runner.RUN_OBSERVERS.remove(results.append)
    problems = billed_requests_problems(results)
    if request.node.get_closest_marker("not_event_driven") is None:
        problems += not_event_driven_problems(results)
    assert not problems, "\n".join(problems)
