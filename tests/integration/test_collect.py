import json

import boto3
import pytest
from moto import mock_aws
from sagemaker_helpers import (
    BUCKET,
    LambdaContext,
    article,
    make_run,
    pipeline,
    prefix,
    put_lines,
    read_lines,
    tweet,
    write_shards,
)

from batch_pipeline.config.runtime import dump_runtime_pipelines
from batch_pipeline.contracts import Job
from batch_pipeline.jobs.backends import BatchBackend, RawOutput
from batch_pipeline.jobs.backends.sagemaker import SageMakerBackend, transform_job_name
from batch_pipeline.results.collect import NO_OUTPUT, collect
from batch_pipeline.results.outputs import parse_output_line
from batch_pipeline.storage.layout import RunFolder
from batch_pipeline_local.engines.sagemaker_transform import install_sagemaker_engine
from tests.job_steps import check_job, submit_job


@pytest.fixture
def aws():
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        yield s3, boto3.client("sagemaker", region_name="us-east-1")


def _run_job(s3, sagemaker, pipeline_name, shards, references=None, **engine):
    """Intake's run folder, then the Map iteration for one job with the engine playing the container."""
    run = make_run(pipeline_name)
    keys = write_shards(s3, run, shards)
    if references is not None:
        put_lines(s3, f"{prefix(run)}references.jsonl", references)
    backend = SageMakerBackend(pipeline(pipeline_name), sagemaker=sagemaker, s3=s3)
    with install_sagemaker_engine(**engine):
        step = submit_job(
            {"run": run, "job": {"index": 0, "shard_keys": keys}, "attempt": 0}, backend, RunFolder.of(run)
        )
    step = check_job(step, backend, RunFolder.of(run))
    assert step["job"]["done"]
    return run, backend, step


def _by_id(records):
    return {str(r["id"]): r for r in records}


def test_text2text_joins_shuffled_output_by_id_and_attaches_references(aws):
    s3, sagemaker = aws
    shards = [[article(i) for i in range(30)], [article(i) for i in range(30, 40)]]
    references = [{"id": i, "reference": f"Highlights of article {i}."} for i in range(0, 40, 3)]
    run, backend, step = _run_job(s3, sagemaker, "summarize", shards, references)
    raw = (
        s3.get_object(Bucket=BUCKET, Key=f"{prefix(run)}raw/{step['job']['name']}/part-00000.jsonl.out")["Body"]
        .read()
        .decode()
    )
    assert [eval_id(line) for line in raw.splitlines()] != list(range(30))  # the engine really shuffled

    result = collect(RunFolder.of(run), [Job.model_validate(step["job"])], backend, s3)
    assert (result["records"], result["processed"], result["succeeded"], result["failed"]) == (40, 40, 40, 0)
    assert result["references_joined"] == len(references)
    predictions = read_lines(s3, result["predictions_key"])
    assert [p["id"] for p in predictions] == list(range(40))  # one line per record, in input order
    for record in predictions:
        assert record["prediction"].startswith(f"Article {record['id']} opens")
        assert record.get("reference") == (f"Highlights of article {record['id']}." if record["id"] % 3 == 0 else None)
    assert read_lines(s3, result["errors_key"]) == []
    assert result["outputs"]["predictions"] == f"s3://{BUCKET}/{result['predictions_key']}"


def test_collect_tags_what_the_backend_wrote_under_raw_so_it_expires(aws):
    s3, sagemaker = aws
    run, backend, step = _run_job(s3, sagemaker, "summarize", [[article(i) for i in range(3)], [article(3)]])
    raw_prefix = f"{prefix(run)}raw/"
    written = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=raw_prefix)["Contents"]]
    assert all(s3.get_object_tagging(Bucket=BUCKET, Key=key)["TagSet"] == [] for key in written)
    result = collect(RunFolder.of(run), [Job.model_validate(step["job"])], backend, s3)
    assert result["raw_objects_tagged"] == len(written) >= 2
    for key in written:
        assert s3.get_object_tagging(Bucket=BUCKET, Key=key)["TagSet"] == [
            {"Key": "batch-pipeline:intermediate", "Value": "true"}
        ], key
    # Results are not intermediates: they stay.
    assert s3.get_object_tagging(Bucket=BUCKET, Key=result["predictions_key"])["TagSet"] == []


def eval_id(line):
    import ast

    return ast.literal_eval(line)["id"]


