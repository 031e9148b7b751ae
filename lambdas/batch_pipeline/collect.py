"""Collect: join every ended job's raw outputs to the input records and write the run's results.

Writes `predictions.jsonl` (one line per valid input record) and `errors.jsonl` (the records the model
did not answer, with the reason) into the run folder and returns the counts for the manifest.

How output finds its record:
  - The backend lists (input object, output object) pairs (`BatchBackend.raw_outputs`); each pair is
    joined on its own, so memory is bounded by one object, not by the run.
  - join="id": output lines carry the record id (SageMaker text2text echoes `id`, Bedrock `recordId`).
    Order is free: lines that arrive ahead of their record wait in a dict until it comes up, so an
    output in input order costs O(1) memory and a shuffled one at most one object's worth.
  - A missing `.out` object means none of its records were answered: SageMaker uploads an object's output
    only when the whole object succeeded, so records of a Failed job carry the job's FailureReason.
  - join="position": the zero-shot container answers without an id. SageMaker Batch Transform with
    SplitType=Line and AssembleWith=Line writes the answers of one input object in that object's order,
    so line i of `<shard>.out` answers line i of the shard. A dropped line would shift every later answer
    onto the wrong record, so the echoed `sequence` is compared with the record's `sequences`: when they
    differ and the line matches one of the next few records instead, the skipped records are reported
    as having no output. A line that matches none of them is trusted by position (the container may
    have normalised the text).

predictions.jsonl lines: `{"id", "prediction", ["labels", "scores"], ["reference"], ["label"],
["input_tokens", "output_tokens"], ["error"]}`; a record without an answer has `"prediction": null` and
`"error": {"code", "message"}`, and the same record is in errors.jsonl as
`{"id", "prediction": null, "error": {"code", "message"}, "job", "source"}`. Both files read back through
outputs.parse_output_line. References (references.jsonl) are joined by id; when that file is larger than
COLLECT_REFERENCE_BYTES_PER_PASS, the join runs in hash partitions on local disk, so predictions.jsonl is
then grouped by partition rather than in input order.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import IO, Any, Iterable, Iterator

import orjson

from batch_pipeline.backends import BatchBackend, RawOutput
from batch_pipeline.backends.runs import run_bucket, run_prefix, s3_uri
from batch_pipeline.layout import INTERMEDIATE_TAG
from batch_pipeline.outputs import OutputParseError, load_output_line, normalise_output

PREDICTIONS = "predictions.jsonl"
ERRORS = "errors.jsonl"
REFERENCES = "references.jsonl"
# How many upcoming records a zero-shot answer is compared with before it is trusted by position.
LOOKAHEAD = 8
# A dict of references costs several times the bytes on disk; 64 MiB of file stays well inside 2 GB.
DEFAULT_REFERENCE_BYTES_PER_PASS = 64 * 1024 * 1024
_CHUNK = 1024 * 1024
_SPACE = re.compile(r"\s+")

NO_OUTPUT = "no output line for this record"


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
    unreadable_output_lines: int = 0
    missing_output_objects: int = 0
    backend_metrics: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class _Totals:
    input_tokens: int | None = None
    output_tokens: int | None = None
    misaligned_checks: int = 0

    def add_tokens(self, output: dict) -> None:
        if output.get("input_tokens") is not None:
            self.input_tokens = (self.input_tokens or 0) + output["input_tokens"]
        if output.get("output_tokens") is not None:
            self.output_tokens = (self.output_tokens or 0) + output["output_tokens"]


def job_states(jobs: Iterable[dict]) -> list[dict]:
    """The Map's result items are whole iteration states (`{"run", "job", ...}`); plain job states work too."""
    return [item["job"] if isinstance(item.get("job"), dict) else item for item in jobs]


