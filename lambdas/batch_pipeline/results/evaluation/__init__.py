"""Evaluation of a run's predictions: ROUGE (exactly rouge-score's) and classification metrics.

Entry point: `evaluate_files(predictions_lines, references_lines, metric)` -> (report, per-record
scores by str(id)). The pieces (`rouge.score_pairs`, `classification.single_label_metrics`,
`classification.multi_label_metrics`, `bootstrap.bootstrap_mean_intervals`, the join) are usable alone.
"""

from batch_pipeline.results.evaluation.core import Metric, evaluate_files, evaluate_joined, infer_metric
from batch_pipeline.results.evaluation.join import EvaluationError, Joined, Reference, join_predictions, read_references

__all__ = [
    "EvaluationError",
    "Joined",
    "Metric",
    "Reference",
    "evaluate_files",
    "evaluate_joined",
    "infer_metric",
    "join_predictions",
    "read_references",
]