def test_zero_shot_joins_by_position_and_a_dropped_line_does_not_shift_later_answers(aws):
    s3, sagemaker = aws
    records = [tweet(i, " [[drop-output]]" if i in (2, 3) else "") for i in range(12)]
    references = [{"id": f"t{i}", "label": label} for i, label in enumerate(["finance", "health", "career"] * 4)]
    run, backend, step = _run_job(s3, sagemaker, "classify", [records], references)
    result = collect(RunFolder.of(run), [Job.model_validate(step["job"])], backend, s3)
    assert (result["records"], result["succeeded"], result["failed"]) == (12, 10, 2)
    assert result["positional_mismatches"] == 0
    predictions = _by_id(read_lines(s3, result["predictions_key"]))
    for i in range(12):
        record = predictions[f"t{i}"]
        if i in (2, 3):
            assert record["prediction"] is None and record["error"]["code"] == "no-output"
        else:
            # Without the sequence check, t4..t11 would carry the answers of t6.. (shifted by two).
            assert record["prediction"] == record["label"], record
            assert record["labels"][0] == record["prediction"] and sum(record["scores"]) == pytest.approx(1.0)
    errors = read_lines(s3, result["errors_key"])
    assert [(e["id"], e["error"]["message"]) for e in errors] == [("t2", NO_OUTPUT), ("t3", NO_OUTPUT)]
    assert errors[0]["job"] == step["job"]["name"] and errors[0]["source"].endswith("shards/part-00000.jsonl")


def test_zero_shot_trusts_position_when_the_container_rewrites_the_sequence(aws):
    s3, _ = aws
    run = make_run("classify")
    keys = write_shards(s3, run, [[tweet(i) for i in range(3)]])
    name = transform_job_name(run["run_id"], 0)
    # Same answers, but the echoed text is not the input text: positions still decide.
    put_lines(
        s3,
        f"{prefix(run)}raw/{name}/part-00000.jsonl.out",
        [
            {"sequence": f"REWRITTEN {i}", "labels": [label, "other"], "scores": [0.9, 0.1]}
            for i, label in enumerate(["a", "b", "c"])
        ],
    )
    backend = SageMakerBackend(pipeline("classify"), s3=s3)
    job = Job(index=0, name=name, state="succeeded", status="Completed", done=True, shard_keys=keys)
    result = collect(RunFolder.of(run), [job], backend, s3)
    assert [p["prediction"] for p in read_lines(s3, result["predictions_key"])] == ["a", "b", "c"]
    assert result["positional_mismatches"] == 3


def test_missing_records_and_unreadable_lines_become_errors(aws):
    s3, sagemaker = aws
    shards = [[article(0), article(1, " [[drop-output]]"), article(2, " [[bad-output]]"), article(3)]]
    run, backend, step = _run_job(s3, sagemaker, "summarize", shards)
    result = collect(RunFolder.of(run), [Job.model_validate(step["job"])], backend, s3)
    assert (result["records"], result["processed"], result["succeeded"], result["failed"]) == (4, 2, 2, 2)
    assert result["unreadable_output_lines"] == 1
    errors = _by_id(read_lines(s3, result["errors_key"]))
    assert set(errors) == {"1", "2"}
    assert errors["1"]["error"]["code"] == "no-output"
    assert "could not be read" in errors["2"]["error"]["message"]
    # Both result files read back through the one output parser.
    for key in (result["predictions_key"], result["errors_key"]):
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
        assert all(parse_output_line(line)["id"] is not None for line in body.splitlines())


def test_unreadable_zero_shot_line_is_that_records_parse_error(aws):
    s3, sagemaker = aws
    run, backend, step = _run_job(s3, sagemaker, "classify", [[tweet(0), tweet(1, " [[bad-output]]"), tweet(2)]])
    result = collect(RunFolder.of(run), [Job.model_validate(step["job"])], backend, s3)
    predictions = read_lines(s3, result["predictions_key"])
    assert [p["error"]["code"] if p["prediction"] is None else "ok" for p in predictions] == ["ok", "parse-error", "ok"]
    assert predictions[2]["prediction"] == "career"


def test_failed_job_keeps_finished_shards_and_blames_the_failure_for_the_rest(aws):
    s3, sagemaker = aws
    shards = [[article(0), article(1)], [article(2, " [[fail-job]]"), article(3)], [article(4)]]
    run, backend, step = _run_job(s3, sagemaker, "summarize", shards)
    assert step["job"]["state"] == "failed"
    result = collect(RunFolder.of(run), [Job.model_validate(step["job"])], backend, s3)
    assert (result["records"], result["succeeded"], result["failed"]) == (5, 2, 3)
    assert result["jobs"][0]["failure_reason"] == step["job"]["failure_reason"]
    assert result["jobs"][0]["missing_output_objects"] == 2
    errors = read_lines(s3, result["errors_key"])
    assert [e["id"] for e in errors] == [2, 3, 4]
    assert all(
        e["error"]["code"] == "job-failed" and step["job"]["failure_reason"] in e["error"]["message"] for e in errors
    )


