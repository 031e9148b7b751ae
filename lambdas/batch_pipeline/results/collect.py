"""Collect: join every ended job's raw outputs to the input records and their references, score each record, and
write the run's results, in one pass over the data and in memory that does not grow with the number of records.

Writes `predictions/predictions.jsonl` (one line per valid input record, with its per-record scores) and
`errors/errors.jsonl` (the records the model did not answer, with the reason) into the run folder (keys from
storage.layout: each in a folder of its own, which the Athena tables read), each exactly once, and
`evaluation.json` from the run-level sums of the scores it gave in the same pass (evaluation.streaming.RunScores);
returns the counts for the manifest and the evaluation.

Two stages, both streaming:
  1. Stage: each S3 object is read once. The ids of a job's input object come from intake's id index
     (`ids/<shard name>`, one JSON id per line, ~20 bytes a record), so the 4 KB inputs are not re-read; a run
     written before the index existed, or a derived input (a Bedrock retry file), falls back to the input object.
     Output lines are parsed and normalised; the references file is read. Each side goes to a staging file on
     local disk (/tmp), as `<json key>\\t<json payload>` lines.
  2. Join: when the staged bytes exceed COLLECT_BYTES_PER_PASS (default 32 MiB), every staging file is
     hash-partitioned on its key (crc32) into as many partitions as make each one fit; one partition at a time
     is loaded (its outputs and references in dicts), its ids are walked in input order, each record is joined,
     scored in batches of SCORE_BATCH through rouge-score-rs (evaluation.streaming.RecordScorer) and written
     to S3 through a multipart upload. So memory is bounded by one partition and one upload part, whatever the
     run's size or the order outputs arrive in; /tmp holds the staged data (about a fifth of the raw bytes).
     A run that fits one pass keeps input order; a partitioned one is grouped by partition, input order within.

How output finds its record:
  - The backend lists (input object, output object) pairs (`BatchBackend.raw_outputs`); an output line joins a
    record of its own pair only.
  - join="id": output lines carry the record id (SageMaker text2text echoes `id`, Bedrock `recordId`), in any
    order. A second line for the same record counts as a duplicate; it replaces the first only when the first
    was an error (a retried record).
  - A pair may name the output of a retry of its failed records (`RawOutput.retry_output_key`, Bedrock's
    `retry_failed_records`): its lines are staged after the pair's own, and a retried answer takes the place of
    its record's error (counted per job as `recovered_by_retry`); the retry's own errors, and answers for records
    that had no error, are ignored. This is the retry merge: nothing else rewrites a job's output.
  - A missing `.out` object means none of its records were answered: SageMaker uploads an object's output
    only when the whole object succeeded, so records of a Failed job carry the job's FailureReason.
  - join="position": the zero-shot container answers without an id. SageMaker Batch Transform with
    SplitType=Line and AssembleWith=Line writes the answers of one input object in that object's order,
    so line i of `<shard>.out` answers line i of the shard. A dropped line would shift every later answer
    onto the wrong record, so the echoed `sequence` is compared with the record's `sequences` (read from the
    input object, the one case that needs it): when they differ and the line matches one of the next few
    records instead, the skipped records are reported as having no output. A line that matches none of them
    is trusted by position (the container may have normalised the text).

predictions.jsonl lines: `{"id", "prediction", ["labels", "scores"], ["input_tokens", "output_tokens"], ["error"],
["reference"], ["label"], ["metrics"]}`; a record without an answer has `"prediction": null` and
`"error": {"code", "message"}`, and the same record is in errors.jsonl as
`{"id", "prediction": null, "error": {"code", "message"}, "job", "source"}`. Both files read back through
outputs.parse_output_line; `metrics` is described in evaluation.streaming.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import zlib
from collections import deque
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import orjson

from batch_pipeline import settings
from batch_pipeline.contracts import Job
from batch_pipeline.jobs.backends import BatchBackend, RawOutput
from batch_pipeline.results.evaluation.streaming import SCORE_BATCH, RecordScorer, RunScores, headline, run_evaluation
from batch_pipeline.results.outputs import OutputParseError, load_output_line, normalise_output
from batch_pipeline.results.report import ReportTally
from batch_pipeline.storage import s3io
from batch_pipeline.storage.layout import INTERMEDIATE_TAG, RunFolder, id_index_key
from batch_pipeline.storage.s3io import LineWriter

# How many upcoming records a zero-shot answer is compared with before it is trusted by position.
LOOKAHEAD = 8
# Staged bytes joined in one pass (COLLECT_BYTES_PER_PASS, default 32 MiB, batch_pipeline.settings). A partition's
# dicts take ~4-6x its bytes in memory: 32 MiB stays ~200 MB.
# S3's minimum part size is 5 MiB; 8 MiB parts reach 80 GB within the 10,000-part limit.
UPLOAD_PART_BYTES = 8 * 1024 * 1024
EXAMPLES_KEPT = 10
_CHUNK = 1024 * 1024

NO_OUTPUT = "no output line for this record"
# The third field of a staged output line that came from a retry of failed records.
RETRIED = 1


@dataclass
class JobTally:
    name: str
    state: str
    status: str | None
    failure_reason: str | None
    output_uri: str | None
    records: int = 0
    processed: int = 0
    succeeded: int = 0
    failed: int = 0
    unmatched_outputs: int = 0
    duplicate_outputs: int = 0
    unreadable_output_lines: int = 0
    missing_output_objects: int = 0
    retried: bool = False
    recovered_by_retry: int = 0
    backend_metrics: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Object:
    """One (input, output) pair being collected: what a record's error message needs to say about it."""

    job: Job
    tally: JobTally
    raw: RawOutput
    parse_problems: int = 0
    first_problem: str | None = None

    def problem(self, text: str) -> None:
        self.parse_problems += 1
        self.tally.unreadable_output_lines += 1
        if self.first_problem is None:
            self.first_problem = text