def collect(run: dict, jobs: list[dict], backend: BatchBackend, s3: Any, *, workdir: str | None = None) -> dict:
    bucket, prefix = run_bucket(run), run_prefix(run)
    tmp = tempfile.mkdtemp(prefix="collect-", dir=workdir)
    try:
        joined_path, errors_path = os.path.join(tmp, "joined.jsonl"), os.path.join(tmp, ERRORS)
        totals = _Totals()
        tallies = []
        with open(joined_path, "wb") as joined, open(errors_path, "wb") as errors:
            for job in job_states(jobs):
                tally = JobTally(
                    name=job["name"], state=job.get("state", "failed"), status=job.get("status"),
                    failure_reason=job.get("failure_reason"), output_uri=job.get("output_uri"),
                )
                for raw in backend.raw_outputs(run, job):
                    _join_object(s3, bucket, raw, job, tally, totals, joined, errors)
                tally.backend_metrics = backend.job_metrics(run, job) if tally.state != "queued" else {}
                tallies.append(tally)

        predictions_path = os.path.join(tmp, PREDICTIONS)
        references = _attach_references(s3, bucket, f"{prefix}{REFERENCES}", joined_path, predictions_path, tmp)

        predictions_key, errors_key = f"{prefix}{PREDICTIONS}", f"{prefix}{ERRORS}"
        for path, key in ((predictions_path, predictions_key), (errors_path, errors_key)):
            s3.upload_file(path, bucket, key, ExtraArgs={"ContentType": "application/x-ndjson"})
        tagged = tag_raw_outputs(s3, bucket, prefix)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    total = lambda name: sum(getattr(t, name) for t in tallies)  # noqa: E731 - a local shorthand
    return {
        "records": total("records"),
        "processed": total("processed"),
        "succeeded": total("succeeded"),
        "failed": total("failed"),
        "unmatched_outputs": total("unmatched_outputs"),
        "unreadable_output_lines": total("unreadable_output_lines"),
        "positional_mismatches": totals.misaligned_checks,
        "references_joined": references,
        "input_tokens": totals.input_tokens,
        "output_tokens": totals.output_tokens,
        "outputs": {"predictions": s3_uri(bucket, predictions_key), "errors": s3_uri(bucket, errors_key)},
        "predictions_key": predictions_key,
        "errors_key": errors_key,
        "jobs": [t.as_dict() for t in tallies],
        "backend_counts": backend_counts(tallies),
        "raw_objects_tagged": tagged,
    }


def tag_raw_outputs(s3: Any, bucket: str, prefix: str) -> int:
    """Tag what the backends wrote under raw/ as intermediate, so the lifecycle rule expires it like the shards.

    SageMaker and Bedrock write their output objects without our tag, and a lifecycle rule cannot match a
    prefix in the middle of a key (runs/<pipeline>/<run>/raw/); predictions.jsonl keeps the joined results."""
    count = 0
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=f"{prefix}raw/"):
        for item in page.get("Contents", []):
            s3.put_object_tagging(Bucket=bucket, Key=item["Key"], Tagging={"TagSet": [
                {"Key": INTERMEDIATE_TAG[0], "Value": INTERMEDIATE_TAG[1]}]})
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


# ---------------------------------------------------------------- reading S3 line by line


def _lines(s3: Any, bucket: str, key: str) -> Iterator[bytes] | None:
    """The object's non-blank lines, streamed; None when the object does not exist."""
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    except Exception as error:
        code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "404", "NotFound"):
            return None
        raise

    def generate() -> Iterator[bytes]:
        pending = b""
        try:
            for chunk in body.iter_chunks(_CHUNK):
                parts = (pending + chunk).split(b"\n")
                pending = parts.pop()
                for part in parts:
                    if part.strip():
                        yield part
            if pending.strip():
                yield pending
        finally:
            body.close()

    return generate()


@dataclass
class _Input:
    id: Any
    key: str
    check: Any


def _inputs(s3: Any, bucket: str, raw: RawOutput) -> Iterator[_Input]:
    lines = _lines(s3, bucket, raw.input_key)
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
        yield _Input(record_id, str(record_id), record.get(raw.check_field) if raw.check_field else None)


@dataclass
class _Output:
    record: dict | None
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


# ---------------------------------------------------------------- the join


