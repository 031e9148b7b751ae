"""`batch-pipeline evaluate`: score predictions against references with the metrics a run uses.

Its logic beside it: evaluate_join.py (references read, predictions joined by id) and evaluate_scoring.py (what joined
scored, what did not counted)."""

from __future__ import annotations

import argparse
import itertools
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import orjson

from batch_pipeline.results.evaluation.errors import EvaluationError
from batch_pipeline.results.evaluation.rouge import MEASURES, ROUGE_TYPES
from batch_pipeline_local.cli.evaluate_scoring import evaluate_files
from batch_pipeline_local.cli.options import Subcommands
from batch_pipeline_local.cli.output import emit_json

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

DESCRIPTION = """\
Join predictions to references by id and report ROUGE or classification metrics.

Predictions may be SageMaker Batch Transform .out files (JSON or Python-literal lines with
generated_texts, or zero-shot labels/scores), Bedrock batch .jsonl.out files (modelOutput or error
per recordId), or a run's predictions.jsonl; give --predictions several times for several files.
References are JSON lines with id (or recordId) and reference or highlights (summaries) and/or
label (a class, or a list of classes for multi-label).

Records without a prediction are counted as missing and error records as errors; neither is
scored as an empty answer. ROUGE is identical per pair to Google's rouge-score (its tokenizer, its
LCS, rougeLsum over newline-separated sentences); the reported figures are means over scored pairs.

Exit status: 0 evaluated, 1 no record could be scored, 2 unreadable input or bad usage."""


