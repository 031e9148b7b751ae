import ast
import json

import boto3
import pytest
from moto import mock_aws
from sagemaker_helpers import (
    BUCKET,
    LABELS,
    TWEETS,
    article,
    make_folder,
    make_run,
    pipeline,
    prefix,
    tweet,
    write_shards,
)

from batch_pipeline.contracts import Job
from batch_pipeline.jobs.backends.sagemaker import SageMakerBackend, transform_job_name
from batch_pipeline.storage.layout import RunFolder
from batch_pipeline_local.engines.sagemaker_model import classify, summarize
from batch_pipeline_local.engines.sagemaker_transform import install_sagemaker_engine
from batch_pipeline_local.engines.stand_in import ENGINE_LABEL


@pytest.fixture
def aws():
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        yield s3, boto3.client("sagemaker", region_name="us-east-1")


def _out(s3, run, shard=0, name=None):
    name = name or transform_job_name(run["run_id"], 0)
    key = f"{prefix(run)}raw/{name}/part-{shard:05d}.jsonl.out"
    return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode().splitlines()


def _submit(s3, sagemaker, pipeline_name, shards, **job):
    run = make_run(pipeline_name)
    write_shards(s3, run, shards)
    state = SageMakerBackend(pipeline(pipeline_name), sagemaker=sagemaker, s3=s3).submit(
        RunFolder.of(run), Job.model_validate({"index": 0, **job})
    )
    described = sagemaker.describe_transform_job(TransformJobName=state.name)
    return run, described


# ---------------------------------------------------------------- the stand-in "models"


def test_summary_is_leading_sentences_without_the_instruction_cut_to_max_length():
    text = "Briefly summarize this text: One two three. Four five six seven. Eight nine."
    assert summarize(text, max_length=7) == "One two three. Four five six seven."
    assert summarize(text, max_length=2) == "One two"
    assert summarize(text, 50, start_sentence=1) == "Four five six seven. Eight nine."


def test_zero_shot_scores_sum_to_one_sorted_and_overlap_wins():
    result = classify("I will fix my financial situation and pay my debt", LABELS)
    assert result["labels"][0] == "finance"
    assert result["scores"] == sorted(result["scores"], reverse=True)
    assert sum(result["scores"]) == pytest.approx(1.0)
    assert sorted(result["labels"]) == sorted(LABELS)
    multi = classify("eat healthy and fix my finances", LABELS, multi_class=True)
    assert all(0 < s < 1 for s in multi["scores"]) and sum(multi["scores"]) != pytest.approx(1.0)


# ---------------------------------------------------------------- through moto's CreateTransformJob


def test_text2text_job_writes_shuffled_python_literal_lines_per_shard(aws):
    s3, sagemaker = aws
    with install_sagemaker_engine() as hook:
        run, described = _submit(
            s3, sagemaker, "summarize", [[article(i) for i in range(20)], [article(i) for i in range(20, 25)]]
        )
    assert described["TransformJobStatus"] == "Completed"
    lines = _out(s3, run, 0)
    assert all(line.startswith("{'id': ") for line in lines)  # a Python literal, as JumpStart writes
    records = [ast.literal_eval(line) for line in lines]
    assert sorted(r["id"] for r in records) == list(range(20))
    assert [r["id"] for r in records] != list(range(20))  # shuffled: the join must be by id
    # HYPER_PARAMS (max_length 50) overrides the record, and the instruction is not part of the summary.
    by_id = {r["id"]: r["generated_texts"][0] for r in records}
    assert (
        by_id[3] == "Article 3 opens with its lead sentence. It then adds detail number 3. A third sentence closes it."
    )
    assert len(_out(s3, run, 1)) == 5
    assert hook.runs[0].records_in == 25 and hook.runs[0].lines_out == 25


def test_zero_shot_job_writes_json_in_input_order(aws):
    s3, sagemaker = aws
    with install_sagemaker_engine():
        run, described = _submit(s3, sagemaker, "classify", [[tweet(i) for i in range(6)]])
    assert described["TransformJobStatus"] == "Completed"
    outputs = [json.loads(line) for line in _out(s3, run)]
    assert [o["sequence"] for o in outputs] == [tweet(i)["sequences"] for i in range(6)]
    assert [o["labels"][0] for o in outputs] == [label for _, label in TWEETS]
    assert all("id" not in o for o in outputs)


def test_engine_labels_itself_as_a_stand_in(aws, caplog):
    s3, sagemaker = aws
    caplog.set_level("INFO")
    with install_sagemaker_engine():
        run, described = _submit(s3, sagemaker, "classify", [[tweet(0)]])
    marker = s3.get_object(Bucket=BUCKET, Key=f"{prefix(run)}raw/{described['TransformJobName']}/_LOCAL_STAND_IN")
    assert ENGINE_LABEL in marker["Body"].read().decode()
    assert ENGINE_LABEL in caplog.text


def test_fail_job_marker_fails_the_job_after_earlier_shards_were_written(aws):
    s3, sagemaker = aws
    shards = [[article(0), article(1)], [article(2), article(3, " [[fail-job]]")], [article(4)]]
    with install_sagemaker_engine():
        run, described = _submit(s3, sagemaker, "summarize", shards)
    assert described["TransformJobStatus"] == "Failed"
    assert "record 3" in described["FailureReason"] and "[[fail-job]]" in described["FailureReason"]
    assert len(_out(s3, run, 0)) == 2
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix(run)}raw/")["Contents"]
    assert sorted(item["Key"].rsplit("/", 1)[1] for item in listed) == ["_LOCAL_STAND_IN", "part-00000.jsonl.out"]


