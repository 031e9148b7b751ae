"""What a run notification says. Shared by the workflow's Notify step and intake's rejection notice."""

from __future__ import annotations

import json
from typing import Any

from batch_pipeline.results.report import console_url

SUBJECT_LIMIT = 100  # SNS refuses longer subjects


def run_message(manifest: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
    """(subject, body, message attributes) for a finished, failed or rejected run."""
    status = manifest["status"]
    subject = f"llm-batch-pipeline {manifest['pipeline']}: {status} {manifest['run_id']}"[:SUBJECT_LIMIT]
    counts = manifest.get("counts", {})
    lines = [
        f"Run {manifest['run_id']} of pipeline {manifest['pipeline']} ended {status}.",
        "Records: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v is not None),
    ]
    if manifest.get("cause"):
        lines.append(
            f"Why: {manifest.get('failed_state') or ''} {manifest.get('error')}: {manifest['cause']}".replace("  ", " ")
        )
    headline = manifest.get("evaluation") or {}
    if headline.get("rouge_f"):
        lines.append(
            "ROUGE F1: " + ", ".join(f"{k} {v:.4f}" for k, v in headline["rouge_f"].items() if isinstance(v, float))
        )
    for key in ("accuracy", "macro_f1"):
        if isinstance(headline.get(key), float):
            lines.append(f"{key}: {headline[key]:.4f}")
    outputs = manifest.get("outputs", {})
    # The page first: it is what a person opens (report.html for a run, <name>.report.html for a rejected file).
    page = next(
        (
            uri
            for uri in (outputs.get("report_html"), outputs.get("report"))
            if isinstance(uri, str) and uri.endswith(".html")
        ),
        None,
    )
    if page:
        lines.append(f"Report (open in a browser): {page}")
        link = console_url(page)
        if link:
            lines.append(f"  in the S3 console: {link}")
    for key in ("manifest", "summary", "predictions", "report"):
        if outputs.get(key) and outputs[key] != page:
            lines.append(f"{key}: {outputs[key]}")
    lines += ["", json.dumps({"run_id": manifest["run_id"], "status": status, "counts": counts}, separators=(",", ":"))]
    attributes = {"status": status, "pipeline": manifest["pipeline"]}
    return subject, "\n".join(lines), attributes
