"""Memory shape of collect, scoring and the run-level sums included: peak traced memory must not follow the number of
records.

No timing: tracemalloc's peak of Python allocations, at 5,000 and at 20,000 records, over the file-backed S3
stand-in (bench/file_s3.py), which keeps objects on disk so the peak is the step's own. Outputs arrive shuffled
and the join runs in several partitions at both sizes, as a large run would."""

import random
import tracemalloc

import orjson

from batch_pipeline.contracts import Job
from batch_pipeline.jobs.backends import BatchBackend, RawOutput
from batch_pipeline.results.collect import collect
from batch_pipeline.results.evaluation.streaming import RecordScorer
from batch_pipeline.storage.layout import RunFolder, id_index_key
from bench.file_s3 import FileS3

BUCKET = "llmbp-memory-test"
WORDS = "the council said on tuesday that a new bridge would open in spring café naïve".split()


class Shards(BatchBackend):
    name = "test"

    def job_name(self, run, job):
        return "job"

    def submit(self, run, job):
        raise NotImplementedError

    status = stop = submit

    def raw_outputs(self, run, job):
        for key in job.shard_keys:
            yield RawOutput(input_key=key, output_key=key.replace("/shards/", "/raw/job/") + ".out", join="id")


def _text(rng):
    return " ".join(rng.choice(WORDS) for _ in range(50))


def _run_folder(s3, records, rng):
    run = {"run_id": f"mem-{records}", "pipeline": "summarize", "output_bucket": BUCKET}
    prefix = f"runs/summarize/mem-{records}/"
    keys = []
    per_shard = records // 4
    for shard in range(4):
        ids = [f"doc-{shard}-{i}" for i in range(per_shard)]
        key = f"{prefix}shards/part-{shard:05d}.jsonl"
        s3.put_object(
            Bucket=BUCKET, Key=key, Body=b"".join(orjson.dumps({"id": i, "text_inputs": "x"}) + b"\n" for i in ids)
        )
        s3.put_object(Bucket=BUCKET, Key=id_index_key(key), Body=b"".join(orjson.dumps(i) + b"\n" for i in ids))
        shuffled = ids[:]
        rng.shuffle(shuffled)
        s3.put_object(
            Bucket=BUCKET,
            Key=key.replace("/shards/", "/raw/job/") + ".out",
            Body=b"".join(orjson.dumps({"id": i, "generated_texts": [_text(rng)]}) + b"\n" for i in shuffled),
        )
        keys.append(key)
    s3.put_object(
        Bucket=BUCKET,
        Key=f"{prefix}references.jsonl",
        Body=b"".join(
            orjson.dumps({"id": f"doc-{s}-{i}", "reference": _text(rng)}) + b"\n"
            for s in range(4)
            for i in range(per_shard)
        ),
    )
    return run, Job(index=0, name="job", state="succeeded", status="Completed", done=True, shard_keys=keys)


def _peaks(tmp_path, records):
    s3 = FileS3(tmp_path / f"s3-{records}")
    s3.create_bucket(Bucket=BUCKET)
    run, job = _run_folder(s3, records, random.Random(records))
    tracemalloc.start()
    try:
        result = collect(
            RunFolder.of(run), [job], Shards(None), s3, workdir=str(tmp_path), scorer=RecordScorer("rouge")
        )
        collect_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result["succeeded"] == records and result["evaluation"]["scored"] == records
    return collect_peak, result["join_passes"]


def test_collect_and_its_scoring_peak_memory_does_not_grow_with_records(tmp_path, monkeypatch):
    monkeypatch.setenv("COLLECT_BYTES_PER_PASS", str(1024 * 1024))
    # The fixed costs scaled down with the sizes, so both runs are past them (S3 itself wants 5 MiB parts;
    # the file-backed stand-in does not).
    monkeypatch.setattr("batch_pipeline.results.collect.UPLOAD_PART_BYTES", 1024 * 1024)
    small = _peaks(tmp_path, 5_000)
    large = _peaks(tmp_path, 20_000)
    assert small[1] > 1 and large[1] > 1
    before, after = small[0], large[0]
    assert after < 1.5 * before, f"collect: {before / 2**20:.1f} MB at 5k, {after / 2**20:.1f} MB at 20k"


def test_the_check_fires_when_the_join_holds_the_whole_run(tmp_path, monkeypatch):
    """The planted defect: one pass however large the run, so collect's dicts hold every record."""
    monkeypatch.setenv("COLLECT_BYTES_PER_PASS", str(1 << 40))
    small = _peaks(tmp_path, 5_000)
    large = _peaks(tmp_path, 20_000)
    assert small[1] == large[1] == 1
    assert large[0] > 1.5 * small[0]


def test_the_check_fires_when_the_run_level_sums_keep_every_record(tmp_path, monkeypatch):
    """The planted defect: the scores' sums hold every scored record (as a second pass's input would)."""
    from batch_pipeline.results.evaluation.streaming import RunScores

    class Hoarding(RunScores):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.kept = []

        def add(self, records):
            records = list(records)
            self.kept.extend(dict(record) for record in records)
            super().add(records)

    monkeypatch.setenv("COLLECT_BYTES_PER_PASS", str(1024 * 1024))
    monkeypatch.setattr("batch_pipeline.results.collect.UPLOAD_PART_BYTES", 1024 * 1024)
    monkeypatch.setattr("batch_pipeline.results.collect.RunScores", Hoarding)
    small = _peaks(tmp_path, 5_000)
    large = _peaks(tmp_path, 20_000)
    assert large[0] > 1.5 * small[0]
