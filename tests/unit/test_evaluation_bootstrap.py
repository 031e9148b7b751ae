"""The seeded bootstrap interval of ROUGE means."""

from __future__ import annotations

import random

import numpy  # test-only, installed with rouge-score
import pytest
from rouge_score import scoring as google_scoring

from batch_pipeline.results.evaluation.bootstrap import bootstrap_mean_intervals, percentile
from batch_pipeline.results.evaluation.rouge import score_pairs
from bench.synthetic_summaries import make_pairs


@pytest.mark.parametrize("q", [0.0, 2.5, 25.0, 50.0, 97.5, 100.0, 33.3])
@pytest.mark.parametrize("size", [1, 2, 7, 1000])
def test_percentile_interpolates_exactly_like_numpy(q, size):
    rng = random.Random(size)
    values = sorted(rng.random() for _ in range(size))
    assert percentile(values, q) == float(numpy.percentile(values, q))


def test_same_seed_same_interval_and_another_seed_another():
    rng = random.Random(1)
    series = {"f": [rng.random() for _ in range(500)], "g": [rng.random() for _ in range(500)]}
    first = bootstrap_mean_intervals(series, samples=200, seed=7)
    assert bootstrap_mean_intervals(series, samples=200, seed=7) == first
    assert bootstrap_mean_intervals(series, samples=200, seed=8) != first


def test_interval_brackets_the_mean_and_narrows_with_confidence():
    rng = random.Random(2)
    values = [rng.random() for _ in range(400)]
    mean = sum(values) / len(values)
    wide = bootstrap_mean_intervals({"v": values}, samples=400, confidence=0.99)["v"]
    narrow = bootstrap_mean_intervals({"v": values}, samples=400, confidence=0.5)["v"]
    assert wide.low < narrow.low < mean < narrow.high < wide.high
    assert abs(wide.mid - mean) < 0.01


def test_agrees_with_rouge_score_bootstrap_aggregator_up_to_resampling_noise():
    pairs = make_pairs(300, seed=3)
    ours = score_pairs([r for r, _ in pairs], [p for _, p in pairs])
    aggregator = google_scoring.BootstrapAggregator(confidence_interval=0.95, n_samples=1000)
    numpy.random.seed(0)
    for scores in ours:
        aggregator.add_scores(scores)
    google = aggregator.aggregate()["rougeL"]
    interval = bootstrap_mean_intervals({"f": [s["rougeL"].fmeasure for s in ours]}, samples=1000)["f"]
    # Different random streams, the same statistic: the bounds agree to well within the interval width.
    width = google.high.fmeasure - google.low.fmeasure
    assert abs(interval.low - google.low.fmeasure) < width / 5
    assert abs(interval.mid - google.mid.fmeasure) < width / 5
    assert abs(interval.high - google.high.fmeasure) < width / 5


def test_a_single_record_has_a_zero_width_interval():
    assert tuple(bootstrap_mean_intervals({"v": [0.25]}, samples=10)["v"]) == (0.25, 0.25, 0.25)


@pytest.mark.parametrize(
    ("series", "kwargs", "message"),
    [
        ({"v": []}, {}, "empty"),
        ({"v": [1.0], "w": [1.0, 2.0]}, {}, "differ in length"),
        ({"v": [1.0]}, {"samples": 0}, "samples"),
        ({"v": [1.0]}, {"confidence": 1.0}, "confidence"),
    ],
)
def test_rejects_unusable_input(series, kwargs, message):
    with pytest.raises(ValueError, match=message):
        bootstrap_mean_intervals(series, **kwargs)


class ScriptedBytes:
    """Stands in for random.Random: hands out prepared 32-bit little-endian words."""

    def __init__(self, *batches):
        self.batches = list(batches)

    def randbytes(self, size):
        words = self.batches.pop(0)
        assert len(words) * 4 == size
        return b"".join(word.to_bytes(4, "little") for word in words)


def test_resampling_rejects_the_partial_top_block_so_indices_stay_uniform():
    from batch_pipeline.results.evaluation.bootstrap import _uniform_indices

    # For 3 records the last whole block ends at 2**32 - 1, so that one word is redrawn.
    rng = ScriptedBytes([2**32 - 1, 4, 8], [2**32 - 2])
    assert _uniform_indices(rng, 3) == [4 % 3, 8 % 3, (2**32 - 2) % 3]


def test_resampled_indices_cover_the_range_evenly():
    from batch_pipeline.results.evaluation.bootstrap import _uniform_indices

    rng = random.Random(5)
    counts = [0] * 10
    for _ in range(1000):
        for index in _uniform_indices(rng, 10):
            counts[index] += 1
    assert all(900 < count < 1100 for count in counts), counts
