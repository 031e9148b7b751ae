"""`batch-pipeline demo`: every sample in examples/ through local mode, one table row per run."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..runner import STAND_IN_LABEL, local_aws, run_file
from ..settings import REPO_ROOT, load_config

EXAMPLES = REPO_ROOT / "examples"
# (file, pipeline): the default pipelines on their sample files, and one file with bad lines.
DEMO_RUNS = [
    ("summarize.jsonl", "summarize"),
    ("classify.jsonl", "classify"),
    ("bedrock-summarize.jsonl", "bedrock-summarize"),
    ("summarize-with-bad-lines.jsonl", "summarize"),
]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the sample files of examples/ through every default pipeline in local mode",
        description="Deploy the synthesized app into emulated AWS once and run each sample file through it: "
        f"the default pipelines end to end, and one file with bad lines to show a rejection. Models are played "
        f"by a {STAND_IN_LABEL}; the numbers exercise the pipeline, not a model.",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per run instead of a table")
    parser.set_defaults(run=run)


def _row(result) -> dict:
    manifest = result.manifest or {}
    counts = manifest.get("counts", {})
    headline = manifest.get("evaluation") or {}
    if headline.get("rouge_f"):
        metric = "rougeL F1 {:.3f}".format(headline["rouge_f"].get("rougeL") or 0)
    elif headline.get("accuracy") is not None:
        metric = "accuracy {:.3f}".format(headline["accuracy"])
    else:
        metric = "-"
    if result.rejection is not None:
        report = result.rejection
        counts = {"total": report.get("records"), "succeeded": 0, "failed": report.get("invalid")}
        metric = f"{report.get('invalid')} bad lines"
    return {
        "file": result.key, "status": result.status, "records": counts.get("total"),
        "succeeded": counts.get("succeeded"), "failed": counts.get("failed"), "metric": metric,
        "seconds": round(result.seconds, 1),
        "where": (manifest.get("outputs") or {}).get("manifest") or (result.rejection or {}).get("report_uri"),
    }


def run(args) -> int:
    configured = set(load_config().pipelines)
    runs = [(EXAMPLES / name, pipeline) for name, pipeline in DEMO_RUNS
            if pipeline in configured and (EXAMPLES / name).exists()]
    started = time.monotonic()
    rows, results = [], []
    with local_aws() as local:
        for path, pipeline in runs:
            result = run_file(local, path, pipeline)
            results.append(result)
            rows.append(_row(result))
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        print(f"\nLocal mode: emulated AWS, models played by a {STAND_IN_LABEL}.\n")
        header = f"{'file':42s} {'status':10s} {'records':>7s} {'ok':>4s} {'failed':>6s}  {'metric':18s} {'secs':>5s}"
        print(header)
        print("-" * len(header))
        for row in rows:
            print(f"{row['file']:42s} {row['status']:10s} {row['records'] or 0:7d} {row['succeeded'] or 0:4d} "
                  f"{row['failed'] or 0:6d}  {row['metric']:18s} {row['seconds']:5.1f}")
        print()
        for row in rows:
            print(f"{row['file']}: {row['where']}")
        for result in results:
            if result.rejection:
                print(f"\nRejection report for {result.key}:")
                for error in result.rejection.get("errors", [])[:10]:
                    print(f"  line {error['line']}: {error.get('field') or '-'}: {error['reason']}")
        print(f"\n{len(rows)} runs in {time.monotonic() - started:.1f} s")
    expected = {"summarize-with-bad-lines.jsonl": "REJECTED"}
    ok = all(r.status == expected.get(Path(r.key).name, "SUCCEEDED") for r in results)
    return 0 if ok else 1
