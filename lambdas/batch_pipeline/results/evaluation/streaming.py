"""Evaluation in one pass, in memory that does not grow with the number of records.

The workflow scores in two places, each reading its data once:
  - collect joins each record to its reference or label and gives it `metrics` (`RecordScorer`), in batches of
    SCORE_BATCH through the rouge-score-rs engine, as it writes predictions.jsonl;
  - evaluate reads predictions.jsonl once and sums those per-record scores (`summarize_predictions`): running
    sums for the ROUGE means, confusion counts for classification. Nothing per record is kept, except the
    per-record F-measures a bootstrap interval resamples, in array('f') (4 bytes per record per ROUGE type).

Per-record `metrics` in predictions.jsonl:
  rouge:                {"rouge1": {"precision", "recall", "fmeasure"}, "rouge2": ..., "rougeL": ..., "rougeLsum": ...}
  single-label class.:  {"label": true, "predicted": class, "correct": bool}
  multi-label class.:   {"label": [true...], "predicted": [class...], "correct": bool}

The report has the shape `batch-pipeline evaluate` gives (its evaluate_files), so evaluation.json and the manifest read
it the same way.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Iterable
from typing import Any

import orjson

from batch_pipeline.results.evaluation import classification, rouge
from batch_pipeline.results.evaluation.bootstrap import bootstrap_mean_intervals
from batch_pipeline.results.evaluation.errors import EXAMPLES_KEPT, EvaluationError, count_codes, error_code

__all__ = ["SCORE_BATCH", "ExactSum", "RecordScorer", "RougeTotals", "summarize_predictions"]

# Pairs per native scoring call: large enough that the call overhead vanishes, small enough to hold in memory.
SCORE_BATCH = 2048
_FLUSH = 4096


class ExactSum:
    """A running sum as math.fsum would give it over all the values, in O(1) memory.

    Values are buffered and folded into a (sum, remainder) pair with math.fsum: the pair carries the total to
    about 2**-106 of its size, so the rounded result does not depend on the order the values came in."""

    __slots__ = ("_pending", "_partials")

    def __init__(self) -> None:
        self._pending: list[float] = []
        self._partials: list[float] = []

    def add(self, value: float) -> None:
        self._pending.append(value)
        if len(self._pending) >= _FLUSH:
            self._fold()

    def _fold(self) -> None:
        values = self._partials + self._pending
        total = math.fsum(values)
        values.append(-total)
        self._partials = [total, math.fsum(values)]
        self._pending = []

    def value(self) -> float:
        return math.fsum(self._partials + self._pending)


class RougeTotals:
    """Sums of every ROUGE measure, and with `keep_series` the F-measures a bootstrap resamples."""

    def __init__(self, keep_series: bool = False) -> None:
        self.count = 0
        self._sums = {(t, m): ExactSum() for t in rouge.ROUGE_TYPES for m in rouge.MEASURES}
        self.series: dict[str, array[float]] | None = (
            {t: array("f") for t in rouge.ROUGE_TYPES} if keep_series else None
        )

    def add(self, metrics: dict[str, dict[str, float]]) -> None:
        self.count += 1
        for rouge_type in rouge.ROUGE_TYPES:
            scores = metrics[rouge_type]
            for measure in rouge.MEASURES:
                self._sums[(rouge_type, measure)].add(scores[measure])
            if self.series is not None:
                self.series[rouge_type].append(scores["fmeasure"])

    def means(self) -> dict[str, dict[str, float | None]]:
        return {
            t: {m: (self._sums[(t, m)].value() / self.count if self.count else None) for m in rouge.MEASURES}
            for t in rouge.ROUGE_TYPES
        }


def _answer(record: dict[str, Any], metric: str) -> bool:
    if record.get("error") is not None:
        return False
    if record.get("prediction") is not None:
        return True
    return metric == "classification" and bool(record.get("labels")) and record.get("scores") is not None


class RecordScorer:
    """Gives each joined record that has a target and an answer its `metrics`, a batch at a time.

    `known_labels` are every class the run can name (reference labels and the candidate labels the outputs
    carry): free-text answers map onto them (classification.LabelMatcher), so they must be complete before the
    first record is scored; collect gathers them while it stages the data."""

    def __init__(
        self,
        metric: str,
        *,
        known_labels: Iterable[str] = (),
        multi_label: bool = False,
        use_stemmer: bool = False,
        threshold: float = classification.DEFAULT_THRESHOLD,
    ) -> None:
        if metric not in ("rouge", "classification"):
            raise EvaluationError(f"unknown metric {metric!r}; use rouge or classification")
        self.metric = metric
        self.multi_label = multi_label
        self.use_stemmer = use_stemmer
        self.threshold = threshold
        self.matcher = classification.LabelMatcher(known_labels)
        self.scored = 0

    def score(self, records: list[dict[str, Any]]) -> None:
        if self.metric == "rouge":
            usable = [r for r in records if r.get("reference") is not None and _answer(r, "rouge")]
            if not usable:
                return
            pairs = rouge.score_pairs(
                [_text(r["reference"]) for r in usable], [r["prediction"] for r in usable], use_stemmer=self.use_stemmer
            )
            for record, scores in zip(usable, pairs, strict=True):
                record["metrics"] = {
                    t: {"precision": s.precision, "recall": s.recall, "fmeasure": s.fmeasure} for t, s in scores.items()
                }
            self.scored += len(usable)
            return
        for record in records:
            label = record.get("label")
            if label is None or not _answer(record, "classification"):
                continue
            self.scored += 1
            if not self.multi_label:
                true = ",".join(map(str, label)) if isinstance(label, list) else str(label)
                predicted = self.matcher.match(classification.single_answer(record))
                record["metrics"] = {"label": true, "predicted": predicted, "correct": true == predicted}
            else:
                truth = frozenset(map(str, label)) if isinstance(label, list) else frozenset((str(label),))
                chosen = classification.answered_label_set(record, self.matcher, self.threshold)
                record["metrics"] = {"label": sorted(truth), "predicted": sorted(chosen), "correct": truth == chosen}


def _text(reference: Any) -> Any:
    return tuple(reference) if isinstance(reference, list) else reference


def summarize_predictions(
    lines: Iterable[bytes],
    metric: str,
    *,
    collect: dict[str, Any] | None = None,
    bootstrap_samples: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """The evaluation report from predictions.jsonl lines carrying collect's per-record `metrics`, in one pass.

    `collect` is collect's result: what it alone saw (references with no record, outputs that matched no record,
    duplicates, how it joined, how it scored) goes into the report as it said."""
    if metric not in ("rouge", "classification"):
        raise EvaluationError(f"unknown metric {metric!r}; use rouge or classification")
    collect = collect or {}
    target_field, other_field = ("reference", "label") if metric == "rouge" else ("label", "reference")
    totals = RougeTotals(keep_series=bootstrap_samples > 0) if metric == "rouge" else None
    pairs: Counter[tuple[Any, Any]] = Counter()
    multi = classification.MultiLabelCounts()
    multi_label = False
    codes: Counter[str] = Counter()
    records = scored = without_target = lines_read = invalid = 0
    invalid_examples: list[str] = []
    input_tokens = output_tokens = None
    for line in lines:
        if not line.strip():
            continue
        lines_read += 1
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            invalid += 1
            _keep_example(invalid_examples, f"line {lines_read}: {error}")
            continue
        if record.get("input_tokens") is not None:
            input_tokens = (input_tokens or 0) + record["input_tokens"]
        if record.get("output_tokens") is not None:
            output_tokens = (output_tokens or 0) + record["output_tokens"]
        if record.get(target_field) is None:
            without_target += record.get(other_field) is not None
            continue
        records += 1
        metrics = record.get("metrics")
        if metrics is None:
            codes[error_code(record) if record.get("error") is not None else "no_prediction"] += 1
            continue
        scored += 1
        if totals is not None:
            totals.add(metrics)
        elif isinstance(metrics["label"], list):
            multi_label = True
            multi.add(frozenset(metrics["label"]), frozenset(metrics["predicted"]))
        else:
            pairs[(metrics["label"], metrics["predicted"])] += 1

    missing_examples = list(collect.get("references_unmatched_examples") or [])
    report: dict[str, Any] = {
        "metric": metric,
        "records": records + int(collect.get("references_unmatched") or 0),
        "scored": scored,
        "missing": int(collect.get("references_unmatched") or 0),
        "errors": sum(codes.values()),
        "error_codes": count_codes(codes.elements()),
        "missing_examples": missing_examples,
        "references_without_target": without_target,
        "prediction_lines": lines_read,
        "invalid_lines": invalid,
        "invalid_examples": invalid_examples,
        "unmatched": int(collect.get("unmatched_outputs") or 0),
        "unmatched_examples": [],
        "duplicates": int(collect.get("duplicate_outputs") or 0),
        "unidentified": int(collect.get("unreadable_output_lines") or 0),
        "joined_by": collect.get("joined_by", "id"),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
    }
    if totals is not None:
        report.update(_rouge_sections(totals, collect, bootstrap_samples, confidence, seed))
    else:
        report.update(_classification_sections(pairs, multi if multi_label else None, collect))
    return report


def _classification_sections(
    pairs: Counter[tuple[Any, Any]], multi: classification.MultiLabelCounts | None, collect: dict[str, Any]
) -> dict[str, Any]:
    """Single-label metrics from (label, predicted) counts, or multi-label ones (with the threshold) if any."""
    if multi is None:
        return classification.single_label_metrics_from_pairs(pairs)
    if pairs:
        raise EvaluationError("predictions.jsonl mixes single-label and multi-label scores")
    return {
        **multi.metrics(),
        "threshold": (collect.get("scoring") or {}).get("threshold", classification.DEFAULT_THRESHOLD),
    }


def _keep_example(examples: list[str], example: str) -> None:
    """Keeps the first EXAMPLES_KEPT examples for the report; the count says how many there were."""
    if len(examples) < EXAMPLES_KEPT:
        examples.append(example)


def _rouge_sections(
    totals: RougeTotals, collect: dict[str, Any], bootstrap_samples: int, confidence: float, seed: int
) -> dict[str, Any]:
    """The report's rouge means, the options they were scored with and, when asked for, bootstrap intervals."""
    sections: dict[str, Any] = {
        "rouge": totals.means(),
        "rouge_options": {
            **{"use_stemmer": False, "tokenizer": "rouge-score default", "sentence_split": "newline"},
            **(collect.get("scoring") or {}).get("options", {}),
        },
    }
    if bootstrap_samples > 0 and totals.count and totals.series is not None:
        intervals = bootstrap_mean_intervals(totals.series, samples=bootstrap_samples, confidence=confidence, seed=seed)
        sections["rouge_bootstrap"] = {
            "samples": bootstrap_samples,
            "confidence": confidence,
            "seed": seed,
            "values": "per-record F-measures kept as 32-bit floats",
            **{t: {"fmeasure": intervals[t]._asdict()} for t in rouge.ROUGE_TYPES},
        }
    return sections
