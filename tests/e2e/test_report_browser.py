"""report.html seen in a real browser: Debian's headless Chromium opens a local run's report (summarize, classify,
a rejected file) from disk, with no console error, no request but the page itself, and drawn marks in every chart.

Runs when `chromium` is on PATH (`.ci/run` installs it with apt; `make test` says whether it runs); skipped with
that reason otherwise. Screenshots go to $REPORT_SCREENSHOTS when set (to look at them), else to pytest's tmp_path.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from batch_pipeline_local.emulator.export import export_run
from batch_pipeline_local.emulator.run import run_file

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="browser test skipped: chromium is not on PATH (apt-get install -y chromium)"
)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# A chart's marks: Vega draws bars and heatmap cells as <path> (or <rect>) inside its mark groups.
COUNT_MARKS = """() => [...document.querySelectorAll('[data-chart]')].map(chart => ({
    name: chart.dataset.chart,
    marks: chart.querySelectorAll('g.role-mark path, g.role-mark rect').length,
    drawn: [...chart.querySelectorAll('g.role-mark path, g.role-mark rect')]
        .filter(mark => { const box = mark.getBBox(); return box.width > 0 && box.height > 0; }).length,
    width: chart.querySelector('svg').getBoundingClientRect().width }))"""


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        # Debian's build, never a downloaded one; --no-sandbox because CI runs as root.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.mark.parametrize(
    "name, pipeline, charts",
    [
        ("summarize.jsonl", "summarize", {"rougeL F1 histogram"}),
        ("classify.jsonl", "classify", {"confusion matrix", "confidence histogram"}),
        ("summarize-with-bad-lines.jsonl", "summarize", {"bad lines by reason"}),
    ],
)
def test_the_report_renders_in_chromium_with_its_charts(local, browser, tmp_path, name, pipeline, charts):
    report = export_run(run_file(local, EXAMPLES / name, pipeline), tmp_path)
    assert report is not None and report.suffix == ".html"
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    problems: list[str] = []
    requests: list[str] = []
    page.on(
        "console",
        lambda message: (
            problems.append(f"console {message.type}: {message.text}") if message.type in ("error", "warning") else None
        ),
    )
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("request", lambda request: requests.append(request.url))
    page.goto(report.as_uri(), wait_until="load")
    drawn = page.evaluate(COUNT_MARKS)
    shots = Path(os.environ.get("REPORT_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / f"{pipeline}-{report.stem}.png"), full_page=True)
    page.close()

    assert problems == []
    assert requests == [report.as_uri()]  # nothing loaded but the page itself
    assert {chart["name"] for chart in drawn} == charts
    for chart in drawn:
        assert chart["marks"] > 0 and chart["drawn"] > 0 and chart["width"] > 100, chart