def test_reference_join_in_partitions_gives_the_same_records(aws, monkeypatch):
    s3, sagemaker = aws
    shards = [[article(i) for i in range(25)]]
    references = [{"id": i, "reference": f"ref {i}", "label": "x"} for i in range(25) if i != 7]
    run, backend, step = _run_job(s3, sagemaker, "summarize", shards, references)
    single = _by_id(
        read_lines(s3, collect(RunFolder.of(run), [Job.model_validate(step["job"])], backend, s3)["predictions_key"])
    )
    monkeypatch.setenv("COLLECT_BYTES_PER_PASS", "300")  # ~10 passes over the staged bytes
    result = collect(RunFolder.of(run), [Job.model_validate(step["job"])], backend, s3)
    partitioned = _by_id(read_lines(s3, result["predictions_key"]))
    assert partitioned == single and len(partitioned) == 25
    assert result["join_passes"] > 1 and result["references_joined"] == 24 and "reference" not in partitioned["7"]


def test_collect_handler_takes_the_maps_results_job_references(aws, monkeypatch):
    """The Map's result is one `{"index"}` per job (the `Job ended` state); the job is in the run's jobs/ folder."""
    from pydantic import ValidationError

    from batch_pipeline.handlers import collect as collect_handler
    from batch_pipeline.storage.job_store import save_job

    s3, sagemaker = aws
    run, _, step = _run_job(s3, sagemaker, "classify", [[tweet(i) for i in range(4)], [tweet(i) for i in range(4, 6)]])
    save_job(s3, RunFolder.of(run), Job.model_validate(step["job"]))  # as job control leaves it after every step
    monkeypatch.setenv("PIPELINES", dump_runtime_pipelines({"classify": pipeline("classify")}))
    monkeypatch.setattr("batch_pipeline.settings.client", lambda service: {"s3": s3, "sagemaker": sagemaker}[service])
    result = collect_handler.handler({"run": run, "jobs": [{"index": step["job"]["index"]}]}, LambdaContext())
    assert (result["records"], result["succeeded"], result["failed"]) == (6, 6, 0)
    json.dumps(result)
    with pytest.raises(ValidationError, match="index"):  # a whole iteration state is not a Map result
        collect_handler.handler({"run": run, "jobs": [step]}, LambdaContext())


class BedrockShapedBackend(BatchBackend):
    """Bedrock's layout (<output-uri>/<job-id>/<input>.jsonl.out, recordId) through the same join."""

    name = "bedrock-shaped"

    def job_name(self, run, job):
        return job.name

    def submit(self, run, job):
        raise NotImplementedError

    status = stop = submit

    def raw_outputs(self, run, job):
        return [
            RawOutput(
                input_key=job.shard_keys[0],
                output_key=f"{prefix(run)}raw/{job.name}/abc123/job-00000.jsonl.out",
                join="id",
                input_id_field="recordId",
            )
        ]

    def job_metrics(self, run, job):
        return {"totalRecordCount": 3, "errorRecordCount": 1}


def test_the_join_is_backend_agnostic_recordid_tokens_and_error_records(aws):
    s3, _ = aws
    run = make_run("bedrock-summarize")
    key = f"{prefix(run)}shards/job-00000.jsonl"
    put_lines(s3, key, [{"recordId": f"R{i:010d}", "modelInput": {"messages": []}} for i in range(3)])
    usage = {"input_tokens": 100, "output_tokens": 7}
    put_lines(
        s3,
        f"{prefix(run)}raw/bjob/abc123/job-00000.jsonl.out",
        [
            {
                "recordId": "R0000000002",
                "modelInput": {},
                "error": {"errorCode": 400, "errorMessage": "Malformed input request"},
            },
            {
                "recordId": "R0000000000",
                "modelInput": {},
                "modelOutput": {"content": [{"type": "text", "text": "zero"}], "usage": usage},
            },
            {
                "recordId": "R0000000001",
                "modelInput": {},
                "modelOutput": {"content": [{"type": "text", "text": "one"}], "usage": usage},
            },
        ],
    )
    job = Job(index=0, name="bjob", state="partial", status="PartiallyCompleted", done=True, shard_keys=[key])
    result = collect(RunFolder.of(run), [job], BedrockShapedBackend(None), s3)
    assert (result["records"], result["processed"], result["succeeded"], result["failed"]) == (3, 3, 2, 1)
    assert (result["input_tokens"], result["output_tokens"]) == (200, 14)  # the error record reports none
    assert result["jobs"][0]["backend_metrics"] == {"totalRecordCount": 3, "errorRecordCount": 1}
    predictions = read_lines(s3, result["predictions_key"])
    assert [(p["id"], p["prediction"]) for p in predictions] == [
        ("R0000000000", "zero"),
        ("R0000000001", "one"),
        ("R0000000002", None),
    ]
    assert read_lines(s3, result["errors_key"])[0]["error"] == {"code": "400", "message": "Malformed input request"}
