"""The one-pass data path: collect joins, scores, writes predictions once and sums the scores into evaluation.json in
the same pass, never reading predictions back; intake's id index spares collect the shards. S3 requests are counted
with botocore's event hooks."""

import json
import random
from collections import Counter
from pathlib import Path

import orjson
import pytest
from sagemaker_helpers import BUCKET, make_run, pipeline, prefix, put_lines, read_lines

from batch_pipeline.contracts import Job
from batch_pipeline.intake.stream import LocalDirSink, run_intake
from batch_pipeline.jobs.backends import BatchBackend, RawOutput
from batch_pipeline.results.collect import collect
from batch_pipeline.results.evaluation.streaming import RecordScorer
from batch_pipeline.storage.layout import RunFolder, id_index_key


def count_requests(client) -> Counter:
    seen: Counter = Counter()

    def record(params, model, **_):
        seen[(model.name, params.get("Key"))] += 1

    client.meta.events.register("provide-client-params.s3.*", record)
    return seen


class OneObjectPerShard(BatchBackend):
    """Text2text's layout: shards/<name> answered by raw/<job>/<name>.out, joined by `id`."""

    name = "test"

    def job_name(self, run, job):
        return job.name

    def submit(self, run, job):
        raise NotImplementedError

    status = stop = submit

    def raw_outputs(self, run, job):
        for key in job.shard_keys:
            yield RawOutput(
                input_key=key, output_key=f"{prefix(run)}raw/{job.name}/{key.rsplit('/', 1)[-1]}.out", join="id"
            )


def folder(run, shards, outputs, references=(), index=True):
    """A run folder: shards (+ ids/ index) and the job's raw outputs (lists of lines per shard)."""
    keys = []
    for number, (records, answers) in enumerate(zip(shards, outputs, strict=True)):
        key = f"{prefix(run)}shards/part-{number:05d}.jsonl"
        put_lines(s3_client(), key, records)
        if index:
            s3_client().put_object(
                Bucket=BUCKET, Key=id_index_key(key), Body=b"".join(orjson.dumps(r["id"]) + b"\n" for r in records)
            )
        if answers is not None:
            s3_client().put_object(
                Bucket=BUCKET,
                Key=f"{prefix(run)}raw/job/part-{number:05d}.jsonl.out",
                Body="".join(a if isinstance(a, str) else json.dumps(a) + "\n" for a in answers).encode(),
            )
        keys.append(key)
    if references:
        put_lines(s3_client(), f"{prefix(run)}references.jsonl", list(references))
    return Job(index=0, name="job", state="succeeded", status="Completed", done=True, shard_keys=keys)


_clients = {}


def s3_client():
    return _clients["s3"]


@pytest.fixture(autouse=True)
def _remember(s3):
    _clients["s3"] = s3


def answer(i, text=None):
    return {"id": i, "generated_texts": [text or f"summary of article {i}"]}


def test_shuffled_outputs_join_in_input_order_with_scores_and_missing_records(s3):
    run = make_run("summarize")
    records = [{"id": i, "text_inputs": f"article {i}"} for i in range(50)]
    answers = [answer(i) for i in range(50) if i != 17]
    random.Random(3).shuffle(answers)
    job = folder(run, [records], [answers], [{"id": i, "reference": f"summary of article {i}"} for i in range(50)])
    result = collect(RunFolder.of(run), [job], OneObjectPerShard(None), s3, scorer=RecordScorer("rouge"))
    predictions = read_lines(s3, result["predictions_key"])
    assert [p["id"] for p in predictions] == list(range(50))
    assert predictions[17]["error"]["code"] == "no-output" and "metrics" not in predictions[17]
    assert predictions[3]["metrics"]["rouge1"] == {"precision": 1.0, "recall": 1.0, "fmeasure": 1.0}
    assert (result["succeeded"], result["failed"], result["scoring"]["scored"]) == (49, 1, 49)
    assert [e["id"] for e in read_lines(s3, result["errors_key"])] == [17]