def test_drop_and_bad_output_markers(aws):
    s3, sagemaker = aws
    with install_sagemaker_engine(shuffle=False) as hook:
        run, described = _submit(
            s3, sagemaker, "summarize", [[article(0), article(1, " [[drop-output]]"), article(2, " [[bad-output]]")]]
        )
    assert described["TransformJobStatus"] == "Completed"
    lines = _out(s3, run)
    assert len(lines) == 2 and ast.literal_eval(lines[0])["id"] == 0
    with pytest.raises((ValueError, SyntaxError)):
        ast.literal_eval(lines[1])
    assert hook.runs[0].dropped == 1


def test_fail_jobs_hook_argument_and_uninstall(aws):
    s3, sagemaker = aws
    name = transform_job_name(make_run("classify")["run_id"], 0)
    with install_sagemaker_engine(fail_jobs={name: "CapacityError: no ml.c5.2xlarge capacity"}):
        _, described = _submit(s3, sagemaker, "classify", [[tweet(0)]])
    assert (described["TransformJobStatus"], described["FailureReason"]) == (
        "Failed",
        "CapacityError: no ml.c5.2xlarge capacity",
    )
    # After the context manager, moto is itself again: Completed and no output at all.
    other = Job(index=0, name="llmbp-after-uninstall")
    SageMakerBackend(pipeline("classify"), sagemaker=sagemaker, s3=s3).submit(make_folder("classify"), other)
    assert "Contents" not in s3.list_objects_v2(
        Bucket=BUCKET, Prefix=f"{prefix(make_run('classify'))}raw/llmbp-after-uninstall/"
    )


def test_a_wrong_request_shape_fails_like_the_real_container_would(aws):
    s3, sagemaker = aws
    run = make_run("summarize")
    write_shards(s3, run, [[article(0)]])
    with install_sagemaker_engine():
        sagemaker.create_transform_job(
            TransformJobName="llmbp-no-split",
            ModelName="m",
            TransformInput={
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/{prefix(run)}shards/"}
                },
                "ContentType": "application/jsonlines",
            },
            TransformOutput={"S3OutputPath": f"s3://{BUCKET}/{prefix(run)}raw/llmbp-no-split/", "AssembleWith": "Line"},
            TransformResources={"InstanceType": "ml.c5.2xlarge", "InstanceCount": 1},
        )
    described = sagemaker.describe_transform_job(TransformJobName="llmbp-no-split")
    assert described["TransformJobStatus"] == "Failed" and "SplitType" in described["FailureReason"]


# ---------------------------------------------------------------- job life: asynchronous jobs, events, StopTransformJob


def _wait_for(predicate, seconds=10.0):
    import time

    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "the transform job did not get there in time"
        time.sleep(0.01)


def test_an_asynchronous_job_is_in_progress_when_first_checked_and_emits_each_state_change(aws):
    s3, sagemaker = aws
    events = []
    with install_sagemaker_engine(asynchronous=True, on_event=events.append) as hook:
        run, described = _submit(s3, sagemaker, "summarize", [[article(i) for i in range(5)]])
        assert described["TransformJobStatus"] == "InProgress"  # the first check always finds it running
        name = described["TransformJobName"]
        _wait_for(lambda: len(events) == 2)
        ended = sagemaker.describe_transform_job(TransformJobName=name)
    assert ended["TransformJobStatus"] == "Completed" and "TransformEndTime" in ended
    assert [e["detail"]["TransformJobStatus"] for e in events] == ["InProgress", "Completed"]
    assert all(e["detail"]["TransformJobArn"] == ended["TransformJobArn"] for e in events)
    assert hook.runs[0].records_in == 5 and len(_out(s3, run, 0)) == 5


def test_stop_transform_job_stops_a_running_job_and_refuses_an_ended_or_unknown_one(aws):
    s3, sagemaker = aws
    events = []
    with install_sagemaker_engine(asynchronous=True, on_event=events.append, start_after_seconds=60) as hook:
        run = make_run("summarize")
        write_shards(s3, run, [[article(i) for i in range(5)]])
        backend = SageMakerBackend(pipeline("summarize"), sagemaker=sagemaker, s3=s3)
        job = Job(index=0)
        state = backend.submit(RunFolder.of(run), job)
        sagemaker.stop_transform_job(TransformJobName=state.name)
        job = job.with_state(state)
        # Stopping until the job's worker sees it (here: at its first check), then Stopped, having written nothing.
        assert backend.status(RunFolder.of(run), job).status in ("Stopping", "Stopped")
        _wait_for(lambda: len(events) == 3)
        assert backend.stop(RunFolder.of(run), job).status == "Stopped"  # an ended job: its last state
        with pytest.raises(sagemaker.exceptions.ClientError, match="ValidationException.*Could not find transform job"):
            sagemaker.stop_transform_job(TransformJobName="no-such-job")
    assert [e["detail"]["TransformJobStatus"] for e in events] == ["InProgress", "Stopping", "Stopped"]
    assert hook.runs == []
