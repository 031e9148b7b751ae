"""Rehearsed faults in local mode (`local_aws(faults=[...])`, the CLI's --fault): the Lambda service fails a
state's function the way it reports failures to Step Functions, and the template's own Retry/Catch decide."""

from __future__ import annotations

import boto3
import pytest

from batch_pipeline_local.emulator.faults import Fault, FaultSpecError
from batch_pipeline_local.emulator.run import read_lines, run_file
from batch_pipeline_local.emulator.session import local_aws
from batch_pipeline_local.engines.bedrock_batch import active_bedrock_emulator
from batch_pipeline_local.template import REGION
from tests.e2e.test_bedrock_runs import transcript
from tests.e2e.test_local_runs import EXAMPLES, run_folder, write


def history(result) -> list[dict]:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    return sfn.get_execution_history(executionArn=result.execution["executionArn"], maxResults=1000)["events"]


def failed_tasks(result) -> list[str]:
    """The error name of every failed Lambda task, as the execution history records it (a Lambda service integration
    such as the `.waitForTaskToken` wait records TaskFailed, a plain Lambda task LambdaFunctionFailed)."""
    return [
        e.get("lambdaFunctionFailedEventDetails", e.get("taskFailedEventDetails", {})).get("error")
        for e in history(result)
        if e["type"] in ("LambdaFunctionFailed", "TaskFailed")
    ]


def entered(result) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in history(result) if "stateEnteredEventDetails" in e]


def batch_file(tmp_path, name="batch.jsonl"):
    return write(tmp_path, name, [transcript(i) for i in range(100)])


def test_a_throttled_check_is_retried_by_the_template_and_the_run_succeeds(template, tmp_path):
    with local_aws(template=template, faults=["Wait for job to end:Lambda.TooManyRequestsException:2"]) as local:
        result = run_file(local, batch_file(tmp_path), "bedrock-summarize")
        errors = failed_tasks(result)
        injected = list(local.fault_plan.injected)
    assert result.execution["status"] == "SUCCEEDED" and result.manifest["status"] == "SUCCEEDED"
    assert errors == ["Lambda.TooManyRequestsException"] * 2  # the real name, so the Retry on it fired
    assert injected == [("Wait for job to end", "Lambda.TooManyRequestsException")] * 2
    assert result.manifest["model_invocations"]["total"] == 100


def test_a_handlers_exception_reaches_step_functions_under_its_class_name(template, tmp_path):
    from unittest import mock

    with (
        local_aws(template=template) as local,
        mock.patch("batch_pipeline.results.collect.run_evaluation", side_effect=KeyError("rouge")),
    ):
        result = run_file(local, EXAMPLES / "summarize.jsonl", "summarize")
        errors = failed_tasks(result)
    assert errors == ["KeyError"]  # not retried: our code's error, not the Lambda service's
    assert result.manifest["error"] == "KeyError"


def test_a_failed_collect_keeps_every_job_in_the_failure_manifest_and_says_how_to_recover(template, tmp_path):
    with local_aws(template=template, faults=["Collect and score outputs:Sandbox.Timedout:2"]) as local:
        result = run_file(local, batch_file(tmp_path), "bedrock-summarize")
        errors = failed_tasks(result)
        run = run_folder(local, result).prefix
        (job,) = result.manifest["jobs"]
        job_id = job["arn"].rsplit("/", 1)[1]
        raw = read_lines(local.output_bucket, f"{run}raw/{job['name']}/{job_id}/job-00000.jsonl.out")
    manifest = result.manifest
    assert errors == ["Sandbox.Timedout"] * 2  # tried, retried once, then caught
    assert result.execution["status"] == "FAILED" and manifest["status"] == "FAILED"
    assert manifest["failed_state"] == "Collect and score outputs" and manifest["error"] == "Sandbox.Timedout"
    assert job["state"] == "succeeded" and job["output_uri"].startswith("s3://") and job["model_invocations"] == 100
    assert manifest["counts"]["succeeded"] is None  # not counted, not 0
    assert manifest["recover"]["command"] == f"batch-pipeline recollect {manifest['outputs']['run_folder']}"
    assert manifest["recover"]["outputs_kept"] == [job["name"]]
    assert len(raw) == 100  # nothing lost: the paid-for outputs are there


def test_a_dead_notification_is_its_own_failed_step_and_changes_nothing(template, tmp_path):
    # Seven failures outlast the six-attempt Retry.
    with local_aws(template=template, faults=["Notify run finished:Lambda.ServiceException:7"]) as local:
        result = run_file(local, EXAMPLES / "summarize.jsonl", "summarize")
        states = entered(result)
        errors = failed_tasks(result)
    assert result.execution["status"] == "SUCCEEDED"
    assert result.manifest["status"] == "SUCCEEDED" and result.manifest["counts"]["succeeded"] == 20
    assert errors == ["Lambda.ServiceException"] * 7
    assert "Notification failed" in states
    assert "Write failure manifest" not in states and "Notify run failed" not in states


