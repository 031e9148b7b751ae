"""Benchmark: which charting library renders the run report's SVG charts inside Lambda.

    .venv/bin/python bench/charts.py               # every candidate, 5 cold starts each
    .venv/bin/python bench/charts.py --rounds 9

For each candidate (pinned below) it measures, in the same run:
  - asset size: the candidate and its dependencies installed as stacks/bundling.py installs the Lambda asset
    (`pip install --target --platform manylinux... --python-version 3.14 --only-binary=:all:`, Linux arm64),
    in unzipped bytes (what Lambda's 250 MB limit counts) and zipped (what is uploaded);
  - cold start: a fresh Python process that imports the library and renders the report's two chart kinds, a
    20-bin histogram and a 3x3 confusion-matrix heatmap, to SVG (wall time, median over interleaved rounds,
    minus the median start-up of a bare `python -c pass` measured alongside). matplotlib runs with an empty
    MPLCONFIGDIR each time, as in a fresh Lambda sandbox (its font cache is rebuilt), and also with a warm one.
  - whether the library draws each chart kind at all (pygal has no heatmap chart type).
Ratios are against the fastest / smallest candidate of this run. Installs are cached in bench/out/charts/.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out" / "charts"
LAMBDA_PLATFORMS = ["manylinux2014_aarch64", "manylinux_2_28_aarch64"]
LAMBDA_PYTHON = "3.14"

CANDIDATES = {
    "vl-convert-python": "vl-convert-python==1.9.0.post1",
    "pygal": "pygal==3.1.3",
    "matplotlib": "matplotlib==3.11.2",
}

_HISTOGRAM_COUNTS = "[(i * 37) % 23 + 1 for i in range(20)]"
RENDER = {
    "vl-convert-python": f"""
import vl_convert
counts = {_HISTOGRAM_COUNTS}
values = [{{"start": i / 20, "end": (i + 1) / 20, "records": n}} for i, n in enumerate(counts)]
histogram = {{"data": {{"values": values}},
  "mark": "bar", "encoding": {{"x": {{"field": "start", "type": "quantitative", "bin": {{"binned": True}},
  "title": "ROUGE-L F1"}}, "x2": {{"field": "end"}}, "y": {{"field": "records", "type": "quantitative"}}}}}}
cells = [{{"reference": a, "predicted": b, "records": (i * 3 + j * 5) % 7}} for i, a in enumerate("abc")
         for j, b in enumerate("abc")]
heatmap = {{"data": {{"values": cells}}, "mark": "rect", "encoding": {{
  "x": {{"field": "predicted", "type": "nominal"}}, "y": {{"field": "reference", "type": "nominal"}},
  "color": {{"field": "records", "type": "quantitative"}}}}}}
svgs = [vl_convert.vegalite_to_svg(spec, allowed_base_urls=[]) for spec in (histogram, heatmap)]
print("kinds", 2, sum(map(len, svgs)))
""",
    "pygal": f"""
import pygal
counts = {_HISTOGRAM_COUNTS}
histogram = pygal.Histogram(js=[], disable_xml_declaration=True, x_title="ROUGE-L F1", y_title="records")
histogram.add("records", [(n, i / 20, (i + 1) / 20) for i, n in enumerate(counts)])
svg = histogram.render(is_unicode=True)
# No heatmap chart type: a confusion matrix can only be a dot ("punch card") chart.
print("kinds", 1, len(svg))
""",
    "matplotlib": f"""