def register(subparsers: Subcommands) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score predictions against references (ROUGE or classification)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--predictions",
        metavar="FILE",
        action="append",
        required=True,
        type=Path,
        help="prediction lines: .out, .jsonl.out or predictions.jsonl (repeat for several files)",
    )
    parser.add_argument("--references", metavar="FILE", required=True, type=Path, help="reference lines (JSON)")
    parser.add_argument(
        "--metric",
        choices=("rouge", "classification"),
        help="what to compute (default: classification if any reference has a label, else rouge)",
    )
    parser.add_argument(
        "--use-stemmer", action="store_true", help="ROUGE: Porter-stem tokens, as rouge-score's use_stemmer"
    )
    parser.add_argument(
        "--bootstrap",
        metavar="N",
        type=int,
        default=0,
        help="ROUGE: add a seeded bootstrap confidence interval of each mean F-measure from N resamples "
        "(default: none; 1000 resamples of 50,000 records take ~10 s)",
    )
    parser.add_argument(
        "--confidence", type=float, default=0.95, metavar="LEVEL", help="bootstrap confidence level (default: 0.95)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, metavar="N", help="bootstrap random seed; same seed, same interval (default: 0)"
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        metavar="SCORE",
        help="multi-label: a label is predicted when its score is at least this (default: 0.5)",
    )
    labels = parser.add_mutually_exclusive_group()
    labels.add_argument(
        "--multi-label",
        dest="multi_label",
        action="store_true",
        default=None,
        help="treat classification as multi-label (default: when any reference label is a list)",
    )
    labels.add_argument(
        "--single-label", dest="multi_label", action="store_false", help="treat classification as single-label"
    )
    parser.add_argument(
        "--scores-out", metavar="FILE", type=Path, help="also write per-record scores as JSON lines {id, scores}"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.bootstrap < 0:
        print("batch-pipeline evaluate: --bootstrap must not be negative", file=sys.stderr)
        return EXIT_USAGE
    try:
        with ExitStack() as stack:
            predictions = itertools.chain.from_iterable(
                stack.enter_context(path.open("rb")) for path in args.predictions
            )
            references = stack.enter_context(args.references.open("rb"))
            report, per_record = evaluate_files(
                predictions,
                references,
                args.metric,
                use_stemmer=args.use_stemmer,
                bootstrap_samples=args.bootstrap,
                confidence=args.confidence,
                seed=args.seed,
                threshold=args.threshold,
                multi_label=args.multi_label,
            )
    except (OSError, EvaluationError, ValueError) as error:
        print(f"batch-pipeline evaluate: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.scores_out:
        with args.scores_out.open("wb") as out:
            for record_id, scores in per_record.items():
                out.write(orjson.dumps({"id": record_id, "scores": scores}, option=orjson.OPT_APPEND_NEWLINE))
    emit_json(report, indent=2) if args.json else print(format_report(report))
    return EXIT_OK if report["scored"] else EXIT_FAILED


def format_report(report: dict[str, Any]) -> str:
    lines = [_counts(report)]
    if report["input_tokens"] is not None or report["output_tokens"] is not None:
        lines.append(f"tokens: input {report['input_tokens'] or 0:,}, output {report['output_tokens'] or 0:,}")
    for label, key in (
        ("invalid", "invalid_examples"),
        ("unmatched ids", "unmatched_examples"),
        ("missing ids", "missing_examples"),
    ):
        if report.get(key):
            lines.append(f"{label} (first {len(report[key])}): " + "; ".join(map(str, report[key])))
    lines.append("")
    lines += _rouge_table(report) if report["metric"] == "rouge" else _classification_tables(report)
    return "\n".join(lines)


def _counts(report: dict[str, Any]) -> str:
    errors = f"{report['errors']}"
    if report["error_codes"]:
        errors += " (" + ", ".join(f"{code}: {count}" for code, count in report["error_codes"].items()) + ")"
    parts = [
        f"records {report['records']}",
        f"scored {report['scored']}",
        f"missing {report['missing']}",
        f"errors {errors}",
        f"invalid lines {report['invalid_lines']}",
        f"unmatched {report['unmatched']}",
        f"duplicates {report['duplicates']}",
    ]
    if report["unidentified"]:
        parts.append(f"without id {report['unidentified']}")
    if report["joined_by"] != "id":
        parts.append(f"joined by {report['joined_by']}")
    return f"{report['metric']}: " + " | ".join(parts)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _rouge_table(report: dict[str, Any]) -> list[str]:
    options = report["rouge_options"]
    bootstrap = report.get("rouge_bootstrap")
    header = f"{'':10} {'precision':>9} {'recall':>9} {'fmeasure':>9}"
    if bootstrap:
        header += f"   fmeasure {bootstrap['confidence']:.0%} interval ({bootstrap['samples']} resamples)"
    lines = [f"ROUGE (mean over scored pairs, stemming {'on' if options['use_stemmer'] else 'off'})", header]
    for rouge_type in ROUGE_TYPES:
        row = f"{rouge_type:10} " + " ".join(f"{_number(report['rouge'][rouge_type][m]):>9}" for m in MEASURES)
        if bootstrap:
            interval = bootstrap[rouge_type]["fmeasure"]
            row += f"   [{interval['low']:.4f}, {interval['high']:.4f}]"
        lines.append(row)
    return lines


def _classification_tables(report: dict[str, Any]) -> list[str]:
    multi = report.get("multi_label", False)
    subset = " (subset)" if multi else ""
    headline = f"accuracy {_number(report.get('accuracy'))}{subset} | macro-F1 {_number(report.get('macro_f1'))}"
    if multi:
        headline += f" | micro-F1 {_number(report.get('micro_f1'))} | threshold {report.get('threshold')}"
    per_class = report.get("per_class", {})
    width = max([len("class"), *(len(label) for label in per_class)])
    lines = [headline, "", f"{'class':{width}} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}"]
    for label, scores in per_class.items():
        lines.append(
            f"{label:{width}} {scores['precision']:>9.4f} {scores['recall']:>9.4f} {scores['f1']:>9.4f} "
            f"{scores['support']:>8}"
        )
    matrix = report.get("confusion_matrix")
    if matrix and matrix["labels"]:
        lines.append("")
        if multi:
            lines.append(f"{'label':{width}} {'tn':>7} {'fp':>7} {'fn':>7} {'tp':>7}")
            for label, ((tn, fp), (fn, tp)) in zip(matrix["labels"], matrix["matrix"], strict=True):
                lines.append(f"{label:{width}} {tn:>7} {fp:>7} {fn:>7} {tp:>7}")
        else:
            cell = max(7, *(len(label) for label in matrix["labels"]))
            lines.append("confusion matrix (rows: true, columns: predicted)")
            lines.append(f"{'':{width}} " + " ".join(f"{label:>{cell}}" for label in matrix["labels"]))
            for label, row in zip(matrix["labels"], matrix["matrix"], strict=True):
                lines.append(f"{label:{width}} " + " ".join(f"{count:>{cell}}" for count in row))
    return lines