def test_duplicates_unknown_ids_and_errors_are_counted_not_scored(s3):
    run = make_run("summarize")
    records = [{"id": f"r{i}", "text_inputs": "t"} for i in range(4)]
    answers = [
        {"id": "r0", "prediction": None, "error": {"code": "ModelError", "message": "boom"}},
        answer("r0", "a retried answer"),  # a duplicate that replaces an error
        answer("r1"),
        answer("r1", "second answer"),  # a duplicate that does not replace an answer
        answer("nobody"),  # matches no record of this object
        "not a line of any known shape\n",
        answer("r3"),
    ]
    job = folder(
        run,
        [records],
        [answers],
        [{"id": f"r{i}", "reference": "a retried answer"} for i in range(4)]
        + [{"id": "ghost", "reference": "no record"}],
    )
    result = collect(RunFolder.of(run), [job], OneObjectPerShard(None), s3, scorer=RecordScorer("rouge"))
    by_id = {p["id"]: p for p in read_lines(s3, result["predictions_key"])}
    assert by_id["r0"]["prediction"] == "a retried answer" and by_id["r0"]["metrics"]["rouge1"]["fmeasure"] == 1.0
    assert by_id["r1"]["prediction"] == "summary of article r1"
    assert by_id["r2"]["error"]["code"] == "no-output" and "could not be read" in by_id["r2"]["error"]["message"]
    tally = result["jobs"][0]
    assert (tally["duplicate_outputs"], tally["unmatched_outputs"], tally["unreadable_output_lines"]) == (2, 3, 1)
    assert (result["references_unmatched"], result["references_unmatched_examples"]) == (1, ["ghost"])

    evaluation = result["evaluation"]
    assert (evaluation["records"], evaluation["scored"], evaluation["errors"], evaluation["missing"]) == (5, 3, 1, 1)
    assert evaluation["error_codes"] == {"no-output": 1}


def test_collect_reads_ids_from_the_index_not_the_shards_and_each_object_once(s3):
    run = make_run("summarize")
    shards = [[{"id": i + 10 * s, "text_inputs": "x" * 4000} for i in range(10)] for s in range(3)]
    job = folder(
        run,
        shards,
        [[answer(r["id"]) for r in shard][::-1] for shard in shards],
        [{"id": i, "reference": "summary"} for i in range(30)],
    )
    requests = count_requests(s3)
    result = collect(RunFolder.of(run), [job], OneObjectPerShard(None), s3)
    gets = {key: n for (operation, key), n in requests.items() if operation == "GetObject"}
    assert not any("/shards/" in key for key in gets), gets
    assert set(gets.values()) == {1} and len(gets) == 3 + 3 + 1  # indexes, outputs, references
    assert result["id_index_objects"] == 3
    assert (
        sum(
            n
            for (operation, key), n in requests.items()
            if key == result["predictions_key"] and operation in ("PutObject", "CompleteMultipartUpload")
        )
        == 1
    )


def test_without_an_index_collect_falls_back_to_the_shard(s3):
    run = make_run("summarize")
    job = folder(
        run, [[{"id": 1, "text_inputs": "a"}, {"id": 2, "text_inputs": "b"}]], [[answer(2), answer(1)]], index=False
    )
    result = collect(RunFolder.of(run), [job], OneObjectPerShard(None), s3)
    assert result["id_index_objects"] == 0 and [p["id"] for p in read_lines(s3, result["predictions_key"])] == [1, 2]


def test_collect_writes_the_evaluation_in_its_one_pass_and_never_reads_predictions_back(s3):
    run = make_run("summarize")
    records = [{"id": i, "text_inputs": "t"} for i in range(20)]
    job = folder(
        run,
        [records],
        [[answer(i) for i in range(20)]],
        [{"id": i, "reference": f"summary of article {i % 5}"} for i in range(20)],
    )
    requests = count_requests(s3)
    result = collect(RunFolder.of(run), [job], OneObjectPerShard(None), s3, scorer=RecordScorer("rouge"))
    written = {key for (operation, key) in requests if operation in ("PutObject", "CompleteMultipartUpload")}
    read = {key for (operation, key) in requests if operation == "GetObject"}
    assert result["evaluation_key"] == f"{prefix(run)}evaluation.json" and result["evaluation_key"] in written
    assert result["predictions_key"] in written and result["predictions_key"] not in read
    evaluation = result["evaluation"]
    assert json.loads(s3.get_object(Bucket=BUCKET, Key=result["evaluation_key"])["Body"].read()) == evaluation
    assert evaluation["scored"] == 20 and 0 < evaluation["rouge"]["rouge1"]["fmeasure"] < 1
    assert evaluation["prediction_lines"] == 20 and evaluation["invalid_lines"] == 0