import io
import matplotlib
matplotlib.use("svg")
import matplotlib.pyplot as plt
counts = {_HISTOGRAM_COUNTS}
out = []
figure, axes = plt.subplots(figsize=(6, 3))
axes.bar([i / 20 for i in range(20)], counts, width=0.05, align="edge")
axes.set_xlabel("ROUGE-L F1"); axes.set_ylabel("records")
buffer = io.StringIO(); figure.savefig(buffer, format="svg"); out.append(buffer.getvalue())
figure, axes = plt.subplots(figsize=(4, 4))
axes.pcolormesh([[(i * 3 + j * 5) % 7 for j in range(3)] for i in range(3)])
buffer = io.StringIO(); figure.savefig(buffer, format="svg"); out.append(buffer.getvalue())
print("kinds", 2, sum(map(len, out)))
""",
}


def pip_install(requirement: str, target: Path, *, lambda_platform: bool) -> Path:
    if (target / ".complete").exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--target",
        str(target),
        "--only-binary=:all:",
        requirement,
    ]
    if lambda_platform:
        command += ["--implementation", "cp", "--python-version", LAMBDA_PYTHON]
        for platform in LAMBDA_PLATFORMS:
            command += ["--platform", platform]
    subprocess.run(command, check=True, stderr=subprocess.DEVNULL)
    (target / ".complete").touch()
    return target


def installed_bytes(folder: Path) -> tuple[int, int, int]:
    """(unzipped bytes, zipped bytes, files) of a folder, as an asset zip would hold it."""
    files = [path for path in folder.rglob("*") if path.is_file() and path.name != ".complete"]
    with tempfile.TemporaryFile() as handle:
        with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in files:
                archive.write(path, path.relative_to(folder))
        zipped = handle.tell()
    return sum(path.stat().st_size for path in files), zipped, len(files)


def cold_start(code: str, path: Path | None, mpl_config: str | None) -> tuple[float, str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    if path is not None:
        env["PYTHONPATH"] = str(path)
    config = mpl_config or tempfile.mkdtemp(prefix="mpl-")
    env["MPLCONFIGDIR"] = config
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    if mpl_config is None:
        shutil.rmtree(config, ignore_errors=True)
    return seconds, done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    sizes, local = {}, {}
    for name, requirement in CANDIDATES.items():
        sizes[name] = installed_bytes(pip_install(requirement, OUT / f"{name}-lambda", lambda_platform=True))
        local[name] = pip_install(requirement, OUT / f"{name}-local", lambda_platform=False)

    warm = tempfile.mkdtemp(prefix="mpl-warm-")
    cold_start(RENDER["matplotlib"], local["matplotlib"], warm)  # builds the font cache once
    runs: dict[str, list[float]] = {name: [] for name in [*CANDIDATES, "matplotlib (warm font cache)", "python"]}
    kinds: dict[str, str] = {}
    for _ in range(args.rounds):  # interleaved, so a burst of load on a shared machine hits every candidate
        runs["python"].append(cold_start("pass", None, warm)[0])
        for name in CANDIDATES:
            seconds, output = cold_start(RENDER[name], local[name], None)
            runs[name].append(seconds)
            kinds[name] = output.split()[1]
        runs["matplotlib (warm font cache)"].append(cold_start(RENDER["matplotlib"], local["matplotlib"], warm)[0])
    shutil.rmtree(warm, ignore_errors=True)

    baseline = statistics.median(runs.pop("python"))
    medians = {name: statistics.median(values) - baseline for name, values in runs.items()}
    fastest = min(medians.values())
    smallest = min(size[0] for size in sizes.values())
    print(
        f"Python {sys.version.split()[0]} start-up (subtracted): {baseline * 1000:.0f} ms; "
        f"sizes for Lambda Python {LAMBDA_PYTHON} arm64\n"
    )
    header = (
        f"{'candidate':30s} {'unzipped MB':>11s} {'x smallest':>10s} {'zipped MB':>9s} {'files':>6s} "
        f"{'cold start ms':>13s} {'x fastest':>9s} {'chart kinds':>11s}"
    )
    print(header)
    print("-" * len(header))
    for name, seconds in sorted(medians.items(), key=lambda item: item[1]):
        base = name.split(" ")[0]
        unzipped, zipped, files = sizes[base]
        print(
            f"{name:30s} {unzipped / 1e6:11.1f} {unzipped / smallest:10.1f} {zipped / 1e6:9.1f} {files:6d} "
            f"{seconds * 1000:13.0f} {seconds / fastest:9.1f} {kinds[base] + ' of 2':>11s}"
        )
    print("\nchart kinds: of the report's histogram and heatmap, how many the library draws itself.")


if __name__ == "__main__":
    main()
