"""bench/scale.py cannot rot: a 200-record run of two pipelines through every step, and its verdict's logic.

No timing and no size assertions: what is checked is that every step ran its own code to a working run (the
manifest's counts add up, the Bedrock retry recovered records) and that the table carries the template's limits.
"""

import json
import subprocess
import sys
from pathlib import Path

from bench import scale

REPO = Path(__file__).resolve().parents[2]
# classify joins by position (zero-shot); bedrock-converse runs Bedrock batch, the retry of failed records (on
# demand at this size) and its merge in collect, and Converse output parsing.
PIPELINES = ("classify", "bedrock-converse")
RECORDS = 200


def test_a_small_run_of_every_step(tmp_path):
    command = [
        sys.executable,
        str(REPO / "bench" / "scale.py"),
        "--records",
        str(RECORDS),
        "--pipeline",
        *PIPELINES,
        "--json",
        "--workdir",
        str(tmp_path),
    ]
    if (REPO / "cdk.out" / "manifest.json").is_file():
        command += ["--assembly", str(REPO / "cdk.out")]  # `make test` synthesized it just before
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    rows = json.loads(done.stdout)
    steps = {(row["pipeline"], row["step"]) for row in rows}
    common = {"intake", "job_control", "collect", "finalize"}
    assert steps == {(pipeline, step) for pipeline in PIPELINES for step in common}
    for row in rows:
        assert row["records"] == RECORDS
        assert all(
            isinstance(row[limit], int) and row[limit] > 0 for limit in ("memory_mb", "timeout_s", "ephemeral_mb")
        )
        assert row["peak_rss_mb"] > 0 and row["lambda_seconds"] >= row["cpu_s"]
    finals = {row["pipeline"]: row for row in rows if row["step"] == "finalize"}
    assert finals["classify"]["succeeded"] == RECORDS
    converse = finals["bedrock-converse"]
    assert converse["succeeded"] + converse["failed"] == RECORDS
    # 2% of the records fail the first time and 10% of those fail again: the merge put the rest back.
    assert converse["failed"] < 0.02 * RECORDS and converse["succeeded"] > 0.97 * RECORDS
    assert "PASS" in done.stderr.splitlines()[-1]


def _row(step, records, rss, share=0.1):
    return {
        "pipeline": "p",
        "step": step,
        "records": records,
        "peak_rss_mb": rss,
        "memory_share": share,
        "timeout_share": 0.1,
        "ephemeral_share": 0.1,
    }


def test_the_verdict_fails_on_a_limit_and_on_growth():
    fine = [_row("collect", 100_000, 100.0), _row("collect", 1_000_000, 140.0)]
    scale.add_growth(fine)
    assert scale.verdict(fine)[0]

    grown = [_row("collect", 100_000, 100.0), _row("collect", 1_000_000, 160.0)]
    scale.add_growth(grown)
    ok, lines = scale.verdict(grown)
    assert not ok and "1.60x" in lines[0] and lines[-1].startswith("FAIL")

    over = [_row("intake", 100_000, 100.0), _row("intake", 1_000_000, 100.0, share=0.61)]
    scale.add_growth(over)
    ok, lines = scale.verdict(over)
    assert not ok and "61% of its memory limit" in lines[0]
