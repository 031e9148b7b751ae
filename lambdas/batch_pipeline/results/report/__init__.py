"""report.html: the run (or the rejected file) for people, with charts, in one self-contained page.

  aggregate.ReportTally  what collect gathers for the page as it writes predictions.jsonl (no second pass)
  charts                 Vega-Lite specs rendered to static SVG by vl-convert
  page                   the HTML, every record-supplied string escaped

The Write manifest step (results.finish) writes `<run>/report.html` next to manifest.json; intake writes
`<name>.report.html` next to a rejected file's copy and its `.report.json` (keys from storage.layout).
"""

from __future__ import annotations

from typing import Any

from batch_pipeline.results.report.aggregate import ReportTally
from batch_pipeline.results.report.page import console_url, render_rejection_report, render_run_report
from batch_pipeline.storage import s3io

CONTENT_TYPE = "text/html; charset=utf-8"

__all__ = [
    "CONTENT_TYPE",
    "ReportTally",
    "console_url",
    "put_report",
    "render_rejection_report",
    "render_run_report",
]


def put_report(s3: Any, bucket: str, key: str, page: str) -> None:
    """Upload a page as HTML, so the S3 console and a browser open it instead of downloading it."""
    s3io.put_bytes(s3, bucket, key, page.encode("utf-8"), CONTENT_TYPE)
