"""Local mode fixtures: the app is synthesized once per session and deployed into a fresh moto per test.

Every run a test makes through `run_file` is also checked for exactly-once work: the manifest's
`model_invocations` (what the pipeline says it was billed for) must equal what the stand-in engines
received, counted where the requests arrive."""

from __future__ import annotations

import pytest

from batch_pipeline_local import runner
from batch_pipeline_local.runner import local_aws, synthesize_template


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
            problems.append(f"{result.key}: manifest says {claimed} model invocations, the engines received "
                            f"{result.model_requests_received}")
        jobs = (result.manifest or {}).get("jobs", [])
        if jobs and sum(job.get("model_invocations", 0) for job in jobs) != claimed:
            problems.append(f"{result.key}: per-job model_invocations do not add up to the total {claimed}")
    return problems


@pytest.fixture(autouse=True)
def every_run_is_billed_once():
    results: list[runner.RunResult] = []
    runner.RUN_OBSERVERS.append(results.append)
    try:
        yield results
    finally:
        runner.RUN_OBSERVERS.remove(results.append)
    problems = billed_requests_problems(results)
    assert not problems, "\n".join(problems)
