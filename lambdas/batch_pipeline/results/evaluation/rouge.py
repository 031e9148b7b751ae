"""ROUGE exactly as Google's `rouge-score` 0.1.2 computes it, on the Rust engine `rouge-score-rs`.

Why this engine: measured in one run on this project's generated CNN/DailyMail-shaped pairs
(bench/evaluate.py), `rouge-score-rs` scores ~70x faster than `rouge-score` and gives bit-identical
floats (tests/unit/test_rouge_differential.py checks every pair against pinned rouge-score), while
importing in ~1 ms with no dependencies; rouge-score needs numpy, nltk and absl and imports in
~0.2-1 s. The pure-Python `rapidrouge` was measured at ~1.5x rouge-score, and `rouge-rust` has no
rougeLsum and no stemming.

Semantics (those of rouge-score's `RougeScorer`): lowercase, every character outside [a-z0-9]
separates tokens (so non-ASCII letters are separators, as in rouge-score), optional Porter stemming
of tokens longer than 3 characters; rougeLsum is the summary-level LCS over sentences split on
"\\n" (empty sentences dropped); a list of references scores against the best one per ROUGE type
(`score_multi`, as Hugging Face `evaluate` does for several references).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rouge_score_rs import rouge_scorer
from rouge_score_rs.scoring import Score

__all__ = ["MEASURES", "ROUGE_TYPES", "Score", "mean_scores", "score_pairs"]

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")
MEASURES = ("precision", "recall", "fmeasure")

_scorers: dict[bool, rouge_scorer.RougeScorer] = {}


def _scorer(use_stemmer: bool) -> rouge_scorer.RougeScorer:
    # Built once per process: a warm Lambda reuses it across invocations.
    if use_stemmer not in _scorers:
        _scorers[use_stemmer] = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=use_stemmer)
    return _scorers[use_stemmer]


def score_pairs(
    references: Sequence[str | Sequence[str]],
    predictions: Sequence[str],
    *,
    use_stemmer: bool = False,
) -> list[dict[str, Score]]:
    """One `{rouge_type: Score(precision, recall, fmeasure)}` per (reference, prediction) pair, in order.

    A reference may be a list of strings: the pair then takes, per ROUGE type, the reference with
    the highest F-measure. Pairs with one reference are scored in one native batch call, which uses
    every core and releases the GIL (limit it with RAYON_NUM_THREADS).
    """
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} references but {len(predictions)} predictions")
    scorer = _scorer(use_stemmer)
    single = [i for i, reference in enumerate(references) if isinstance(reference, str)]
    results: list[dict[str, Score] | None] = [None] * len(references)
    batch = scorer.score_batch([references[i] for i in single], [predictions[i] for i in single])
    for i, scores in zip(single, batch, strict=True):
        results[i] = scores
    for i, reference in enumerate(references):
        if results[i] is None:
            targets = list(reference)
            if not targets:
                raise ValueError(f"pair {i}: a list of references must not be empty")
            results[i] = scorer.score_multi(targets, predictions[i])
    return results  # type: ignore[return-value]


def mean_scores(pair_scores: Sequence[dict[str, Score]]) -> dict[str, dict[str, float | None]]:
    """The arithmetic mean of each measure over the pairs (None when there are no pairs), summed with
    math.fsum so the mean does not depend on the order of the pairs.

    This is rouge-score's per-pair scores averaged, i.e. Hugging Face `evaluate`'s
    `use_aggregator=False` followed by a mean; the bootstrap's `mid` is the other, resampled figure.
    """
    count = len(pair_scores)
    means: dict[str, dict[str, float | None]] = {}
    for rouge_type in ROUGE_TYPES:
        means[rouge_type] = {}
        for position, measure in enumerate(MEASURES):
            if count == 0:
                means[rouge_type][measure] = None
            else:
                total = math.fsum(scores[rouge_type][position] for scores in pair_scores)
                means[rouge_type][measure] = total / count
    return means
