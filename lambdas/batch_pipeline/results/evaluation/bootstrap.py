"""Seeded bootstrap confidence intervals of a mean, without numpy (the Lambda bundle has none).

Same procedure as rouge-score's `BootstrapAggregator`: draw `samples` resamples of the records with
replacement (uniformly, by rejection sampling), take each resample's mean, and report the (1-confidence)/2,
0.5 and 1-(1-confidence)/2 percentiles of those means with linear interpolation (numpy's default percentile
method). Two differences, both deliberate: the random numbers come from Python's `random.Random(seed)`, so a
given seed gives the same interval on every machine without touching global random state; and all series are
resampled with the same indices (a paired bootstrap), so the intervals of, say, rouge1 and rougeL describe the
same resampled record sets.
"""

from __future__ import annotations

import array
import math
import random
import sys
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import NamedTuple

__all__ = ["Interval", "bootstrap_mean_intervals", "percentile"]

_WORD_BYTES = 4
_WORD_RANGE = 1 << (8 * _WORD_BYTES)
if array.array("I").itemsize != _WORD_BYTES:  # pragma: no cover - true on every platform Lambda and CI use
    raise ImportError("bootstrap needs 4-byte unsigned ints in array('I')")


class Interval(NamedTuple):
    low: float
    mid: float
    high: float


def bootstrap_mean_intervals(
    series: Mapping[str, Sequence[float]],
    *,
    samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Interval]:
    """`{name: Interval}` for each equally long series of per-record values."""
    if samples <= 0:
        raise ValueError("samples must be positive")
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be between 0 and 1")
    lengths = {len(values) for values in series.values()}
    if len(lengths) > 1:
        raise ValueError(f"series differ in length: {sorted(lengths)}")
    count = lengths.pop() if lengths else 0
    if count == 0:
        raise ValueError("cannot bootstrap an empty sample")

    rng = random.Random(seed)
    means: dict[str, list[float]] = {name: [] for name in series}
    for _ in range(samples):
        if count == 1:
            for name, values in series.items():
                means[name].append(values[0])
            continue
        # itemgetter gathers the resample in C; the Python-level loop is only over the series.
        gather = itemgetter(*_uniform_indices(rng, count))
        for name, values in series.items():
            means[name].append(sum(gather(values)) / count)

    tail = (1.0 - confidence) / 2.0
    intervals = {}
    for name, values in means.items():
        values.sort()
        intervals[name] = Interval(
            percentile(values, 100.0 * tail), percentile(values, 50.0), percentile(values, 100.0 * (1.0 - tail))
        )
    return intervals


def _uniform_indices(rng: random.Random, count: int) -> list[int]:
    """`count` indices drawn uniformly from range(count), with replacement.

    Three times faster than `rng.choices` for large samples: 32-bit words come from one
    `randbytes` call and map to indices by modulo, rejecting the top partial block of words so
    every index stays exactly equally likely.
    """
    limit = (_WORD_RANGE // count) * count
    indices: list[int] = []
    while len(indices) < count:
        words = array.array("I")
        words.frombytes(rng.randbytes(_WORD_BYTES * (count - len(indices))))
        if sys.byteorder == "big":
            words.byteswap()  # the same seed gives the same indices on every platform
        indices += [word % count for word in words if word < limit]
    return indices


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of sorted values, interpolated linearly like numpy.percentile."""
    if not sorted_values:
        raise ValueError("percentile of an empty sequence")
    position = (q / 100.0) * (len(sorted_values) - 1)
    below = math.floor(position)
    above = min(below + 1, len(sorted_values) - 1)
    fraction = position - below
    low, high = sorted_values[below], sorted_values[above]
    # numpy interpolates from the nearer end, which keeps the result inside [low, high] in floats.
    if fraction >= 0.5:
        return high - (high - low) * (1.0 - fraction)
    return low + (high - low) * fraction
