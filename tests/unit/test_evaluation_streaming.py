"""The streaming evaluation (collect's run-level sums) agrees with the batch one (evaluate_files), merges exactly and
keeps no per-record dicts."""

import json
import math
import random
from array import array

import pytest

from batch_pipeline.results.evaluation.errors import EvaluationError
from batch_pipeline.results.evaluation.streaming import ExactSum, RecordScorer, RougeTotals, RunScores
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
    halves = [ExactSum(), ExactSum()]
    for index, value in enumerate(values):
        halves[index % 2].add(value)
    halves[1].merge(halves[0])
    assert halves[1].value() == math.fsum(values)


def scores(records, metric="rouge", **options):
    summed = RunScores(metric, **options)
    summed.add(records)
    return summed


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
    report = scores(records).report()
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
    first = scores(records, keep_series=True).report(bootstrap_samples=50, seed=3)
    again = scores(records, keep_series=True).report(bootstrap_samples=50, seed=3)
    assert first["rouge_bootstrap"] == again["rouge_bootstrap"]
    assert "rouge_bootstrap" not in scores(records).report(bootstrap_samples=50, seed=3)  # no series kept, none asked
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
    report = scores(records, "classification").report()
    expected = multi_label_metrics(
        [frozenset(r["label"]) for r in records], [frozenset(r["metrics"]["predicted"]) for r in records]
    )
    assert report["micro_f1"] == expected["micro_f1"] and report["confusion_matrix"] == expected["confusion_matrix"]


def test_an_unknown_metric_is_refused():
    with pytest.raises(EvaluationError):
        RunScores("bleu")


def _merged(parts, metric, **options):
    whole = RunScores(metric, **options)
    for part in parts:
        whole.merge(scores(part, metric, **options))
    return whole


def test_partial_sums_merge_into_what_one_pass_gives_bit_for_bit():
    records = _records(700, seed=4)
    records[3] = {"id": 3, "prediction": None, "error": {"code": "ModelError", "message": "x"}, "reference": "r"}
    records[9] = {"id": 9, "prediction": "p", "label": "only a label"}
    RecordScorer("rouge").score(records)
    one_pass = scores(records, keep_series=True).report(bootstrap_samples=40, seed=1)
    parts = [records[:1], records[1:250], [], records[250:]]
    assert _merged(parts, "rouge", keep_series=True).report(bootstrap_samples=40, seed=1) == one_pass
    assert one_pass["errors"] == 1 and one_pass["references_without_target"] == 1


def test_classification_partial_sums_merge_exactly():
    single = [{"id": i, "prediction": p, "label": t} for i, (p, t) in enumerate(zip("abcab", "abbab", strict=True))]
    RecordScorer("classification", known_labels="abc").score(single)
    assert _merged([single[:2], single[2:]], "classification").report() == scores(single, "classification").report()
    multi = [
        {"id": i, "prediction": None, "labels": ["a", "b"], "scores": s, "label": t}
        for i, (s, t) in enumerate([([0.9, 0.6], ["a", "b"]), ([0.2, 0.7], ["a"]), ([0.8, 0.1], ["a"])])
    ]
    RecordScorer("classification", known_labels="ab", multi_label=True).score(multi)
    merged = _merged([multi[:1], multi[1:]], "classification").report()
    assert merged == scores(multi, "classification").report() and merged["multi_label"]


def test_the_merge_check_fires_when_a_part_is_dropped():
    """Planted defect: a merge that forgets one part's sums is not what one pass gives."""
    records = _records(100, seed=6)
    RecordScorer("rouge").score(records)
    assert _merged([records[:50]], "rouge").report() != scores(records).report()
    other = RunScores("classification")
    with pytest.raises(EvaluationError):
        RunScores("rouge").merge(other)
