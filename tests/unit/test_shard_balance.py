"""SageMaker shards balanced by time: the whole file sorted by length and dealt out, every record exactly once."""

from __future__ import annotations

import random
from itertools import accumulate, pairwise

import orjson
import pytest

from batch_pipeline.intake.sharding import balanced_cuts, dealt_order, plan, record_sizes
from batch_pipeline.intake.stream import LocalDirSink, reorder_lines, run_intake
from tests.fixtures.intake.pipelines import runtime


def skewed_sizes(count: int, seed: int, drift: bool) -> list[int]:
    rng = random.Random(seed)
    sizes = [max(20, int(rng.lognormvariate(8.2, 0.6))) for _ in range(count)]
    return sorted(sizes) if drift else sizes


def cost(sizes: list[int], members, per_record: float) -> float:
    return sum(per_record + sizes[i] for i in members)


@pytest.mark.parametrize("count", [1, 2, 3, 5, 7, 8, 9, 31, 100, 257])
@pytest.mark.parametrize("parts", [1, 2, 3, 8])
@pytest.mark.parametrize("by_length", [False, True])
def test_every_record_lands_in_exactly_one_shard(count, parts, by_length):
    sizes = skewed_sizes(count, seed=count * parts, drift=False)
    order, cuts = dealt_order(list(accumulate(sizes)), parts, by_length=by_length)
    assert sorted(order) == list(range(count))
    assert cuts[0] == 0 and cuts[-1] == count and len(cuts) == min(parts, count) + 1
    assert all(b > a for a, b in pairwise(cuts)), "no shard is empty"
    counts = [b - a for a, b in pairwise(cuts)]
    assert max(counts) - min(counts) <= 1


@pytest.mark.parametrize("instances, per_instance", [(1, 2), (2, 1), (3, 2), (5, 3)])
def test_shard_count_is_at_least_the_instance_count(instances, per_instance):
    pipeline = runtime(
        "t2t",
        sagemaker={"instance_type": "ml.c5.xlarge", "instance_count": instances, "shards_per_instance": per_instance},
    )
    planned = plan(pipeline, list(accumulate(skewed_sizes(500, seed=instances, drift=True))))
    assert len(planned.shards) == instances * per_instance >= instances
    assert sum(s.records for s in planned.shards) == 500 and sorted(planned.order) == list(range(500))


@pytest.mark.parametrize("drift", [False, True])
@pytest.mark.parametrize("parts", [2, 4, 7])
def test_balance_under_any_per_record_plus_per_byte_cost(drift, parts):
    sizes = skewed_sizes(4000, seed=parts, drift=drift)
    ends = list(accumulate(sizes))
    order, cuts = dealt_order(ends, parts, by_length=False)
    biggest = max(sizes)
    for per_record in (0, sum(sizes) / len(sizes), 10 * biggest):
        loads = [cost(sizes, order[a:b], per_record) for a, b in pairwise(cuts)]
        # Counts differ by at most one and bytes by less than one record, so the spread is below one record's cost.
        assert max(loads) - min(loads) <= per_record + biggest
    # The property that byte-balanced contiguous cuts lack on a drifting file: equal time with a per-record cost.
    old = balanced_cuts(ends, parts)
    per_record = sum(sizes) / len(sizes)
    old_loads = [cost(sizes, range(a, b), per_record) for a, b in pairwise(old)]
    new_loads = [cost(sizes, order[a:b], per_record) for a, b in pairwise(cuts)]
    if drift:
        assert max(old_loads) / (sum(old_loads) / parts) > max(new_loads) / (sum(new_loads) / parts) + 0.05


def test_inside_a_shard_file_order_or_longest_first():
    sizes = skewed_sizes(300, seed=3, drift=False)
    ends = list(accumulate(sizes))
    for by_length in (False, True):
        order, cuts = dealt_order(ends, 3, by_length=by_length)
        for a, b in pairwise(cuts):
            members = list(order[a:b])
            if by_length:
                assert [sizes[i] for i in members] == sorted((sizes[i] for i in members), reverse=True)
            else:
                assert members == sorted(members)


def test_reorder_lines_rewrites_records_in_the_order(tmp_path):
    lines = [b"a\n", b"bbb\n", b"cc\n", b"\n", b"dddd\n"]
    path = tmp_path / "spill"
    path.write_bytes(b"".join(lines))
    ends = list(accumulate(map(len, lines)))
    new_ends = reorder_lines(str(path), ends, [4, 0, 3, 2, 1])
    assert path.read_bytes() == b"dddd\na\n\ncc\nbbb\n"
    assert list(new_ends) == list(accumulate(map(len, [lines[i] for i in (4, 0, 3, 2, 1)])))
    assert list(record_sizes(ends)) == [2, 4, 3, 1, 5]


@pytest.mark.parametrize("group_by_length", [False, True])
def test_intake_writes_every_record_once_with_its_own_id(tmp_path, group_by_length):
    rng = random.Random(5)
    records = [
        {"id": f"r{i}", "text_inputs": "word " * rng.choice([3, 30, 300, 3000]), "reference": f"ref {i}"}
        for i in range(200)
    ]
    data = b"".join(orjson.dumps(r) + b"\n" for r in records)
    pipeline = runtime(
        "t2t",
        sagemaker={
            "instance_type": "ml.c5.xlarge",
            "instance_count": 3,
            "shards_per_instance": 2,
            "group_by_length": group_by_length,
        },
    )
    result = run_intake([data[:7000], data[7000:]], pipeline, sink=LocalDirSink(tmp_path), workdir=str(tmp_path))
    assert result.accepted and len(result.shards) == 6
    seen = {}
    for shard in result.shards:
        lines = (tmp_path / "shards" / shard["name"]).read_bytes().splitlines()
        assert len(lines) == shard["records"] and sum(len(x) + 1 for x in lines) == shard["bytes"]
        for line in lines:
            record = orjson.loads(line)
            assert record["id"] not in seen, "a record in two shards"
            seen[record["id"]] = record
    assert seen == {r["id"]: {"id": r["id"], "text_inputs": r["text_inputs"]} for r in records}
    references = [orjson.loads(x) for x in (tmp_path / "references.jsonl").read_bytes().splitlines()]
    assert {r["id"]: r["reference"] for r in references} == {r["id"]: r["reference"] for r in records}
    loads = [s["bytes"] for s in result.shards]
    assert max(loads) - min(loads) <= max(len(orjson.dumps(r)) for r in records)
