"""Evaluation in the one pass collect makes over the records, in memory that does not grow with their number.

Collect joins each record to its reference or label and, as it writes predictions.jsonl, gives it `metrics`
(`RecordScorer`, in batches of SCORE_BATCH through the rouge-score-rs engine) and adds the batch to the run-level
sums (`RunScores`: running sums for the ROUGE means, confusion counts for classification). The sums are mergeable
partial sums: scores gathered in parts merge into exactly what one pass gives. `run_evaluation` makes them the
evaluation report, which collect writes to evaluation.json; nothing reads predictions.jsonl back.

Per-record `metrics` in predictions.jsonl:
  rouge:                {"rouge1": {"precision", "recall", "fmeasure"}, "rouge2": ..., "rougeL": ..., "rougeLsum": ...}
  single-label class.:  {"label": true, "predicted": class, "correct": bool}
  multi-label class.:   {"label": [true...], "predicted": [class...], "correct": bool}

The report has the shape `batch-pipeline evaluate` gives (its evaluate_files), so evaluation.json, the manifest and
the CLI read it the same way.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Iterable
from typing import Any

from batch_pipeline.results.evaluation import classification, rouge
from batch_pipeline.results.evaluation.bootstrap import bootstrap_mean_intervals
from batch_pipeline.results.evaluation.errors import EvaluationError, count_codes, error_code

__all__ = ["SCORE_BATCH", "ExactSum", "RecordScorer", "RougeTotals", "RunScores", "headline", "run_evaluation"]

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

    def merge(self, other: ExactSum) -> None:
        """Another sum's values added to this one, as if they had been added here."""
        for value in other._partials + other._pending:
            self.add(value)

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

    def merge(self, other: RougeTotals) -> None:
        self.count += other.count
        for key, total in self._sums.items():
            total.merge(other._sums[key])
        if self.series is not None and other.series is not None:
            for rouge_type, values in other.series.items():
                self.series[rouge_type].extend(values)

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


