"""Classification metrics for single-label and multi-label (zero-shot `multi_class`) runs.

Single-label: one true label and one predicted label per record. Metrics follow scikit-learn's
conventions so numbers can be checked against it: classes are the labels that occur in the
references or the predictions; precision, recall and F1 of a class with no predicted (or no true)
records are 0.0; `macro_f1` is the unweighted mean of the per-class F1; the confusion matrix has true
labels as rows and predicted labels as columns.

Multi-label: a set of true labels and a set of predicted labels per record. A zero-shot prediction
predicts every label whose score is at least `threshold` (default 0.5; with `multi_class` true the
model scores each label independently, so 0.5 is the model's own "entailed" boundary). Reported:
`accuracy` is subset accuracy (the predicted set equals the true set), per-label precision/recall/F1
treat each label as its own binary problem, `macro_f1` is their unweighted mean over the labels that
occur in the references or the predictions, `micro_f1` pools true/false positives and false
negatives over all labels, and `hamming_loss` is the fraction of wrong (record, label) decisions.
The confusion matrix is one `[[tn, fp], [fn, tp]]` per label, as scikit-learn's
`multilabel_confusion_matrix`.

Free-text predictions (an LLM answering "Positive." for the class "positive") are mapped to a
known class when they equal it ignoring case, surrounding whitespace, quotes and trailing
punctuation; an answer matching no known class is predicted as OTHER_LABEL, which is always wrong.
In multi-label runs, free text is split on commas, semicolons and newlines first.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "OTHER_LABEL",
    "LabelMatcher",
    "MultiLabelCounts",
    "multi_label_metrics",
    "predicted_label_set",
    "answered_label_set",
    "single_answer",
    "single_label_metrics",
    "single_label_metrics_from_pairs",
]

OTHER_LABEL = "<other>"
DEFAULT_THRESHOLD = 0.5

_LABEL_SEPARATORS = re.compile(r"[,;\n]")


def _canonical(text: str) -> str:
    return text.strip().strip("\"'`").rstrip(".!?:;,").strip().casefold()


class LabelMatcher:
    """Maps a model's answer to one of the known classes, or to OTHER_LABEL."""

    def __init__(self, known_labels: Iterable[str]):
        self._known = set(known_labels)
        self._by_canonical: dict[str, str] = {}
        for label in sorted(self._known):
            self._by_canonical.setdefault(_canonical(label), label)

    def match(self, answer: str) -> str:
        if answer in self._known:
            return answer
        return self._by_canonical.get(_canonical(answer), OTHER_LABEL)

    def match_many(self, answer: str) -> frozenset[str]:
        """The classes named in a free-text multi-label answer ("sports, politics")."""
        if answer in self._known:
            return frozenset((answer,))
        parts = [part for part in _LABEL_SEPARATORS.split(answer) if part.strip()]
        return frozenset(self.match(part) for part in parts)


def single_answer(record: dict[str, Any]) -> str:
    """A normalised prediction record's one answer: its text, or else its top-scored label (as zero-shot ranks them)."""
    if record.get("prediction") is not None:
        prediction: str = record["prediction"]
        return prediction
    scores = record["scores"]
    return str(record["labels"][max(range(len(scores)), key=scores.__getitem__)])


def answered_label_set(
    record: dict[str, Any], matcher: LabelMatcher, threshold: float = DEFAULT_THRESHOLD
) -> frozenset[str]:
    """A normalised prediction record's multi-label answer: scored labels above `threshold`, else its free text."""
    if record.get("labels") and record.get("scores") is not None:
        return predicted_label_set(record["labels"], record["scores"], threshold)
    return matcher.match_many(record["prediction"])


def predicted_label_set(
    labels: Sequence[str], scores: Sequence[float], threshold: float = DEFAULT_THRESHOLD
) -> frozenset[str]:
    """The multi-label decision rule: every label scored at least `threshold`."""
    return frozenset(str(label) for label, score in zip(labels, scores, strict=True) if score >= threshold)


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def _f1(tp: int, fp: int, fn: int) -> float:
    # scikit-learn's form: identical to 2PR/(P+R) where defined, and 0.0 where it is not.
    return _ratio(2 * tp, 2 * tp + fp + fn)


def _ordered(labels: Iterable[str]) -> list[str]:
    # OTHER_LABEL last, so the table reads as the real classes first.
    return sorted(set(labels), key=lambda label: (label == OTHER_LABEL, label))