def test_the_evaluation_collect_writes_is_the_one_its_predictions_give(s3):
    """The run-level sums agree, bit for bit, with summing the per-record scores collect wrote to predictions.jsonl."""
    from batch_pipeline.results.evaluation.streaming import RunScores

    run = make_run("summarize")
    records = [{"id": i, "text_inputs": "t"} for i in range(30)]
    job = folder(
        run,
        [records],
        [[answer(i, f"a summary {i % 7} of article") for i in range(30) if i != 4]],
        [{"id": i, "reference": f"summary of article {i % 5}"} for i in range(30)],
    )
    result = collect(RunFolder.of(run), [job], OneObjectPerShard(None), s3, scorer=RecordScorer("rouge"))
    again = RunScores("rouge")
    again.add(read_lines(s3, result["predictions_key"]))
    assert result["evaluation"] == again.report(result)
    assert result["evaluation"]["errors"] == 1 and result["evaluation"]["scored"] == 29


def test_a_pipeline_without_references_is_not_evaluated(s3):
    run = make_run("summarize")
    job = folder(run, [[{"id": 1, "text_inputs": "a"}]], [[answer(1)]])
    result = collect(RunFolder.of(run), [job], OneObjectPerShard(None), s3)
    assert result["evaluation"]["metric"] is None and "skipped" in result["evaluation"]


def test_classification_scores_and_sums_in_collect_like_the_batch_metrics(s3):
    from batch_pipeline.results.evaluation.classification import single_label_metrics

    run = make_run("classify")
    truth = ["pos", "neg", "pos", "neu", "neg", "pos"]
    said = ["Positive", "neg", "neg", "neu.", "pos", "pos"]
    records = [{"id": i, "text_inputs": "t"} for i in range(6)]
    job = folder(
        run,
        [records],
        [[answer(i, text) for i, text in enumerate(said)]],
        [{"id": i, "label": label} for i, label in enumerate(truth)],
    )
    scorer = RecordScorer("classification", known_labels={"pos", "neg", "neu", "positive"})
    result = collect(RunFolder.of(run), [job], OneObjectPerShard(None), s3, scorer=scorer)
    evaluation = result["evaluation"]
    predicted = [p["metrics"]["predicted"] for p in read_lines(s3, result["predictions_key"])]
    expected = single_label_metrics(truth, predicted)
    assert (
        evaluation["accuracy"] == expected["accuracy"]
        and evaluation["confusion_matrix"] == expected["confusion_matrix"]
    )


def test_intake_writes_an_id_index_line_for_line_with_each_shard_even_when_grouped_by_length(tmp_path):
    from batch_pipeline.config.runtime import RuntimePipeline  # noqa: F401 - the pipeline type the helper returns

    base = pipeline("summarize")
    settings = base.pipeline.model_copy(
        update={"sagemaker": base.pipeline.sagemaker.model_copy(update={"group_by_length": True, "instance_count": 2})}
    )
    grouped = base.model_copy(update={"pipeline": settings})
    rng = random.Random(1)
    text = b"".join(
        orjson.dumps({"id": f"doc-{i}", "text_inputs": "w " * rng.randint(1, 300)}) + b"\n" for i in range(200)
    )
    result = run_intake([text], grouped, sink=LocalDirSink(tmp_path))
    assert len(result.shards) >= 2
    for shard in result.shards:
        ids = [orjson.loads(line) for line in (tmp_path / "ids" / shard["name"]).read_bytes().splitlines()]
        shard_ids = [orjson.loads(line)["id"] for line in Path(shard["key"]).read_bytes().splitlines()]
        assert ids == shard_ids and len(ids) == shard["records"]
