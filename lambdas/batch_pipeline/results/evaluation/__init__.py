"""Scoring a run's predictions: ROUGE (exactly rouge-score's) and classification metrics.

- streaming.py: what the workflow runs, in collect's one pass in bounded memory (each record scored, the run-level
  sums merged into evaluation.json);
- rouge.py, classification.py, bootstrap.py: the metrics and their intervals;
- errors.py: EvaluationError, and how a report counts what it could not score.
`batch-pipeline evaluate` (local/batch_pipeline_local/cli/evaluate.py) joins raw output files to a references file
with the same metrics; that join is the CLI's and is not in the Lambda asset.
"""