def single_label_metrics(true_labels: Sequence[str], predicted_labels: Sequence[str]) -> dict[str, Any]:
    """accuracy, macro_f1, per_class {precision, recall, f1, support} and confusion_matrix."""
    if len(true_labels) != len(predicted_labels):
        raise ValueError(f"{len(true_labels)} true labels but {len(predicted_labels)} predictions")
    return single_label_metrics_from_pairs(Counter(zip(true_labels, predicted_labels, strict=True)))


def single_label_metrics_from_pairs(pairs: Counter[tuple[Any, Any]]) -> dict[str, Any]:
    """single_label_metrics from the confusion counts alone: {(true, predicted): records}.

    Everything the report says follows from these counts, so a streaming evaluation keeps only them."""
    count = sum(pairs.values())
    classes = _ordered(label for pair in pairs for label in pair)
    support: Counter[Any] = Counter()
    predicted: Counter[Any] = Counter()
    for (true, pred), records in pairs.items():
        support[true] += records
        predicted[pred] += records
    per_class = {}
    for label in classes:
        tp = pairs[(label, label)]
        fp, fn = predicted[label] - tp, support[label] - tp
        per_class[label] = {
            "precision": _ratio(tp, tp + fp),
            "recall": _ratio(tp, tp + fn),
            "f1": _f1(tp, fp, fn),
            "support": support[label],
        }
    correct = sum(pairs[(label, label)] for label in classes)
    return {
        "multi_label": False,
        "accuracy": _ratio(correct, count) if count else None,
        "macro_f1": sum(c["f1"] for c in per_class.values()) / len(classes) if classes else None,
        "per_class": per_class,
        "confusion_matrix": {
            "rows": "true label",
            "columns": "predicted label",
            "labels": classes,
            "matrix": [[pairs[(true, pred)] for pred in classes] for true in classes],
        },
    }


def multi_label_metrics(
    true_sets: Sequence[frozenset[str]], predicted_sets: Sequence[frozenset[str]]
) -> dict[str, Any]:
    """Subset accuracy, macro/micro F1, hamming loss, per-label scores and per-label 2x2 matrices."""
    if len(true_sets) != len(predicted_sets):
        raise ValueError(f"{len(true_sets)} true label sets but {len(predicted_sets)} predictions")
    counts = MultiLabelCounts()
    for truth, prediction in zip(true_sets, predicted_sets, strict=True):
        counts.add(truth, prediction)
    return counts.metrics()


class MultiLabelCounts:
    """The counts multi_label_metrics needs, added one record at a time (memory grows with labels, not records)."""

    def __init__(self) -> None:
        self.count = 0
        self.exact = 0
        self.labels: set[str] = set()
        self.tp: Counter[str] = Counter()
        self.fp: Counter[str] = Counter()
        self.fn: Counter[str] = Counter()

    def add(self, truth: frozenset[str], prediction: frozenset[str]) -> None:
        self.count += 1
        self.exact += truth == prediction
        self.labels.update(truth, prediction)
        self.tp.update(truth & prediction)
        self.fp.update(prediction - truth)
        self.fn.update(truth - prediction)

    def merge(self, other: MultiLabelCounts) -> None:
        """Another part's counts added to these: what one pass over both parts counts."""
        self.count += other.count
        self.exact += other.exact
        self.labels.update(other.labels)
        self.tp.update(other.tp)
        self.fp.update(other.fp)
        self.fn.update(other.fn)

    def metrics(self) -> dict[str, Any]:
        count, tp, fp, fn = self.count, self.tp, self.fp, self.fn
        labels = _ordered(self.labels)
        per_class, matrices = {}, []
        for label in labels:
            tn = count - tp[label] - fp[label] - fn[label]
            per_class[label] = {
                "precision": _ratio(tp[label], tp[label] + fp[label]),
                "recall": _ratio(tp[label], tp[label] + fn[label]),
                "f1": _f1(tp[label], fp[label], fn[label]),
                "support": tp[label] + fn[label],
            }
            matrices.append([[tn, fp[label]], [fn[label], tp[label]]])
        total_tp, total_fp, total_fn = sum(tp.values()), sum(fp.values()), sum(fn.values())
        decisions = count * len(labels)
        return {
            "multi_label": True,
            "accuracy": _ratio(self.exact, count) if count else None,
            "macro_f1": sum(c["f1"] for c in per_class.values()) / len(labels) if labels else None,
            "micro_precision": _ratio(total_tp, total_tp + total_fp),
            "micro_recall": _ratio(total_tp, total_tp + total_fn),
            "micro_f1": _f1(total_tp, total_fp, total_fn),
            "hamming_loss": _ratio(total_fp + total_fn, decisions) if count else None,
            "per_class": per_class,
            "confusion_matrix": {
                "layout": "per label [[tn, fp], [fn, tp]]",
                "labels": labels,
                "matrix": matrices,
            },
        }
