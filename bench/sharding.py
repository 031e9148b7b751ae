"""Sharding for throughput: instance load imbalance and mini-batch padding, against naive splits.

Measured on CNN/DailyMail-shaped record lengths (log-normal around ~780 words per article, as the
articles of that dataset run), in two file orders: shuffled, and drifting (later records longer,
as when a file concatenates sources). Reported, in the same run:

- load imbalance = bytes of the busiest instance / mean bytes per instance (1.00 is perfect), for
  a naive contiguous split by record count vs intake's byte-balanced cuts;
- padding fraction at the pipeline's batch_size = padded token slots / all token slots in the
  container's mini-batches, for file order vs intake's group_by_length (sort within 32 MB windows).

    .venv/bin/python bench/sharding.py [--records 50000] [--instances 4] [--batch-size 4]
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lambdas"))

from batch_pipeline.intake import GROUP_WINDOW_BYTES  # noqa: E402
from batch_pipeline.sharding import balanced_cuts, even_count_cuts  # noqa: E402

BYTES_PER_WORD = 6  # a word and its space, roughly, in English news text


def article_lengths(count: int, drift: bool, seed: int = 1) -> list[int]:
    rng = random.Random(seed)
    words = [max(40, int(rng.lognormvariate(6.55, 0.5))) for _ in range(count)]
    if drift:
        words.sort()  # the extreme of a drifting file: every record longer than the last
        words = [w if rng.random() < 0.7 else words[rng.randrange(count)] for w in words]
    return words


def imbalance(sizes: list[int], cuts: list[int]) -> float:
    loads = [sum(sizes[a:b]) for a, b in zip(cuts, cuts[1:])]
    return max(loads) / (sum(loads) / len(loads))


def padding_fraction(words: list[int], batch_size: int) -> float:
    padded = real = 0
    for start in range(0, len(words), batch_size):
        batch = words[start:start + batch_size]
        padded += max(batch) * len(batch)
        real += sum(batch)
    return (padded - real) / padded


def grouped(words: list[int], cuts: list[int]) -> list[int]:
    """Intake's group_by_length: within each shard, sort records by length in windows of GROUP_WINDOW_BYTES."""
    result: list[int] = []
    for a, b in zip(cuts, cuts[1:]):
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
    print(f"{args.records} records, {args.instances} instances, batch_size {args.batch_size}")
    print(f"{'file order':10s} {'imbalance naive':>16s} {'balanced':>9s} {'ratio':>6s} | "
          f"{'padding file order':>18s} {'grouped':>8s} {'ratio':>6s}")
    for drift in (False, True):
        words = article_lengths(args.records, drift)
        sizes = [w * BYTES_PER_WORD for w in words]
        ends, total = [], 0
        for size in sizes:
            total += size
            ends.append(total)
        naive_cuts = even_count_cuts(len(sizes), args.instances)
        cuts = balanced_cuts(ends, args.instances)
        naive, ours = imbalance(sizes, naive_cuts), imbalance(sizes, cuts)
        pad_file = padding_fraction(words, args.batch_size)
        pad_grouped = padding_fraction(grouped(words, cuts), args.batch_size)
        print(f"{'drifting' if drift else 'shuffled':10s} {naive:16.3f} {ours:9.3f} {naive / ours:6.2f} | "
              f"{pad_file:18.3f} {pad_grouped:8.3f} {pad_file / max(pad_grouped, 1e-9):6.1f}x")


if __name__ == "__main__":
    main()
