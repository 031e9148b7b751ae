"""How intake splits the valid records into shard files (SageMaker) or batch jobs (Bedrock).

Plans are computed from `ends`, the cumulative byte offset after each model-ready record in file order
(`ends[i]` = bytes of records 0..i, newlines included), so a plan costs O(shards * log records) and never
needs the records themselves. Every shard or job is a contiguous run of records: [start, stop).

- SageMaker hands whole S3 objects to instances, so intake writes instance_count * shards_per_instance
  shards. Time per shard is roughly a cost per record (decode, per-request overhead) plus a cost per byte, so
  byte-equal contiguous cuts of a length-skewed file are still unequal in time (one shard gets many short
  records). Instead the whole file is sorted by length and dealt out like cards (`dealt_order`): every shard
  then has the same number of records (within one) and the same bytes (within one record), whatever the mix of
  the two costs. The plan carries that order (`Plan.order`); intake writes the records in it, so each shard is
  still a contiguous run [start, stop) of the reordered records.
- Bedrock jobs must respect the five per-model batch quotas: minimum records per job, records per job, records
  per input file, input file size and job size. Intake writes one input file per job, so a job's records are
  bounded by the smaller record maximum and its bytes by the smaller size maximum. The records are spread evenly
  over the fewest jobs that fit, so no job is left under the minimum.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, chain, pairwise
from operator import sub
from typing import Literal

from batch_pipeline.config.runtime import RuntimePipeline
from batch_pipeline.contracts import Route

MIB = 1024 * 1024
_EXTRA_JOB_COUNTS_TRIED = 256


class PlanError(ValueError):
    """A run that cannot be planned: intake's records cannot be split within the configured quotas, or a job plan
    has nothing to run (batch_pipeline.jobs.planning). `code` names the case, the message says why."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Shard:
    name: str  # file name under shards/
    start: int  # first record index
    stop: int  # one past the last record index
    bytes: int

    @property
    def records(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Plan:
    kind: Literal["sagemaker-shards", "bedrock-jobs"]
    shards: tuple[Shard, ...]
    # Set when the plan could not give what the configuration asks for (e.g. fewer records than instances).
    note: str | None = None
    # When set, the records are published in this order (order[i] = spill index of published record i) and the
    # shards' start/stop index this order; None means spill order. 4 bytes per record.
    order: array[int] | None = None
    # "on-demand": a Bedrock file under the batch minimum, one job run through InvokeModel.
    route: Route = "batch"


def _bytes_between(ends: Sequence[int], start: int, stop: int) -> int:
    return ends[stop - 1] - (ends[start - 1] if start else 0)


def _shards(prefix: str, ends: Sequence[int], cuts: list[int]) -> tuple[Shard, ...]:
    return tuple(
        Shard(f"{prefix}-{index:05d}.jsonl", start, stop, _bytes_between(ends, start, stop))
        for index, (start, stop) in enumerate(pairwise(cuts))
    )


def balanced_cuts(ends: Sequence[int], parts: int) -> list[int]:
    """Record indexes [0, c1, ..., n] splitting n records into `parts` non-empty runs of near-equal bytes."""
    count = len(ends)
    parts = max(1, min(parts, count))
    total = ends[-1] if count else 0
    cuts = [0]
    for part in range(1, parts):
        target = total * part / parts
        # The first record whose end reaches the target; step back one when that lands closer to the target.
        index = bisect_left(ends, target)
        if index > 0 and target - ends[index - 1] < ends[index] - target:
            index -= 1
        cut = index + 1
        # Keep every run non-empty: at least one record after the previous cut, room for the remaining parts.
        cut = max(cut, cuts[-1] + 1)
        cut = min(cut, count - (parts - part))
        cuts.append(cut)
    cuts.append(count)
    return cuts


def even_count_cuts(count: int, parts: int) -> list[int]:
    return [round(count * part / parts) for part in range(parts + 1)]


def record_sizes(ends: Sequence[int]) -> array[int]:
    """Bytes of each record, from the cumulative ends (C-speed: no Python loop per record)."""
    return array("q", map(sub, ends, chain((0,), ends)))


def dealt_order(ends: Sequence[int], parts: int, *, by_length: bool) -> tuple[array[int], list[int]]:
    """(order, cuts): the records sorted by size, longest first, dealt round-robin into `parts` shards.

    The deal goes back and forth (0..k-1, then k-1..0), so no shard is first to receive in every round: shard
    sizes then differ by less than one record's size, and record counts by at most one. Returned as one
    permutation of record indexes with shard p at order[cuts[p]:cuts[p+1]]. Inside a shard the records keep file
    order, or stay sorted longest first when `by_length` (mini-batches of like lengths carry less padding).

    Memory: the sort holds a Python list of the n indexes (about 70 bytes per record, transient); the result is
    4 bytes per record."""
    count = len(ends)
    parts = max(1, min(parts, count))
    sizes = record_sizes(ends)
    ranked = sorted(range(count), key=sizes.__getitem__, reverse=True)  # stable: equal sizes keep file order
    order = array("I" if count < 2**32 else "q")
    cuts = [0]
    for part in range(parts):
        # Forward rounds give shard `part` rank part, 2k+part, ...; backward rounds rank 2k-1-part, 4k-1-part, ...
        members = ranked[part :: 2 * parts] + ranked[2 * parts - 1 - part :: 2 * parts]
        if by_length:
            members.sort(key=sizes.__getitem__, reverse=True)
        else:
            members.sort()
        order.extend(members)
        cuts.append(len(order))
    return order, cuts


def plan_sagemaker(pipeline: RuntimePipeline, ends: Sequence[int]) -> Plan:
    settings = pipeline.pipeline.sagemaker
    assert settings is not None, "a SageMaker pipeline has sagemaker settings (config validates it)"
    wanted = settings.instance_count * settings.shards_per_instance
    order = None
    if min(wanted, len(ends)) > 1:
        order, cuts = dealt_order(ends, wanted, by_length=settings.group_by_length)
        published = array("q", accumulate(map(record_sizes(ends).__getitem__, order)))
        shards = _shards("part", published, cuts)
    else:
        cuts = [0, len(ends)]
        shards = _shards("part", ends, cuts)
    note = None
    if len(shards) < wanted:
        note = (
            f"{len(ends)} records make {len(shards)} shards, fewer than instance_count * shards_per_instance "
            f"= {wanted}; some instances will have no work"
        )
    return Plan("sagemaker-shards", shards, note, order)


def plan_bedrock(pipeline: RuntimePipeline, ends: Sequence[int]) -> Plan:
    """Jobs within the quotas; a file under the minimum becomes one on-demand (InvokeModel) batch, or a PlanError."""
    settings = pipeline.pipeline.bedrock
    assert settings is not None, "a Bedrock pipeline has bedrock settings (config validates it)"
    count = len(ends)
    total = ends[-1] if count else 0
    minimum, maximum = settings.min_records_per_job, settings.records_per_job_limit
    max_bytes = settings.bytes_per_job_limit
    if count < minimum:
        if settings.small_file == "reject":
            raise PlanError(
                "below_min_records",
                f"{count} valid records is below Bedrock's minimum of {minimum} records per batch job and the "
                "pipeline's bedrock.small_file policy is 'reject'; add records or set small_file to 'on-demand'",
            )
        return Plan(
            "bedrock-jobs",
            _shards("job", ends, [0, count]),
            f"{count} records is below the batch minimum of {minimum}; they run on demand (InvokeModel)",
            route="on-demand",
        )
    most_jobs = count // minimum  # more jobs than this would leave one under the minimum
    fewest_jobs = max(math.ceil(count / maximum), math.ceil(total / max_bytes), 1)
    # More jobs only help when records vary wildly in size; a bounded search keeps a hopeless case fast.
    for jobs in range(fewest_jobs, min(most_jobs, fewest_jobs + _EXTRA_JOB_COUNTS_TRIED) + 1):
        for cuts in (even_count_cuts(count, jobs), balanced_cuts(ends, jobs)):
            if _fits(ends, cuts, minimum, maximum, max_bytes):
                return Plan("bedrock-jobs", _shards("job", ends, cuts))
    raise PlanError(
        "cannot_plan",
        f"cannot split {count} records ({total} bytes) into Bedrock jobs of {minimum}..{maximum} records and at most "
        f"{max_bytes // MIB} MB each (the smaller of max_job_size_mb and max_input_file_size_mb); records are too "
        "large for the size quotas",
    )


def _fits(ends: Sequence[int], cuts: list[int], minimum: int, maximum: int, max_bytes: int) -> bool:
    for start, stop in pairwise(cuts):
        if not minimum <= stop - start <= maximum or _bytes_between(ends, start, stop) > max_bytes:
            return False
    return True


def plan(pipeline: RuntimePipeline, ends: Sequence[int]) -> Plan:
    if not len(ends):
        raise PlanError("no_valid_records", "there are no valid records to plan")
    return plan_bedrock(pipeline, ends) if pipeline.backend == "bedrock" else plan_sagemaker(pipeline, ends)
