"""`batch-pipeline evaluate`'s scoring: join predictions to references, score what joined, count what did not.

`evaluate_files` takes iterables of lines (the command hands it open files, chained over several `.out` files) and
scores with the metrics the workflow uses (batch_pipeline.results.evaluation: rouge, classification, bootstrap), so a
report has the shape of a run's evaluation.json.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from batch_pipeline.results.evaluation import classification, rouge
from batch_pipeline.results.evaluation.bootstrap import bootstrap_mean_intervals
from batch_pipeline.results.evaluation.errors import EvaluationError, count_codes, error_code
from batch_pipeline_local.cli.evaluate_join import (
    Joined,
    Reference,
    join_predictions,
    parse_prediction_lines,
    read_references,
)

__all__ = ["Metric", "evaluate_files", "evaluate_joined", "infer_metric"]

Metric = Literal["rouge", "classification"]
METRICS = ("rouge", "classification")
# Ids of missing records quoted in the report, so a user can look one up.
MISSING_EXAMPLES_KEPT = 10


def evaluate_files(
    predictions_lines: Iterable[bytes | str],
    references_lines: Iterable[bytes | str],
    metric: Metric | None = None,
    *,
    use_stemmer: bool = False,
    bootstrap_samples: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
    threshold: float = classification.DEFAULT_THRESHOLD,
    multi_label: bool | None = None,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(report, per-record scores keyed by str(id)) for raw prediction lines against reference lines.

    Prediction lines are anything `batch_pipeline.results.outputs.parse_output_line` reads: SageMaker `.out`,
    Bedrock `.jsonl.out`, or our predictions.jsonl. Reference lines are JSON with `id`/`recordId` and
    `reference`/`highlights` and/or `label`. `metric` None infers it from the references (any label:
    classification, else rouge). `bootstrap_samples` > 0 adds a seeded bootstrap interval
    (low, mid, high) of each mean ROUGE F-measure. `multi_label` None infers it (any reference label is a list). Raises
    EvaluationError for unusable references or an unknown metric.
    """
    references = read_references(references_lines)
    joined = Joined()
    join_predictions(parse_prediction_lines(predictions_lines, joined), references, joined)
    return evaluate_joined(
        joined,
        references,
        metric,
        use_stemmer=use_stemmer,
        bootstrap_samples=bootstrap_samples,
        confidence=confidence,
        seed=seed,
        threshold=threshold,
        multi_label=multi_label,
    )


def infer_metric(references: dict[str, Reference]) -> Metric:
    return "classification" if any(ref.label is not None for ref in references.values()) else "rouge"