@pytest.mark.not_event_driven("every check fails: the run gives up on the job and stops it")
def test_a_permanently_failing_check_stops_the_job_and_lists_it_in_the_failure_manifest(template, tmp_path):
    # The job clock off: the Bedrock job advances only when asked, so it still runs when the run gives up on it.
    with local_aws(
        template=template,
        faults=["Wait for job to end:Lambda.ServiceException:100"],
        bedrock_options={"tick_seconds": None},
    ) as local:
        result = run_file(local, batch_file(tmp_path), "bedrock-summarize")
        emulator_job = next(iter(active_bedrock_emulator().jobs.values()))
        states = entered(result)
    manifest = result.manifest
    assert result.execution["status"] == "FAILED" and manifest["status"] == "FAILED"
    assert manifest["failed_state"] == "Run jobs" and manifest["error"] == "Lambda.ServiceException"
    assert "Stop the run's jobs" in states
    (job,) = manifest["jobs"]
    assert emulator_job.status in ("Stopping", "Stopped")  # the run stopped what it started
    assert (
        job["arn"] == emulator_job.arn
        and job["status"] in ("Stopping", "Stopped")
        and job["output_uri"].startswith("s3://")
    )
    assert job["stop_reason"] and job["model_invocations"] == 100


@pytest.mark.parametrize("text", ["Wait for job to end", "Wait for job to end:Lambda.X:0", ":Lambda.X:1", "A:B:two"])
def test_a_malformed_fault_is_refused(text):
    with pytest.raises(FaultSpecError):
        Fault.parse(text)


def test_a_fault_on_a_state_the_template_does_not_have_is_refused(template):
    with (
        pytest.raises(FaultSpecError, match="names no Task state.*'Check the job'.*Wait for job to end"),
        local_aws(template=template, faults=["Check the job:Lambda.ServiceException:1"]),
    ):
        pass


def test_the_cli_rehearses_a_throttled_check_and_says_what_it_injected(capsys):
    from batch_pipeline_local.cli.main import main

    code = main(
        [
            "local",
            "run",
            str(EXAMPLES / "summarize.jsonl"),
            "--pipeline",
            "summarize",
            "--fault",
            "Wait for job to end:Lambda.TooManyRequestsException:1",
            "--fault",
            "Submit job:Lambda.ServiceException:1",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "SUCCEEDED" in out
    assert "rehearsed fault: Submit job: Lambda.ServiceException" in out


def test_the_cli_refuses_a_malformed_fault_before_starting(capsys):
    from batch_pipeline_local.cli.main import main

    assert (
        main(
            [
                "local",
                "run",
                str(EXAMPLES / "summarize.jsonl"),
                "--pipeline",
                "summarize",
                "--fault",
                "Wait for job to end",
            ]
        )
        == 2
    )
    assert "STATE:ERROR:TIMES" in capsys.readouterr().err


def test_a_failed_collect_is_recollected_from_the_paid_for_outputs_without_calling_the_model(template, tmp_path):
    from batch_pipeline_local.cli.recollect import local_invoker, recollect
    from batch_pipeline_local.emulator.run import model_requests_received, read_json

    with local_aws(template=template, faults=["Collect and score outputs:RuntimeError:1"]) as local:
        result = run_file(local, batch_file(tmp_path), "bedrock-summarize")
        failed = result.manifest
        received = model_requests_received()
        recovered = recollect(failed, local_invoker(local))
        assert model_requests_received() == received  # no record sent again
        written = read_json(local.output_bucket, run_folder(local, result).manifest_key)
        predictions = read_lines(local.output_bucket, run_folder(local, result).predictions_key)
    assert failed["status"] == "FAILED" and failed["failed_state"] == "Collect and score outputs"
    assert recovered["status"] == written["status"] == "SUCCEEDED" and written["counts"]["succeeded"] == 100
    assert (
        written["model_invocations"]
        == failed["model_invocations"]
        == {"total": 100, "by_job": {failed["jobs"][0]["name"]: 100}}
    )
    assert written["jobs"] == [dict(job, model_invocations=100) for job in written["jobs"]]
    assert written["recollected"]["status"] == "FAILED" and written["recollected"]["error"] == "RuntimeError"
    assert len(predictions) == 100 and written["evaluation"]["scored"] == 100


def test_recollect_refuses_a_run_whose_jobs_left_no_output():
    from batch_pipeline.config.app import ConfigError
    from batch_pipeline_local.cli.recollect import recollect

    manifest = {"run_id": "r", "jobs": [{"name": "j", "state": "queued"}]}
    with pytest.raises(ConfigError, match="j: queued"):
        recollect(manifest, invoke=lambda handler, event: pytest.fail("nothing may run"))