class RunScores:
    """The run-level sums of collect's per-record scores, added as collect writes each batch of predictions.jsonl:
    running sums for the ROUGE means, confusion counts for classification, error codes, token counts. Partial sums
    merge exactly (`merge`), so scores gathered in parts add up to what one pass gives; `report` is the evaluation.

    Memory does not grow with the number of records, except the per-record F-measures a bootstrap interval
    resamples, kept only when `keep_series` (array('f'), 4 bytes per record per ROUGE type)."""

    def __init__(self, metric: str, *, keep_series: bool = False) -> None:
        if metric not in ("rouge", "classification"):
            raise EvaluationError(f"unknown metric {metric!r}; use rouge or classification")
        self.metric = metric
        self.target_field, self.other_field = ("reference", "label") if metric == "rouge" else ("label", "reference")
        self.rouge = RougeTotals(keep_series=keep_series) if metric == "rouge" else None
        self.pairs: Counter[tuple[Any, Any]] = Counter()
        self.multi = classification.MultiLabelCounts()
        self.codes: Counter[str] = Counter()
        self.lines = self.records = self.scored = self.without_target = 0
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None

    def add(self, records: Iterable[dict[str, Any]]) -> None:
        """Joined records as collect writes them to predictions.jsonl, each with its `metrics` once scored."""
        for record in records:
            self.lines += 1
            if record.get("input_tokens") is not None:
                self.input_tokens = (self.input_tokens or 0) + record["input_tokens"]
            if record.get("output_tokens") is not None:
                self.output_tokens = (self.output_tokens or 0) + record["output_tokens"]
            if record.get(self.target_field) is None:
                self.without_target += record.get(self.other_field) is not None
                continue
            self.records += 1
            metrics = record.get("metrics")
            if metrics is None:
                self.codes[error_code(record) if record.get("error") is not None else "no_prediction"] += 1
                continue
            self.scored += 1
            if self.rouge is not None:
                self.rouge.add(metrics)
            elif isinstance(metrics["label"], list):
                self.multi.add(frozenset(metrics["label"]), frozenset(metrics["predicted"]))
            else:
                self.pairs[(metrics["label"], metrics["predicted"])] += 1

    def merge(self, other: RunScores) -> None:
        """Add another part's sums to these (same metric): the result is what one pass over both parts gives."""
        if other.metric != self.metric:
            raise EvaluationError(f"cannot merge {other.metric} scores into {self.metric} scores")
        if self.rouge is not None and other.rouge is not None:
            self.rouge.merge(other.rouge)
        self.pairs.update(other.pairs)
        self.multi.merge(other.multi)
        self.codes.update(other.codes)
        self.lines += other.lines
        self.records += other.records
        self.scored += other.scored
        self.without_target += other.without_target
        for name in ("input_tokens", "output_tokens"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if theirs is not None:
                setattr(self, name, (mine or 0) + theirs)

    def report(
        self,
        collect: dict[str, Any] | None = None,
        *,
        bootstrap_samples: int = 0,
        confidence: float = 0.95,
        seed: int = 0,
    ) -> dict[str, Any]:
        """The evaluation report (evaluation.json). `collect` is collect's result: what it alone saw (references with
        no record, outputs that matched no record, duplicates, how it joined, how it scored) goes in as it said.
        `bootstrap_samples` > 0 adds seeded bootstrap intervals of the ROUGE means (needs `keep_series`)."""
        collect = collect or {}
        missing = int(collect.get("references_unmatched") or 0)
        report: dict[str, Any] = {
            "metric": self.metric,
            "records": self.records + missing,
            "scored": self.scored,
            "missing": missing,
            "errors": sum(self.codes.values()),
            "error_codes": count_codes(self.codes.elements()),
            "missing_examples": list(collect.get("references_unmatched_examples") or []),
            "references_without_target": self.without_target,
            "prediction_lines": self.lines,
            # Collect writes every line itself, so none is unreadable; the field keeps the report's shape (core.py).
            "invalid_lines": 0,
            "invalid_examples": [],
            "unmatched": int(collect.get("unmatched_outputs") or 0),
            "unmatched_examples": [],
            "duplicates": int(collect.get("duplicate_outputs") or 0),
            "unidentified": int(collect.get("unreadable_output_lines") or 0),
            "joined_by": collect.get("joined_by", "id"),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
        }
        if self.rouge is not None:
            report.update(_rouge_sections(self.rouge, collect, bootstrap_samples, confidence, seed))
        else:
            multi = self.multi if self.multi.count else None
            report.update(_classification_sections(self.pairs, multi, collect))
        return report


def run_evaluation(metric: str, scores: RunScores | None, collect: dict[str, Any]) -> dict[str, Any]:
    """evaluation.json for a collected run: the report, or why there is none. `metric` is the pipeline's evaluation
    ("rouge", "classification", "none"); `scores` are collect's sums, None when it scored nothing."""
    if metric == "none":
        return {"metric": None, "skipped": "evaluation is off for this pipeline"}
    if scores is None:
        return {"metric": None, "skipped": "the input carried no references or labels"}
    report = scores.report(collect)
    if not report["records"] and not report["references_without_target"]:
        return {"metric": None, "skipped": "the input carried no references or labels"}
    return report


def headline(evaluation: dict[str, Any] | None) -> dict[str, Any] | None:
    """The few numbers a notification, the manifest or a glance at the console needs; evaluation.json has the rest."""
    if not evaluation or not evaluation.get("metric"):
        return None
    result = {"metric": evaluation["metric"]}
    for key in ("records", "scored", "missing", "errors", "accuracy", "macro_f1"):
        if key in evaluation:
            result[key] = evaluation[key]
    rouge_means = evaluation.get("rouge")
    if rouge_means:
        result["rouge_f"] = {name: values.get("fmeasure") for name, values in rouge_means.items()}
    return result


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
