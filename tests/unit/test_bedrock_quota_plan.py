"""Bedrock job planning against all five per-model batch quotas, with sizes and counts that straddle each limit.

A job is one input file (intake writes one per job), so records per job are bounded by min(records per job,
records per input file) and bytes by min(job size, input file size); no job may hold fewer than the minimum.
"""

from __future__ import annotations

import random

import pytest

from batch_pipeline.config.app import ConfigError, load_app_config
from batch_pipeline.config.runtime import runtime_pipelines
from batch_pipeline.intake.sharding import MIB, PlanError, plan

MODELS = {
    "nova": {
        "backend": "bedrock",
        "model_id": "amazon.nova-lite-v1:0",
        "family": "nova",
        "max_output_tokens": 5000,
        "context_window": 300000,
    }
}


def pipeline(**quotas):
    config = load_app_config(
        {
            "models": MODELS,
            "pipelines": {
                "p": {"model": "nova", "input_format": "prompt", "bedrock": {"small_file": "reject", **quotas}}
            },
        }
    )
    return runtime_pipelines(config)["p"]


def ends(sizes):
    total, result = 0, []
    for size in sizes:
        total += size
        result.append(total)
    return result


def assert_within(planned, sizes, *, minimum, records, size):
    jobs = planned.shards
    assert sum(job.records for job in jobs) == len(sizes)
    assert [job.start for job in jobs] == [0] + [job.stop for job in jobs[:-1]]  # contiguous, nothing lost
    for job in jobs:
        assert minimum <= job.records <= records, (job, minimum, records)
        assert job.bytes <= size, (job, size)
        assert job.bytes == sum(sizes[job.start : job.stop])


QUOTAS = dict(
    min_records_per_job=10,
    max_records_per_job=40,
    max_records_per_input_file=25,
    max_job_size_mb=3,
    max_input_file_size_mb=2,
)


@pytest.mark.parametrize("count", [10, 11, 24, 25, 26, 49, 50, 51, 74, 75, 76, 99, 100, 101, 997])
def test_record_counts_straddling_the_per_file_and_per_job_maximums(count):
    planned = plan(pipeline(**QUOTAS), ends([100] * count))
    # Records per input file (25) is the tighter of the two maximums, the minimum (10) holds for every job.
    assert_within(planned, [100] * count, minimum=10, records=25, size=2 * MIB)


@pytest.mark.parametrize("limit", ["max_records_per_job", "max_records_per_input_file"])
@pytest.mark.parametrize("count", [29, 30, 31])
def test_either_record_maximum_alone_bounds_a_job(limit, count):
    quotas = {"min_records_per_job": 5, "max_records_per_job": 1000, "max_records_per_input_file": 1000, limit: 30}
    planned = plan(pipeline(**quotas), ends([10] * count))
    assert len(planned.shards) == (1 if count <= 30 else 2)
    assert_within(planned, [10] * count, minimum=5, records=30, size=1024 * MIB)


@pytest.mark.parametrize("limit", ["max_job_size_mb", "max_input_file_size_mb"])
@pytest.mark.parametrize("delta", [-1, 0, 1])
def test_either_size_maximum_alone_bounds_a_job(limit, delta):
    quotas = {
        "min_records_per_job": 1,
        "max_records_per_job": 1000,
        "max_records_per_input_file": 1000,
        "max_job_size_mb": 1024,
        "max_input_file_size_mb": 1024,
        limit: 1,
    }
    sizes = [MIB // 4] * 4
    sizes[-1] += delta  # 1 MiB - 1, exactly 1 MiB, 1 MiB + 1 in all
    planned = plan(pipeline(**quotas), ends(sizes))
    assert len(planned.shards) == (2 if delta > 0 else 1)
    assert_within(planned, sizes, minimum=1, records=1000, size=MIB)


@pytest.mark.parametrize("count", [9, 10, 11])
def test_the_minimum_is_never_undercut_and_a_file_under_it_is_refused_or_goes_on_demand(count):
    if count < 10:
        with pytest.raises(PlanError) as error:
            plan(pipeline(**QUOTAS), ends([100] * count))
        assert error.value.code == "below_min_records"
        on_demand = plan(pipeline(**{**QUOTAS, "small_file": "on-demand"}), ends([100] * count))
        assert on_demand.route == "on-demand"
    else:
        assert_within(
            plan(pipeline(**QUOTAS), ends([100] * count)), [100] * count, minimum=10, records=25, size=2 * MIB
        )


@pytest.mark.parametrize("seed", range(25))
def test_random_skewed_files_fit_every_quota_or_are_refused_with_a_reason(seed):
    rng = random.Random(seed)
    quotas = dict(
        min_records_per_job=rng.randint(1, 20),
        max_records_per_job=rng.randint(20, 80),
        max_records_per_input_file=rng.randint(20, 80),
        max_job_size_mb=rng.randint(1, 3),
        max_input_file_size_mb=rng.randint(1, 3),
    )
    sizes = [rng.choice([200, 2_000, 60_000]) for _ in range(rng.randint(quotas["min_records_per_job"], 600))]
    try:
        planned = plan(pipeline(**quotas), ends(sizes))
    except PlanError as error:
        assert error.code == "cannot_plan" and "size quotas" in str(error)
        return
    assert_within(
        planned,
        sizes,
        minimum=quotas["min_records_per_job"],
        records=min(quotas["max_records_per_job"], quotas["max_records_per_input_file"]),
        size=min(quotas["max_job_size_mb"], quotas["max_input_file_size_mb"]) * MIB,
    )


def test_a_minimum_above_either_record_maximum_is_a_configuration_error():
    with pytest.raises(ConfigError, match="min_records_per_job must not exceed"):
        pipeline(min_records_per_job=100, max_records_per_input_file=50)


def test_defaults_are_the_documented_quota_defaults():
    settings = pipeline().pipeline.bedrock
    assert (
        settings.min_records_per_job,
        settings.max_records_per_job,
        settings.max_records_per_input_file,
        settings.max_input_file_size_mb,
        settings.max_job_size_mb,
    ) == (100, 50_000, 50_000, 1024, 5 * 1024)
