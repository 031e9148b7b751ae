"""The streaming evaluation agrees with the batch one (evaluate_files) and keeps no per-record dicts."""

import json
import math
import random
from array import array

import orjson
import pytest

from batch_pipeline.results.evaluation.streaming import ExactSum, RecordScorer, RougeTotals, summarize_predictions
from batch_pipeline_local.cli.evaluate_scoring import evaluate_files

WORDS = "a bridge opened on tuesday in the city and residents said it was café naïve".split()


def test_exact_sum_is_fsum_whatever_the_order():
    rng = random.Random(5)
    values = [rng.random() * 10 ** rng.randint(-8, 8) for _ in range(20_000)]
    forward, backward = ExactSum(), ExactSum()
    for value in values:
        forward.add(value)
    for value in reversed(values):
        backward.add(value)
    assert forward.value() == backward.value() == math.fsum(values)


def _records(count, seed=0):
    rng = random.Random(seed)
    text = lambda: " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 30)))  # noqa: E731
    return [{"id": i, "prediction": text(), "reference": text() + "\n" + text()} for i in range(count)]


def test_scored_in_batches_and_summed_it_matches_evaluate_files():
    records = _records(500)
    records[7] = {"id": 7, "prediction": None, "error": {"code": "no-output", "message": "x"}, "reference": "r"}
    scorer = RecordScorer("rouge")
    for start in range(0, len(records), 64):
        scorer.score(records[start : start + 64])
    report = summarize_predictions([orjson.dumps(r) for r in records], "rouge")
    batch, per_record = evaluate_files(
        [json.dumps({k: r[k] for k in ("id", "prediction")}) for r in records if r.get("prediction")],
        [json.dumps({"id": r["id"], "reference": r["reference"]}) for r in records],
    )
    assert report["rouge"] == batch["rouge"]
    assert (report["records"], report["scored"], report["errors"]) == (500, 499, 1)
    assert all(
        records[i]["metrics"][t]["fmeasure"] == per_record[str(i)][t] for i in (0, 1, 499) for t in per_record["0"]
    )


def test_bootstrap_resamples_compact_float_arrays_and_is_seeded():
    records = _records(300, seed=2)
    RecordScorer("rouge").score(records)
    lines = [orjson.dumps(r) for r in records]
    first = summarize_predictions(lines, "rouge", bootstrap_samples=50, seed=3)
    again = summarize_predictions(lines, "rouge", bootstrap_samples=50, seed=3)
    assert first["rouge_bootstrap"] == again["rouge_bootstrap"]
    interval = first["rouge_bootstrap"]["rouge1"]["fmeasure"]
    assert interval["low"] <= first["rouge"]["rouge1"]["fmeasure"] <= interval["high"]
    totals = RougeTotals(keep_series=True)
    for record in records:
        totals.add(record["metrics"])
    assert all(isinstance(series, array) and series.itemsize == 4 for series in totals.series.values())


def test_multi_label_scores_sum_to_the_batch_metrics():
    from batch_pipeline.results.evaluation.classification import multi_label_metrics

    records = [
        {"id": i, "prediction": None, "labels": ["a", "b", "c"], "scores": s, "label": t}
        for i, (s, t) in enumerate([([0.9, 0.6, 0.1], ["a", "b"]), ([0.2, 0.7, 0.8], ["c"]), ([0.1, 0.1, 0.9], ["c"])])
    ]
    RecordScorer("classification", known_labels="abc", multi_label=True).score(records)
    report = summarize_predictions([orjson.dumps(r) for r in records], "classification")
    expected = multi_label_metrics(
        [frozenset(r["label"]) for r in records], [frozenset(r["metrics"]["predicted"]) for r in records]
    )
    assert report["micro_f1"] == expected["micro_f1"] and report["confusion_matrix"] == expected["confusion_matrix"]


def test_an_unknown_metric_is_refused():
    from batch_pipeline.results.evaluation.errors import EvaluationError

    with pytest.raises(EvaluationError):
        summarize_predictions([], "bleu")
