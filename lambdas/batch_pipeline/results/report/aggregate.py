"""What the run report needs from the records, gathered as collect writes them, in memory that does not grow with them.

Collect already sees every joined and scored record once (collect._join_partition); `ReportTally.add` looks at each
batch there, so the report costs no second pass over predictions.jsonl. It keeps:
  - a fixed-bin histogram of each record's score: ROUGE-L F1 for ROUGE runs, the top label score (the model's
    confidence) for classification answers that carry scores;
  - the best and worst EXAMPLES records in two bounded heaps, their texts clipped when they enter a heap;
  - errors by code, at most MAX_CODES distinct codes (the rest count under OTHER_CODE), with one message each.
The summary travels in the state (contracts.ReportAggregates inside CollectSummary), so it is bounded in bytes
whatever the records hold: every text is clipped to a JSON-escaped byte budget (see `clip`).
"""

from __future__ import annotations

import heapq
import json
import math
from typing import Any

BINS = 20
EXAMPLES = 10
MAX_CODES = 50
OTHER_CODE = "(other codes)"
# Bytes of ASCII-escaped JSON per kept text: the worst case (every character escaped as \\uXXXX) stays bounded.
ID_BYTES = 160
TEXT_BYTES = 480
CODE_BYTES = 64
MESSAGE_BYTES = 240
CLIPPED = " [...]"

ROUGE_SCORE = "rougeL F1"
CONFIDENCE_SCORE = "confidence"


def clip(value: Any, budget: int) -> str:
    """`value` as text (JSON for a non-string), cut so its ASCII-escaped JSON string takes at most `budget` bytes."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if len(json.dumps(text)) <= budget:
        return text
    keep = min(len(text), budget)
    while keep > 0 and len(json.dumps(text[:keep] + CLIPPED)) > budget:
        keep = keep * 3 // 4
    return text[:keep] + CLIPPED


def _confidence(record: dict[str, Any]) -> float | None:
    scores = record.get("scores")
    if not isinstance(scores, list) or not scores:
        return None
    numbers = [s for s in scores if isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s)]
    return float(max(numbers)) if numbers else None


class ReportTally:
    """Streaming aggregates for report.html; `add` each batch of predictions.jsonl lines, then `summary()`."""

    def __init__(self, bins: int = BINS, examples: int = EXAMPLES) -> None:
        self.bins = [0] * bins
        self.examples = examples
        self.score_name: str | None = None
        self.scored = 0
        self.records = 0
        self.failed = 0
        self.codes: dict[str, int] = {}
        self.messages: dict[str, str] = {}
        self._seq = 0
        # (rank, -seq, example): `_best` keeps the highest ranks, `_worst` the lowest (ranks negated).
        self._best: list[tuple[float, int, dict[str, Any]]] = []
        self._worst: list[tuple[float, int, dict[str, Any]]] = []

    def add(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            self._add(record)

    def _add(self, record: dict[str, Any]) -> None:
        self.records += 1
        self._seq += 1
        error = record.get("error")
        if error is not None:
            self._error(error)
            return
        metrics = record.get("metrics")
        if not isinstance(metrics, dict):
            return
        if "rougeL" in metrics:
            self.score_name = ROUGE_SCORE
            score = float(metrics["rougeL"]["fmeasure"])
            rank = score
        else:
            confidence = _confidence(record)
            if confidence is not None:
                self.score_name = CONFIDENCE_SCORE
            score = confidence if confidence is not None else math.nan
            # Confidently wrong is worst; confidently right is best (1.0 when the answer carries no scores).
            strength = confidence if confidence is not None else 1.0
            rank = strength if metrics.get("correct") else -strength
        if not math.isnan(score):
            self.scored += 1
            self.bins[min(len(self.bins) - 1, max(0, int(score * len(self.bins))))] += 1
        self._keep(self._best, rank, record, metrics, score)
        self._keep(self._worst, -rank, record, metrics, score)

    def _keep(
        self,
        heap: list[tuple[float, int, dict[str, Any]]],
        rank: float,
        record: dict[str, Any],
        metrics: dict[str, Any],
        score: float,
    ) -> None:
        entry_key = (rank, -self._seq)
        if len(heap) >= self.examples and entry_key <= heap[0][:2]:
            return  # not among the kept ones: nothing is copied or clipped
        entry = (rank, -self._seq, self._example(record, metrics, score))
        if len(heap) < self.examples:
            heapq.heappush(heap, entry)
        else:
            heapq.heapreplace(heap, entry)

    @staticmethod
    def _example(record: dict[str, Any], metrics: dict[str, Any], score: float) -> dict[str, Any]:
        example: dict[str, Any] = {
            "id": clip(record.get("id"), ID_BYTES),
            "score": None if math.isnan(score) else round(score, 6),
        }
        if "rougeL" in metrics:
            example["prediction"] = clip(record.get("prediction"), TEXT_BYTES)
            example["reference"] = clip(record.get("reference"), TEXT_BYTES)
        else:
            example["prediction"] = clip(metrics.get("predicted"), TEXT_BYTES)
            example["reference"] = clip(metrics.get("label"), TEXT_BYTES)
            example["correct"] = bool(metrics.get("correct"))
        return example

    def _error(self, error: Any) -> None:
        self.failed += 1
        code = clip(error.get("code") if isinstance(error, dict) else None, CODE_BYTES) or "error"
        if code not in self.codes and len(self.codes) >= MAX_CODES:
            code = OTHER_CODE
        self.codes[code] = self.codes.get(code, 0) + 1
        if code not in self.messages and code != OTHER_CODE:
            message = error.get("message") if isinstance(error, dict) else error
            self.messages[code] = clip(message if message is not None else "", MESSAGE_BYTES)

    def summary(self) -> dict[str, Any]:
        """contracts.ReportAggregates: bounded by BINS, EXAMPLES, MAX_CODES and the byte budgets."""
        worst = sorted(self._worst, key=lambda e: e[:2], reverse=True)
        # With fewer than 2 x EXAMPLES scored records the two heaps share records; each is listed once, as worst.
        in_worst = {entry[1] for entry in worst}
        best = [entry for entry in sorted(self._best, key=lambda e: e[:2], reverse=True) if entry[1] not in in_worst]
        return {
            "records": self.records,
            "failed": self.failed,
            "score": self.score_name,
            "scored": self.scored,
            "histogram": {"bins": len(self.bins), "low": 0.0, "high": 1.0, "counts": list(self.bins)}
            if self.scored
            else None,
            "best": [entry[2] for entry in best],
            "worst": [entry[2] for entry in worst],
            "errors_by_code": [
                {"code": code, "records": count, "example": self.messages.get(code)}
                for code, count in sorted(self.codes.items(), key=lambda item: (-item[1], item[0]))
            ],
        }