def evaluate_joined(
    joined: Joined,
    references: dict[str, Reference],
    metric: Metric | None = None,
    *,
    use_stemmer: bool = False,
    bootstrap_samples: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
    threshold: float = classification.DEFAULT_THRESHOLD,
    multi_label: bool | None = None,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The report and per-record scores for predictions already joined (see evaluate_join.join_predictions)."""
    metric = metric or infer_metric(references)
    if metric not in METRICS:
        raise EvaluationError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")

    def wanted(ref: Reference) -> bool:
        return ref.text is not None if metric == "rouge" else ref.label is not None

    targets = [ref for ref in references.values() if wanted(ref)]

    usable: list[tuple[Reference, dict[str, Any]]] = []
    missing_ids: list[str] = []
    codes: list[str] = []
    for ref in targets:
        record = joined.by_id.get(ref.id)
        if record is None:
            missing_ids.append(ref.id)
        elif record.get("error") is not None or not _has_answer(record, metric):
            codes.append(error_code(record))
        else:
            usable.append((ref, record))

    report = {
        "metric": metric,
        "records": len(targets),
        "scored": len(usable),
        "missing": len(missing_ids),
        "errors": len(codes),
        "error_codes": count_codes(codes),
        "missing_examples": missing_ids[:MISSING_EXAMPLES_KEPT],
        "references_without_target": len(references) - len(targets),
        "prediction_lines": joined.prediction_lines,
        "invalid_lines": joined.invalid_lines,
        "invalid_examples": joined.invalid_examples,
        "unmatched": joined.unmatched,
        "unmatched_examples": joined.unmatched_examples,
        "duplicates": joined.duplicates,
        "unidentified": joined.unidentified,
        "joined_by": joined.joined_by,
        "input_tokens": joined.input_tokens,
        "output_tokens": joined.output_tokens,
    }
    if metric == "rouge":
        scores, per_record = _rouge(usable, use_stemmer, bootstrap_samples, confidence, seed)
    else:
        scores, per_record = _classification(usable, joined, threshold, multi_label)
    report.update(scores)
    return report, per_record


def _has_answer(record: dict[str, Any], metric: str) -> bool:
    if record.get("prediction") is not None:
        return True
    return metric == "classification" and bool(record.get("labels")) and record.get("scores") is not None


def _rouge(
    usable: list[tuple[Reference, dict[str, Any]]],
    use_stemmer: bool,
    bootstrap_samples: int,
    confidence: float,
    seed: int,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    pair_scores = rouge.score_pairs(
        [_target(ref, ref.text) for ref, _ in usable],
        [record["prediction"] for _, record in usable],
        use_stemmer=use_stemmer,
    )
    section: dict[str, Any] = {
        "rouge": rouge.mean_scores(pair_scores),
        "rouge_options": {"use_stemmer": use_stemmer, "tokenizer": "rouge-score default", "sentence_split": "newline"},
    }
    if bootstrap_samples > 0 and pair_scores:
        # F-measure only, the figure ROUGE is reported by: resampling is the slow part
        # (~7 ms per resample of 50,000 records for four series), and three times the series
        # would cost three times that for intervals nobody quotes.
        series = {
            rouge_type: [scores[rouge_type].fmeasure for scores in pair_scores] for rouge_type in rouge.ROUGE_TYPES
        }
        intervals = bootstrap_mean_intervals(series, samples=bootstrap_samples, confidence=confidence, seed=seed)
        section["rouge_bootstrap"] = {
            "samples": bootstrap_samples,
            "confidence": confidence,
            "seed": seed,
            **{rouge_type: {"fmeasure": intervals[rouge_type]._asdict()} for rouge_type in rouge.ROUGE_TYPES},
        }
    per_record = {
        ref.id: {rouge_type: scores[rouge_type].fmeasure for rouge_type in rouge.ROUGE_TYPES}
        for (ref, _), scores in zip(usable, pair_scores, strict=True)
    }
    return section, per_record


def _classification(
    usable: list[tuple[Reference, dict[str, Any]]], joined: Joined, threshold: float, multi_label: bool | None
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    if multi_label is None:
        multi_label = any(isinstance(ref.label, tuple) for ref, _ in usable)
    true_labels = [_target(ref, ref.label) for ref, _ in usable]
    known = set(joined.candidate_labels)
    for label in true_labels:
        known.update(label if isinstance(label, tuple) else (label,))
    matcher = classification.LabelMatcher(known)

    per_record: dict[str, dict[str, Any]] = {}
    if not multi_label:
        truth = [label if isinstance(label, str) else ",".join(label) for label in true_labels]
        predicted = [matcher.match(classification.single_answer(record)) for _, record in usable]
        metrics = classification.single_label_metrics(truth, predicted)
        for (ref, _), true, pred in zip(usable, truth, predicted, strict=True):
            per_record[ref.id] = {"label": true, "predicted": pred, "correct": true == pred}
    else:
        truth_sets = [frozenset(label) if isinstance(label, tuple) else frozenset((label,)) for label in true_labels]
        predicted_sets = [classification.answered_label_set(record, matcher, threshold) for _, record in usable]
        metrics = classification.multi_label_metrics(truth_sets, predicted_sets)
        metrics["threshold"] = threshold
        for (ref, _), true_set, predicted_set in zip(usable, truth_sets, predicted_sets, strict=True):
            per_record[ref.id] = {
                "label": sorted(true_set),
                "predicted": sorted(predicted_set),
                "correct": true_set == predicted_set,
            }
    return metrics, per_record


def _target(ref: Reference, value: str | tuple[str, ...] | None) -> str | tuple[str, ...]:
    """A usable reference's text or label: evaluate only keeps references that have the metric's target."""
    if value is None:
        raise EvaluationError(f"reference {ref.id!r} has nothing to score against")
    return value
