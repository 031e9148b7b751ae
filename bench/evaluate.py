"""Benchmark: our ROUGE scoring against Google's rouge-score in the same run, and a 50,000-record
evaluation end to end from files.

    .venv/bin/python bench/evaluate.py                      # 10,000 pairs + 50,000 records end to end
    .venv/bin/python bench/evaluate.py --pairs 20000 --stemmer

Pairs are generated (bench/synthetic_summaries.py): CNN/DailyMail-shaped highlights of ~55 words in
3-4 newline-separated sentences, and model-like summaries derived from them. The baseline is
rouge-score 0.1.2 (requirements-dev.txt) scoring the same pairs, one `score` call per pair as
`evaluate`'s rouge does; every pair is also checked for exact equality. Rates are medians over
interleaved rounds, because this machine is shared (see `scoring`).

End to end times `batch-pipeline evaluate` (in-process, then as a fresh process) over files on disk:
read SageMaker `.out` lines (Python-literal, as JumpStart writes them) and a references file, join
by id, score, write the JSON report and per-record scores. Targets (issue 6): scoring >= 30x
rouge-score's pairs/s; 50,000 records end to end < 10 s.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from batch_pipeline.results.evaluation.rouge import ROUGE_TYPES, _scorer, score_pairs  # noqa: E402
from batch_pipeline.storage.layout import EVALUATION, REFERENCES  # noqa: E402
from bench.synthetic_summaries import make_pairs  # noqa: E402

SPEED_TARGET = 30.0
END_TO_END_TARGET_S = 10.0


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def scoring(pairs: list[tuple[str, str]], use_stemmer: bool, rounds: int) -> dict:
    """Rates in pairs/s, as the median over `rounds` interleaved rounds.

    Each round times rouge-score on its own slice of the pairs (the slices add up to all of them)
    and ours on all of them, back to back, so a burst of load on a shared machine hits both sides
    of the ratio alike.
    """
    from rouge_score import rouge_scorer as google_rouge

    references = [reference for reference, _ in pairs]
    predictions = [prediction for _, prediction in pairs]
    google = google_rouge.RougeScorer(list(ROUGE_TYPES), use_stemmer=use_stemmer)
    native = _scorer(use_stemmer)
    slice_size = -(-len(pairs) // rounds)
    google_rates, batch_rates, single_rates, mismatches = [], [], [], 0
    for start in range(0, len(pairs), slice_size):
        chunk = pairs[start : start + slice_size]
        google_scores, google_s = timed(lambda pairs_: [google.score(r, p) for r, p in pairs_], chunk)
        ours, batch_s = timed(score_pairs, references, predictions, use_stemmer=use_stemmer)
        # One pair per call on one thread: the engine without the batch call's parallelism.
        _, single_s = timed(lambda: [native.score(r, p) for r, p in pairs])
        google_rates.append(len(chunk) / google_s)
        batch_rates.append(len(pairs) / batch_s)
        single_rates.append(len(pairs) / single_s)
        mismatches += sum(
            tuple(ours[start + i][t]) != tuple(theirs[t]) for i, theirs in enumerate(google_scores) for t in ROUGE_TYPES
        )
    google_rate, batch_rate, single_rate = map(statistics.median, (google_rates, batch_rates, single_rates))
    return {
        "pairs": len(pairs),
        "use_stemmer": use_stemmer,
        "rounds": len(google_rates),
        "rouge_score_pairs_per_s": round(google_rate),
        "ours_batch_pairs_per_s": round(batch_rate),
        "ours_single_thread_pairs_per_s": round(single_rate),
        "speedup_batch": round(batch_rate / google_rate, 1),
        "speedup_single_thread": round(single_rate / google_rate, 1),
        "rouge_score_pairs_checked": len(pairs),
        "mismatched_scores": mismatches,
    }


def write_run_files(directory: Path, records: int) -> tuple[Path, Path]:
    pairs = make_pairs(records, seed=50_000)
    references = directory / REFERENCES
    predictions = directory / "part-00000.jsonl.out"
    with references.open("w") as refs, predictions.open("w") as preds:
        for record_id, (reference, _prediction) in enumerate(pairs):
            refs.write(json.dumps({"id": record_id, "reference": reference}) + "\n")
        # Batch Transform output is in no particular order across shards; reverse it so the join works.
        for record_id in reversed(range(records)):
            preds.write(repr({"id": record_id, "generated_texts": [pairs[record_id][1]]}) + "\n")
    return references, predictions


def end_to_end(records: int, bootstrap: int) -> dict:
    from batch_pipeline_local.cli.main import main

    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        references, predictions = write_run_files(directory, records)
        arguments = ["evaluate", "--predictions", str(predictions), "--references", str(references), "--json"]

        in_process_out = directory / "scores-in-process.jsonl"
        with contextlib.redirect_stdout(io.StringIO()) as captured:
            code, in_process_s = timed(main, [*arguments, "--scores-out", str(in_process_out)])
        report = json.loads(captured.getvalue())
        (directory / EVALUATION).write_text(captured.getvalue())

        process_out = directory / "scores-process.jsonl"
        command = [sys.executable, "-m", "batch_pipeline_local.cli", *arguments, "--scores-out", str(process_out)]
        completed, process_s = timed(subprocess.run, command, capture_output=True, env={**os.environ}, check=False)
        scored_lines = sum(1 for _ in process_out.open())
        bootstrap_s = None
        if bootstrap:
            with contextlib.redirect_stdout(io.StringIO()):
                _, bootstrap_s = timed(main, [*arguments, "--bootstrap", str(bootstrap)])
    return {
        "records": records,
        "exit_codes": [code, completed.returncode],
        "scored": report["scored"],
        "scores_written": scored_lines,
        "rougeLsum_fmeasure": report["rouge"]["rougeLsum"]["fmeasure"],
        "in_process_s": round(in_process_s, 2),
        "fresh_process_s": round(process_s, 2),
        "with_bootstrap": None
        if bootstrap_s is None
        else {"resamples": bootstrap, "in_process_s": round(bootstrap_s, 2)},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=10_000, help="pairs to score (default 10,000)")
    parser.add_argument(
        "--rounds", type=int, default=5, help="interleaved timing rounds; rates are their medians (default 5)"
    )
    parser.add_argument("--stemmer", action="store_true", help="score with Porter stemming on")
    parser.add_argument("--records", type=int, default=50_000, help="records for the end-to-end run (default 50,000)")
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=0,
        metavar="N",
        help="also time the end-to-end run with an N-resample bootstrap interval (default: not timed)",
    )
    args = parser.parse_args()

    pairs = make_pairs(args.pairs, seed=1)
    speed = scoring(pairs, args.stemmer, args.rounds)
    whole = end_to_end(args.records, args.bootstrap)
    print(json.dumps({"scoring": speed, "end_to_end": whole, "cpus": os.cpu_count()}, indent=2))

    failures = []
    if speed["mismatched_scores"]:
        failures.append(f"{speed['mismatched_scores']} scores differ from rouge-score")
    if speed["speedup_batch"] < SPEED_TARGET:
        failures.append(f"scoring {speed['speedup_batch']}x rouge-score, target {SPEED_TARGET}x")
    if whole["fresh_process_s"] >= END_TO_END_TARGET_S or whole["in_process_s"] >= END_TO_END_TARGET_S:
        failures.append(f"{args.records} records end to end took more than {END_TO_END_TARGET_S} s")
    if whole["exit_codes"] != [0, 0] or whole["scored"] != args.records or whole["scores_written"] != args.records:
        failures.append(f"end-to-end run did not score every record: {whole}")
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
