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


# Authorization (issue 12) sees job control list the run's raw/ outputs without s3:ListBucket: defect 5, fixed in
# stacks/ by the stack-defects branch. Until that merge these runs fail with AccessDenied, as they would on AWS.
# Strict, so the first run after the fix fails until this block is deleted.
JOB_CONTROL_LIST_BUCKET_DENIED = {
    "test_a_small_file_runs_on_demand_through_invoke_model",
    "test_failed_records_are_resubmitted_once_when_configured",
    "test_a_small_on_demand_file_sends_each_record_to_invoke_model_exactly_once",
    "test_throttled_invoke_model_requests_are_counted_as_sent",
    "test_a_converse_pipeline_runs_a_small_file_on_demand_through_the_converse_api",
}


def pytest_collection_modifyitems(items):
    for item in items:
        if item.name in JOB_CONTROL_LIST_BUCKET_DENIED:
            item.add_marker(pytest.mark.xfail(strict=True, reason="issue 12 defect 5: job control lacks s3:ListBucket "
                                              "on raw/ (AccessDenied in local mode); fixed by the stack-defects merge"))