class _Sink:
    """Writes joined records and errors for one object and keeps its job's tally."""

    def __init__(self, raw: RawOutput, job: dict, tally: JobTally, totals: _Totals, joined: IO[bytes], errors: IO[bytes]):
        self.raw, self.job, self.tally, self.totals = raw, job, tally, totals
        self.joined, self.errors = joined, errors
        self.parse_problems: list[str] = []

    def answered(self, record: _Input, output: dict) -> None:
        self.tally.records += 1
        self.tally.processed += 1
        self.totals.add_tokens(output)
        if output["error"] is not None:
            self._failed(record, output["error"], output)
            return
        if output["prediction"] is None:
            self._failed(record, {"code": "empty-output", "message": "the output line carries no prediction"}, output)
            return
        line = {"id": record.id, "prediction": output["prediction"]}
        if output["labels"] is not None:
            line["labels"], line["scores"] = output["labels"], output["scores"]
        _add_tokens(line, output)
        self.tally.succeeded += 1
        self.joined.write(orjson.dumps(line) + b"\n")

    def unreadable(self, record: _Input, problem: str) -> None:
        self.tally.records += 1
        self.tally.processed += 1
        self._failed(record, {"code": "parse-error", "message": problem}, None)

    def missing(self, record: _Input) -> None:
        self.tally.records += 1
        state = self.job.get("state")
        if state in ("failed", "stopped", "queued", "running"):
            # The job ended without answering; its own reason says more than "no output line".
            reason = self.job.get("failure_reason") or f"the job ended {self.job.get('status') or state} without a reason"
            error = {"code": f"job-{state}", "message": f"job {self.job['name']} {self.job.get('status') or state}: {reason}"}
        elif self.parse_problems:
            error = {"code": "no-output", "message": (
                f"{NO_OUTPUT}; {len(self.parse_problems)} line(s) of {self.raw.output_key} could not be read "
                f"(first: {self.parse_problems[0]})")}
        else:
            error = {"code": "no-output", "message": NO_OUTPUT}
        self._failed(record, error, None)

    def _failed(self, record: _Input, error: dict, output: dict | None) -> None:
        self.tally.failed += 1
        line = {"id": record.id, "prediction": None, "error": error}
        if output is not None:
            _add_tokens(line, output)
        self.joined.write(orjson.dumps(line) + b"\n")
        self.errors.write(orjson.dumps({**line, "job": self.job["name"], "source": self.raw.input_key}) + b"\n")


def _add_tokens(line: dict, output: dict) -> None:
    if output.get("input_tokens") is not None:
        line["input_tokens"] = output["input_tokens"]
    if output.get("output_tokens") is not None:
        line["output_tokens"] = output["output_tokens"]


def _join_object(s3: Any, bucket: str, raw: RawOutput, job: dict, tally: JobTally, totals: _Totals,
                 joined: IO[bytes], errors: IO[bytes]) -> None:
    sink = _Sink(raw, job, tally, totals, joined, errors)
    lines = _lines(s3, bucket, raw.output_key)
    if lines is None:
        tally.missing_output_objects += 1
    inputs, outputs = _inputs(s3, bucket, raw), _outputs(lines, raw.output_key)
    if raw.join == "position":
        leftovers = _join_by_position(inputs, outputs, sink, totals)
    else:
        leftovers = _join_by_id(inputs, outputs, sink)
    tally.unmatched_outputs += leftovers
    tally.unreadable_output_lines += len(sink.parse_problems)


def _join_by_id(inputs: Iterator[_Input], outputs: Iterator[_Output], sink: _Sink) -> int:
    ahead: dict[str, dict] = {}
    duplicates = 0
    for record in inputs:
        if record.key in ahead:
            sink.answered(record, ahead.pop(record.key))
            continue
        for output in outputs:
            if output.record is None or output.record["id"] is None:
                sink.parse_problems.append(output.problem or "an output line without an id")
                continue
            key = str(output.record["id"])
            if key == record.key:
                sink.answered(record, output.record)
                break
            if key in ahead:
                duplicates += 1
            else:
                ahead[key] = output.record
        else:
            sink.missing(record)
    rest = 0
    for output in outputs:
        if output.record is None or output.record["id"] is None:
            sink.parse_problems.append(output.problem or "an output line without an id")
        else:
            rest += 1
    return len(ahead) + duplicates + rest


