"""Sharding for throughput: instance load imbalance (in time) and mini-batch padding, against the older splits.

Measured on CNN/DailyMail-shaped record lengths (log-normal around ~780 words per article, as the
articles of that dataset run), in two file orders: shuffled, and drifting (later records longer,
as when a file concatenates sources). Reported, in the same run:

- load imbalance = cost of the busiest shard / mean cost per shard (1.000 is perfect), where a shard's cost is
  `records * per_record + bytes` (per_record in bytes-equivalent: 0 = time follows bytes only; the mean record
  size = decode/request overhead as large as the bytes' own cost; 4x the mean = overhead-dominated), for
  a naive contiguous split by record count, the old byte-balanced contiguous cuts, and intake's
  whole-file sort by length dealt back and forth (sharding.dealt_order);
- padding fraction at the pipeline's batch_size = padded token slots / all token slots in the
  container's mini-batches, for file order vs intake's group_by_length (sort within 32 MB windows).

    .venv/bin/python bench/sharding.py [--records 50000] [--instances 4] [--batch-size 4]
"""

from __future__ import annotations

import argparse
import random
import sys
from itertools import pairwise
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lambdas"))

from batch_pipeline.intake.sharding import balanced_cuts, dealt_order, even_count_cuts
from batch_pipeline.intake.stream import GROUP_WINDOW_BYTES

BYTES_PER_WORD = 6  # a word and its space, roughly, in English news text


def article_lengths(count: int, drift: bool, seed: int = 1) -> list[int]:
    rng = random.Random(seed)
    words = [max(40, int(rng.lognormvariate(6.55, 0.5))) for _ in range(count)]
    if drift:
        words.sort()  # the extreme of a drifting file: every record longer than the last
        words = [w if rng.random() < 0.7 else words[rng.randrange(count)] for w in words]
    return words


def imbalance(sizes: list[int], shards: list[list[int]] | list[range], per_record: float) -> float:
    loads = [len(members) * per_record + sum(sizes[i] for i in members) for members in shards]
    return max(loads) / (sum(loads) / len(loads))


def contiguous(cuts: list[int]) -> list[range]:
    return [range(a, b) for a, b in pairwise(cuts)]


def padding_fraction(words: list[int], batch_size: int) -> float:
    padded = real = 0
    for start in range(0, len(words), batch_size):
        batch = words[start : start + batch_size]
        padded += max(batch) * len(batch)
        real += sum(batch)
    return (padded - real) / padded


def grouped(words: list[int], cuts: list[int]) -> list[int]:
    """Intake's group_by_length: within each shard, sort records by length in windows of GROUP_WINDOW_BYTES."""
    result: list[int] = []
    for a, b in pairwise(cuts):
        window: list[int] = []
        size = 0
        for w in words[a:b]:
            window.append(w)
            size += w * BYTES_PER_WORD
            if size >= GROUP_WINDOW_BYTES:
                result += sorted(window)
                window, size = [], 0
        result += sorted(window)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--instances", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()
    print(f"{args.records} records, {args.instances} shards, batch_size {args.batch_size}")
    print("load imbalance = max/mean of per-shard cost, cost = records * per_record + bytes")
    print(f"{'file order':10s} {'per_record':>10s} {'by count':>9s} {'bytes (old)':>12s} {'dealt (new)':>12s}")
    paddings = []
    for drift in (False, True):
        words = article_lengths(args.records, drift)
        sizes = [w * BYTES_PER_WORD for w in words]
        ends, total = [], 0
        for size in sizes:
            total += size
            ends.append(total)
        by_count = contiguous(even_count_cuts(len(sizes), args.instances))
        cuts = balanced_cuts(ends, args.instances)
        old = contiguous(cuts)
        order, dealt_cuts = dealt_order(ends, args.instances, by_length=True)
        new = [order[a:b] for a, b in pairwise(dealt_cuts)]
        mean = total / len(sizes)
        for label, per_record in (("0", 0.0), ("mean", mean), ("4x mean", 4 * mean)):
            print(
                f"{'drifting' if drift else 'shuffled':10s} {label:>10s} {imbalance(sizes, by_count, per_record):9.3f} "
                f"{imbalance(sizes, old, per_record):12.3f} {imbalance(sizes, new, per_record):12.3f}"
            )
        pad_file = padding_fraction(words, args.batch_size)
        pad_window = padding_fraction(grouped(words, cuts), args.batch_size)
        pad_dealt = padding_fraction([words[i] for i in order], args.batch_size)
        paddings.append((drift, pad_file, pad_window, pad_dealt))
    print(f"\npadding fraction at batch_size {args.batch_size} (padded token slots / all slots)")
    print(f"{'file order':10s} {'file order':>11s} {'32 MB windows (old)':>20s} {'dealt, sorted (new)':>20s}")
    for drift, pad_file, pad_window, pad_dealt in paddings:
        print(f"{'drifting' if drift else 'shuffled':10s} {pad_file:11.3f} {pad_window:20.3f} {pad_dealt:20.3f}")


if __name__ == "__main__":
    main()