def collect(
    folder: RunFolder,
    jobs: list[Job],
    backend: BatchBackend,
    s3: Any,
    *,
    workdir: str | None = None,
    scorer: RecordScorer | None = None,
) -> dict[str, Any]:
    """Collect a run. `scorer` overrides the pipeline's evaluation (None: from the pipeline's `evaluation`)."""
    bucket = folder.bucket
    tmp = tempfile.mkdtemp(prefix="collect-", dir=workdir)
    try:
        stage = _Stage(s3, bucket, tmp)
        for job in jobs:
            tally = JobTally(
                name=job.name or backend.job_name(folder, job),
                state=job.state or "failed",
                status=job.status,
                failure_reason=job.failure_reason,
                output_uri=job.output_uri,
            )
            for raw in backend.raw_outputs(folder, job):
                stage.add_object(_Object(job, tally, raw))
            tally.backend_metrics = backend.job_metrics(folder, job) if tally.state != "queued" else {}
            stage.tallies.append(tally)
        stage.add_references(folder.references_key)
        stage.close()

        scorer = scorer if scorer is not None else _pipeline_scorer(backend, stage)
        predictions_at, errors_at = folder.predictions_key, folder.errors_key
        with (
            LineWriter(s3, bucket, predictions_at, UPLOAD_PART_BYTES) as predictions,
            LineWriter(s3, bucket, errors_at, UPLOAD_PART_BYTES) as errors,
        ):
            joined = _join(stage, scorer, predictions, errors, _bytes_per_pass())
        tagged = tag_raw_outputs(s3, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    tallies = stage.tallies

    def total(name: str) -> int:
        return sum(getattr(t, name) for t in tallies)

    result = {
        "records": total("records"),
        "processed": total("processed"),
        "succeeded": total("succeeded"),
        "failed": total("failed"),
        "unmatched_outputs": total("unmatched_outputs"),
        "duplicate_outputs": total("duplicate_outputs"),
        "unreadable_output_lines": total("unreadable_output_lines"),
        "positional_mismatches": stage.misaligned_checks,
        "references_joined": joined.references_joined,
        "references_unmatched": joined.references_unmatched,
        "references_unmatched_examples": joined.unmatched_examples,
        "joined_by": "position" if stage.positional else "id",
        "id_index_objects": stage.indexed_objects,
        "join_passes": joined.passes,
        "scoring": _scoring_summary(scorer),
        "input_tokens": joined.input_tokens,
        "output_tokens": joined.output_tokens,
        "outputs": {"predictions": folder.uri(predictions_at), "errors": folder.uri(errors_at)},
        "predictions_key": predictions_at,
        "errors_key": errors_at,
        "jobs": [t.as_dict() for t in tallies],
        # The jobs' final states as collect read them: the manifest step reads them back from collect.json instead
        # of listing the run's jobs/ folder a second time.
        "job_states": [job.stored() for job in jobs],
        # Per job that resubmitted its failed records: how many retried answers took the place of an error.
        "recovered_by_retry": {t.name: t.recovered_by_retry for t in tallies if t.retried},
        "backend_counts": backend_counts(tallies),
        "raw_objects_tagged": tagged,
        "report": joined.report.summary(),
    }
    # Scored in this same pass: the run-level sums become evaluation.json, and nothing reads predictions.jsonl back.
    metric = scorer.metric if scorer is not None else _pipeline_metric(backend)
    evaluation = run_evaluation(metric, joined.scores, result)
    s3io.put_json(s3, bucket, folder.evaluation_key, evaluation, indent=2)
    return result | {"evaluation": evaluation, "evaluation_key": folder.evaluation_key}


# What collect's result holds per job: kept in the run folder (collect.json, RunFolder.collect_details_key), not in
# the state, which would otherwise grow by about 665 bytes a job (the tallies alone) and pass Step Functions' 256 KB
# payload quota near 390 jobs.
PER_JOB_FIELDS = ("jobs", "recovered_by_retry", "job_states")


def state_result(result: dict[str, Any], details_key: str) -> dict[str, Any]:
    """Collect's result as the state carries it: the totals and keys, with the per-job tallies left at details_key
    and only the evaluation's headline (the whole of it is evaluation.json, at evaluation_key)."""
    state = {key: value for key, value in result.items() if key not in PER_JOB_FIELDS}
    return state | {
        "details_key": details_key,
        "jobs_collected": len(result.get("jobs", [])),
        "evaluation": headline(result.get("evaluation")),
    }


def with_details(collect_state: dict[str, Any], details: dict[str, Any]) -> dict[str, Any]:
    """The inverse of state_result, for the manifest step: the state's totals with the per-job tallies and the jobs'
    final states read back."""
    return collect_state | {key: details[key] for key in PER_JOB_FIELDS if key in details}


def _bytes_per_pass() -> int:
    return max(1, settings.current().collect_bytes_per_pass)


def _pipeline_metric(backend: BatchBackend) -> str:
    """The pipeline's evaluation ("rouge", "classification" or "none")."""
    options = getattr(getattr(backend, "pipeline", None), "pipeline", None)
    return str(getattr(options, "evaluation", "none"))


def _pipeline_scorer(backend: BatchBackend, stage: _Stage) -> RecordScorer | None:
    metric = _pipeline_metric(backend)
    if metric not in ("rouge", "classification") or not stage.references:
        return None
    return RecordScorer(metric, known_labels=stage.labels, multi_label=stage.multi_label)


def _scoring_summary(scorer: RecordScorer | None) -> dict[str, Any] | None:
    if scorer is None:
        return None
    summary: dict[str, Any] = {
        "metric": scorer.metric,
        "scored": scorer.scored,
        "options": {"use_stemmer": scorer.use_stemmer},
    }
    if scorer.metric == "classification":
        summary["multi_label"] = scorer.multi_label
        summary["threshold"] = scorer.threshold
    return summary


def tag_raw_outputs(s3: Any, folder: RunFolder) -> int:
    """Tag what the backends wrote under raw/ as intermediate, so the lifecycle rule expires it like the shards.

    SageMaker and Bedrock write their output objects without our tag, and a lifecycle rule cannot match a
    prefix in the middle of a key (runs/<pipeline>/<run>/raw/); predictions.jsonl keeps the joined results."""
    count = 0
    for key in s3io.list_keys(s3, folder.bucket, folder.raw_prefix):
        s3io.tag_object(s3, folder.bucket, key, INTERMEDIATE_TAG)
        count += 1
    return count


def backend_counts(tallies: list[JobTally]) -> dict[str, int]:
    """The backend's own counts summed over jobs (Bedrock's manifest.json.out: records and tokens); {} for SageMaker."""
    summed: dict[str, int] = {}
    for tally in tallies:
        for name, value in tally.backend_metrics.items():
            if isinstance(value, int) and not isinstance(value, bool):
                summed[name] = summed.get(name, 0) + value
    return summed


# ---------------------------------------------------------------- stage 1: every object read once, staged on disk


def _staged(key: str, payload: Any) -> bytes:
    # A JSON string never holds a raw tab, so the first tab ends the key; partitioning needs no parse.
    return orjson.dumps(key) + b"\t" + orjson.dumps(payload) + b"\n"


def _slim(output: dict[str, Any]) -> dict[str, Any]:
    """The normalised output without its id and without empty fields: what the join needs, staged small."""
    return {name: value for name, value in output.items() if value is not None and name != "id"}


class _Stage:
    """Staging files: ids (`[seq, object, id]`, input order), outputs (`[object, output]`), references (`fields`)."""

    def __init__(self, s3: Any, bucket: str, tmp: str):
        self.s3, self.bucket, self.tmp = s3, bucket, tmp
        self.paths = {name: os.path.join(tmp, f"{name}.staged") for name in ("ids", "outputs", "references")}
        # Open for the stage's lifetime (written by add_*, closed before the join), so no `with` here.
        self.files = {name: open(path, "wb", buffering=_CHUNK) for name, path in self.paths.items()}  # noqa: SIM115
        self.objects: list[_Object] = []
        self.tallies: list[JobTally] = []
        self.seq = 0
        self.references = 0
        self.labels: set[str] = set()
        self.multi_label = False
        self.misaligned_checks = 0
        self.positional = False
        self.indexed_objects = 0

    def close(self) -> None:
        for handle in self.files.values():
            handle.close()

    def _record(self, index: int, record_id: Any) -> str:
        key = str(record_id)
        self.files["ids"].write(_staged(key, [self.seq, index, record_id]))
        self.seq += 1
        return key

    def _output(self, index: int, key: str, output: dict[str, Any], *, retried: bool = False) -> None:
        if output.get("labels"):
            self.labels.update(str(label) for label in output["labels"])
        self.files["outputs"].write(_staged(key, [index, output, RETRIED] if retried else [index, output]))

    def add_object(self, obj: _Object) -> None:
        index = len(self.objects)
        self.objects.append(obj)
        lines = s3io.lines_if_exists(self.s3, self.bucket, obj.raw.output_key)
        if lines is None:
            obj.tally.missing_output_objects += 1
        if obj.raw.join == "position":
            self.positional = True
            self._by_position(index, obj, _outputs(lines, obj.raw.output_key))
            return
        for record_id in self._ids(obj.raw):
            self._record(index, record_id)
        for output in _outputs(lines, obj.raw.output_key):
            if output.record is None or output.record["id"] is None:
                obj.problem(output.problem or "an output line without an id")
            else:
                self._output(index, str(output.record["id"]), _slim(output.record))
        if obj.raw.retry_output_key:
            obj.tally.retried = True
            self._add_retry(index, obj.raw.retry_output_key)

    def _add_retry(self, index: int, key: str) -> None:
        """The answers of the retry of this pair's failed records, staged after the pair's own (so the join sees
        them second, in every partition). Unreadable lines and errors are left out: the first error stands."""
        for output in _outputs(s3io.lines_if_exists(self.s3, self.bucket, key), key):
            record = output.record
            if record is not None and record["id"] is not None and record.get("error") is None:
                self._output(index, str(record["id"]), _slim(record), retried=True)

    def _ids(self, raw: RawOutput) -> Iterator[Any]:
        index_key = id_index_key(raw.input_key)
        lines = s3io.lines_if_exists(self.s3, self.bucket, index_key) if index_key else None
        if lines is not None:
            self.indexed_objects += 1
            return map(orjson.loads, lines)
        return (record.id for record in _inputs(self.s3, self.bucket, raw))

    def _by_position(self, index: int, obj: _Object, outputs: Iterator[_Output]) -> None:
        window: deque[_Input] = deque()
        inputs = _inputs(self.s3, self.bucket, obj.raw)

        def fill() -> None:
            while len(window) <= LOOKAHEAD:
                record = next(inputs, None)
                if record is None:
                    return
                window.append(record)

        def take() -> str:
            return self._record(index, window.popleft().id)

        for output in outputs:
            fill()
            if not window:
                obj.tally.unmatched_outputs += 1
                continue
            if output.record is None:
                # Position still tells whose answer this line was meant to be.
                obj.tally.unreadable_output_lines += 1
                self._output(index, take(), {"unreadable": output.problem or "unreadable output line"})
                continue
            skip = 0
            if _matches(window[0], output) is False:
                later = next((i for i in range(1, len(window)) if _matches(window[i], output)), None)
                if later is None:
                    self.misaligned_checks += 1
                else:
                    skip = later
            for _ in range(skip):
                take()  # no output line: the join reports it missing
            self._output(index, take(), _slim(output.record))
        fill()
        while window:
            take()
            fill()

    def add_references(self, key: str) -> None:
        for number, line in enumerate(s3io.lines_if_exists(self.s3, self.bucket, key) or (), start=1):
            try:
                record = orjson.loads(line)
                record_id = record["id"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                raise ValueError(f"s3://{self.bucket}/{key} line {number} is not a JSON record with an id") from None
            fields = {name: record[name] for name in ("reference", "label") if record.get(name) is not None}
            if not fields:
                continue
            label = fields.get("label")
            if label is not None:
                self.multi_label |= isinstance(label, list)
                self.labels.update(map(str, label) if isinstance(label, list) else (str(label),))
            self.references += 1
            self.files["references"].write(_staged(str(record_id), fields))


@dataclass
class _Input:
    id: Any
    check: Any


def _inputs(s3: Any, bucket: str, raw: RawOutput) -> Iterator[_Input]:
    lines = s3io.lines_if_exists(s3, bucket, raw.input_key)
    if lines is None:
        raise FileNotFoundError(f"input object s3://{bucket}/{raw.input_key} of a job is missing")
    for number, line in enumerate(lines, start=1):
        try:
            record = orjson.loads(line)
            record_id = record[raw.input_id_field]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise ValueError(
                f"s3://{bucket}/{raw.input_key} line {number} is not a JSON record with {raw.input_id_field!r}"
            ) from None
        yield _Input(record_id, record.get(raw.check_field) if raw.check_field else None)


@dataclass
class _Output:
    record: dict[str, Any] | None
    sequence: Any = None
    problem: str | None = None


def _outputs(lines: Iterator[bytes] | None, key: str) -> Iterator[_Output]:
    for number, line in enumerate(lines or (), start=1):
        try:
            loaded = load_output_line(line)
            record = normalise_output(loaded)
        except OutputParseError as error:
            yield _Output(None, problem=f"{key} output line {number}: {error}")
            continue
        first = loaded[0] if isinstance(loaded, list) and loaded else loaded
        yield _Output(record, sequence=first.get("sequence") if isinstance(first, dict) else None)


def _normal(text: Any) -> Any:
    # str.split() splits on the same Unicode whitespace as re's \s and drops the ends, about three times faster than
    # a regex substitution over a 4 KB article (which was 70% of a zero-shot collect's CPU).
    return " ".join(text.split()) if isinstance(text, str) else None


def _matches(record: _Input, output: _Output) -> bool | None:
    """True/False when the line can be checked against the record; None when nothing says either way."""
    if output.record is not None and output.record["id"] is not None:
        return str(output.record["id"]) == str(record.id)
    if isinstance(record.check, str) and record.check == output.sequence:
        return True  # the container echoed the text as sent: no normalising needed
    expected, echoed = _normal(record.check), _normal(output.sequence)
    if expected is None or echoed is None:
        return None
    same: bool = expected == echoed
    return same


# ---------------------------------------------------------------- stage 2: the join, one partition at a time


def _partition(path: str, parts: int, tmp: str, name: str) -> list[str]:
    paths = [os.path.join(tmp, f"{name}-{i:04d}") for i in range(parts)]
    with ExitStack() as stack:
        files = [stack.enter_context(open(p, "wb", buffering=256 * 1024)) for p in paths]
        with open(path, "rb") as staged:
            for line in staged:
                files[zlib.crc32(line[: line.index(b"\t")]) % parts].write(line)
    os.remove(path)
    return paths


def _payloads(path: str) -> Iterator[tuple[bytes, Any]]:
    with open(path, "rb") as handle:
        for line in handle:
            key, _, payload = line.partition(b"\t")
            yield key, orjson.loads(payload)


@dataclass
class _Joined:
    passes: int = 0
    references_joined: int = 0
    references_unmatched: int = 0
    unmatched_examples: list[Any] = field(default_factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None
    # What report.html shows of the records (histogram, best/worst, errors by code), gathered in this same pass.
    report: ReportTally = field(default_factory=ReportTally)
    # The run-level sums of the scores (evaluation.json), None when nothing is scored.
    scores: RunScores | None = None

    def add_tokens(self, output: dict[str, Any]) -> None:
        if output.get("input_tokens") is not None:
            self.input_tokens = (self.input_tokens or 0) + output["input_tokens"]
        if output.get("output_tokens") is not None:
            self.output_tokens = (self.output_tokens or 0) + output["output_tokens"]


def _join(
    stage: _Stage, scorer: RecordScorer | None, predictions: LineWriter, errors: LineWriter, bytes_per_pass: int
) -> _Joined:
    sizes = {name: os.path.getsize(path) for name, path in stage.paths.items()}
    parts = max(1, math.ceil(sum(sizes.values()) / bytes_per_pass))
    joined = _Joined(passes=parts, scores=RunScores(scorer.metric) if scorer is not None else None)
    if parts == 1:
        groups = [tuple(stage.paths[name] for name in ("ids", "outputs", "references"))]
    else:
        split = {name: _partition(path, parts, stage.tmp, name) for name, path in stage.paths.items()}
        groups = list(zip(split["ids"], split["outputs"], split["references"], strict=True))
    for ids_path, outputs_path, references_path in groups:
        _join_partition(stage, scorer, joined, ids_path, outputs_path, references_path, predictions, errors)
        for path in (ids_path, outputs_path, references_path):
            os.remove(path)
    return joined


def _join_partition(
    stage: _Stage,
    scorer: RecordScorer | None,
    joined: _Joined,
    ids_path: str,
    outputs_path: str,
    references_path: str,
    predictions: LineWriter,
    errors: LineWriter,
) -> None:
    objects = stage.objects
    answers = _partition_answers(objects, outputs_path)
    references = dict(_payloads(references_path))

    batch: list[dict[str, Any]] = []

    def flush() -> None:
        if scorer is not None:
            scorer.score(batch)
        if joined.scores is not None:
            joined.scores.add(batch)
        joined.report.add(batch)
        predictions.write(b"".join(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE) for line in batch))
        batch.clear()

    for key, (_, index, record_id) in _payloads(ids_path):
        obj = objects[index]
        line = _record_line(obj, record_id, answers.pop((index, key), None), joined, errors)
        fields = references.pop(key, None)
        if fields:
            line.update(fields)
            joined.references_joined += 1
        batch.append(line)
        if len(batch) >= SCORE_BATCH:
            flush()
    if batch:
        flush()
    for index, _ in answers:
        objects[index].tally.unmatched_outputs += 1
    joined.references_unmatched += len(references)
    for key in references:
        if len(joined.unmatched_examples) >= EXAMPLES_KEPT:
            break
        joined.unmatched_examples.append(orjson.loads(key))


def _partition_answers(objects: list[_Object], outputs_path: str) -> dict[tuple[int, bytes], dict[str, Any]]:
    """(object index, id key) -> output. A duplicate counts as unmatched; it replaces an error, never an answer.
    A retried answer (staged after the first answers) replaces its record's error, and nothing else."""
    answers: dict[tuple[int, bytes], dict[str, Any]] = {}
    for key, (index, output, *retried) in _payloads(outputs_path):
        previous = answers.get((index, key))
        if retried:
            if previous is not None and previous.get("error") is not None:
                answers[(index, key)] = output
                objects[index].tally.recovered_by_retry += 1
            continue
        if previous is not None:
            objects[index].tally.duplicate_outputs += 1
            objects[index].tally.unmatched_outputs += 1
            if previous.get("error") is None or output.get("error") is not None:
                continue
        answers[(index, key)] = output
    return answers


def _record_line(
    obj: _Object, record_id: Any, output: dict[str, Any] | None, joined: _Joined, errors: LineWriter
) -> dict[str, Any]:
    tally = obj.tally
    tally.records += 1
    if output is None:
        return _failed(obj, record_id, _missing_error(obj), None, errors)
    tally.processed += 1
    if "unreadable" in output:
        return _failed(obj, record_id, {"code": "parse-error", "message": output["unreadable"]}, None, errors)
    joined.add_tokens(output)
    if output.get("error") is not None:
        return _failed(obj, record_id, output["error"], output, errors)
    if output.get("prediction") is None:
        return _failed(
            obj, record_id, {"code": "empty-output", "message": "the output line carries no prediction"}, output, errors
        )
    line = {"id": record_id, "prediction": output["prediction"]}
    if output.get("labels") is not None:
        line["labels"], line["scores"] = output["labels"], output.get("scores")
    _add_tokens(line, output)
    tally.succeeded += 1
    return line


def _missing_error(obj: _Object) -> dict[str, Any]:
    job = obj.job
    state = job.state
    if state in ("failed", "stopped", "queued", "running"):
        # The job ended without answering; its own reason says more than "no output line".
        reason = job.failure_reason or f"the job ended {job.status or state} without a reason"
        return {"code": f"job-{state}", "message": f"job {obj.tally.name} {job.status or state}: {reason}"}
    if obj.parse_problems:
        return {
            "code": "no-output",
            "message": (
                f"{NO_OUTPUT}; {obj.parse_problems} line(s) of {obj.raw.output_key} could not be read "
                f"(first: {obj.first_problem})"
            ),
        }
    return {"code": "no-output", "message": NO_OUTPUT}


def _failed(
    obj: _Object, record_id: Any, error: dict[str, Any], output: dict[str, Any] | None, errors: LineWriter
) -> dict[str, Any]:
    obj.tally.failed += 1
    line = {"id": record_id, "prediction": None, "error": error}
    if output is not None:
        _add_tokens(line, output)
    errors.write(
        orjson.dumps({**line, "job": obj.tally.name, "source": obj.raw.input_key}, option=orjson.OPT_APPEND_NEWLINE)
    )
    return line


def _add_tokens(line: dict[str, Any], output: dict[str, Any]) -> None:
    if output.get("input_tokens") is not None:
        line["input_tokens"] = output["input_tokens"]
    if output.get("output_tokens") is not None:
        line["output_tokens"] = output["output_tokens"]


__all__ = ["NO_OUTPUT", "JobTally", "collect", "tag_raw_outputs"]