def _normal(text: Any) -> Any:
    return _SPACE.sub(" ", text).strip() if isinstance(text, str) else None


def _matches(record: _Input, output: _Output) -> bool | None:
    """True/False when the line can be checked against the record; None when nothing says either way."""
    if output.record is not None and output.record["id"] is not None:
        return str(output.record["id"]) == record.key
    expected, echoed = _normal(record.check), _normal(output.sequence)
    if expected is None or echoed is None:
        return None
    return expected == echoed


def _join_by_position(inputs: Iterator[_Input], outputs: Iterator[_Output], sink: _Sink, totals: _Totals) -> int:
    window: deque[_Input] = deque()
    leftovers = 0

    def fill() -> None:
        while len(window) <= LOOKAHEAD:
            record = next(inputs, None)
            if record is None:
                return
            window.append(record)

    for output in outputs:
        fill()
        if not window:
            leftovers += 1
            continue
        if output.record is None:
            # Position still tells whose answer this line was meant to be.
            sink.unreadable(window.popleft(), output.problem or "unreadable output line")
            continue
        skip = 0
        if _matches(window[0], output) is False:
            later = next((i for i in range(1, len(window)) if _matches(window[i], output)), None)
            if later is None:
                totals.misaligned_checks += 1
            else:
                skip = later
        for _ in range(skip):
            sink.missing(window.popleft())
        sink.answered(window.popleft(), output.record)
    fill()
    while window:
        sink.missing(window.popleft())
        fill()
    return leftovers


# ---------------------------------------------------------------- references


def _reference_fields(line: bytes) -> tuple[str, dict] | None:
    record = orjson.loads(line)
    fields = {name: record[name] for name in ("reference", "label") if record.get(name) is not None}
    return (str(record["id"]), fields) if fields else None


def _attach_references(s3: Any, bucket: str, key: str, joined_path: str, out_path: str, tmp: str) -> int:
    """Copy joined -> out, adding reference/label by id. Returns how many records got one."""
    try:
        size = s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
    except Exception as error:
        code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
        if code not in ("NoSuchKey", "404", "NotFound"):
            raise
        os.replace(joined_path, out_path)
        return 0
    budget = int(os.environ.get("COLLECT_REFERENCE_BYTES_PER_PASS", DEFAULT_REFERENCE_BYTES_PER_PASS))
    passes = max(1, math.ceil(size / max(budget, 1)))
    references = _lines(s3, bucket, key) or iter(())
    if passes == 1:
        table = dict(filter(None, map(_reference_fields, references)))
        with open(joined_path, "rb") as joined, open(out_path, "wb") as out:
            return _annotate(joined, table, out)

    # Hash-partition both sides on disk so each pass holds 1/passes of the references in memory.
    def partition(lines: Iterable[bytes], name: str, key_of) -> list[str]:
        paths = [os.path.join(tmp, f"{name}-{i:04d}") for i in range(passes)]
        files = [open(path, "wb") for path in paths]
        try:
            for line in lines:
                files[zlib.crc32(key_of(line).encode()) % passes].write(line.rstrip(b"\n") + b"\n")
        finally:
            for handle in files:
                handle.close()
        return paths

    reference_parts = partition(references, "references", lambda line: str(orjson.loads(line)["id"]))
    with open(joined_path, "rb") as joined:
        joined_parts = partition(joined, "joined", lambda line: str(orjson.loads(line)["id"]))
    os.remove(joined_path)
    attached = 0
    with open(out_path, "wb") as out:
        for reference_part, joined_part in zip(reference_parts, joined_parts):
            with open(reference_part, "rb") as handle:
                table = dict(filter(None, map(_reference_fields, handle)))
            with open(joined_part, "rb") as joined:
                attached += _annotate(joined, table, out)
            os.remove(reference_part)
            os.remove(joined_part)
    return attached


def _annotate(joined: IO[bytes], table: dict[str, dict], out: IO[bytes]) -> int:
    attached = 0
    for line in joined:
        if table:
            record = orjson.loads(line)
            fields = table.get(str(record["id"]))
            if fields:
                record.update(fields)
                attached += 1
                line = orjson.dumps(record) + b"\n"
        out.write(line)
    return attached
