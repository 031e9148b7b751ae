"""Shard and job planning from record sizes."""

from __future__ import annotations

from itertools import accumulate, pairwise

import pytest

from batch_pipeline.intake.sharding import PlanError, balanced_cuts, plan
from tests.fixtures.intake.pipelines import runtime


def ends(sizes):
    return list(accumulate(sizes))


def test_sagemaker_shards_balance_bytes_and_records():
    # Ten short records then two long ones: a split by count or contiguous bytes leaves one shard far busier.
    sizes = [100] * 10 + [1000, 1000]
    planned = plan(runtime("t2t"), ends(sizes))  # 2 instances
    assert [s.records for s in planned.shards] == [6, 6]
    assert [s.bytes for s in planned.shards] == [1500, 1500]
    assert sorted(planned.order) == list(range(12))


def test_one_shard_per_instance_times_shards_per_instance():
    planned = plan(
        runtime("t2t", sagemaker={"instance_type": "ml.c5.xlarge", "instance_count": 3, "shards_per_instance": 2}),
        ends([50] * 60),
    )
    assert [s.records for s in planned.shards] == [10] * 6 and [s.bytes for s in planned.shards] == [500] * 6
    assert [s.name for s in planned.shards][:2] == ["part-00000.jsonl", "part-00001.jsonl"]


def test_fewer_records_than_instances_gives_non_empty_shards_and_a_note():
    planned = plan(runtime("t2t"), ends([10]))
    assert [s.records for s in planned.shards] == [1] and "fewer" in planned.note


@pytest.mark.parametrize("count", range(1, 60))
def test_balanced_cuts_are_contiguous_non_empty_and_cover_everything(count):
    sizes = [(i * 37) % 101 + 1 for i in range(count)]
    cuts = balanced_cuts(ends(sizes), 7)
    assert cuts[0] == 0 and cuts[-1] == count
    assert all(b > a for a, b in pairwise(cuts))


@pytest.mark.parametrize("count", [2, 3, 4, 5, 7, 9, 10, 11, 13, 17, 40])
def test_bedrock_jobs_respect_min_and_max_and_never_leave_a_small_last_job(count):
    planned = plan(runtime("claude"), ends([100] * count))  # 2..4 records per job
    records = [s.records for s in planned.shards]
    assert sum(records) == count
    assert all(2 <= r <= 4 for r in records), records
    assert planned.kind == "bedrock-jobs"


def test_bedrock_jobs_respect_the_job_size():
    settings = {"min_records_per_job": 1, "max_records_per_job": 1000, "max_job_size_mb": 1}
    planned = plan(runtime("claude", bedrock=settings), ends([300_000] * 10))  # 3 MB in all, 1 MiB per job
    assert all(s.bytes <= 1024 * 1024 for s in planned.shards) and sum(s.records for s in planned.shards) == 10


def test_bedrock_below_the_minimum_goes_on_demand_or_is_rejected():
    planned = plan(runtime("claude"), ends([10]))
    assert planned.kind == "bedrock-jobs" and planned.route == "on-demand"
    with pytest.raises(PlanError) as error:
        plan(runtime("claude-reject-small"), ends([10] * 5))
    assert error.value.code == "below_min_records" and "small_file" in str(error.value)
