"""Intake throughput and peak memory against two baselines, measured in the same run.

    .venv/bin/python bench/intake.py                 # 512 MB input (generated once under bench/out/)
    .venv/bin/python bench/intake.py --size-mb 50    # a quick run

Variants, each in its own subprocess (peak RSS from os.wait4 for that child alone), interleaved and repeated:
- floor:  orjson.loads every line and write every line back out (the least any intake could do);
- naive:  json.loads + a Pydantic model per line + json.dumps (what a straightforward implementation does);
- intake: batch_pipeline.intake.run_intake for the pipeline (validate, convert, split references, spill, shard)
          into a local run folder.
Throughput is input MB per second of work (wall, and CPU time of the work, which is steadier on a shared
machine); the median over --repeat runs is reported. Records are CNN/DailyMail-sized synthetic articles
(~4 KB of text) with an inline ~300-byte reference; the text is random words, generated here.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
MB = 1_000_000
CHUNK = 1024 * 1024
VARIANTS = ("floor", "naive", "intake")


# ---------------------------------------------------------------- input


def generate(path: Path, size_mb: int, seed: int = 7) -> None:
    """Synthetic CNN/DailyMail-sized records: ~4 KB article text and a ~300-byte reference each."""
    import orjson

    rng = random.Random(seed)
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    weights = [12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8, 2.4, 2.4, 2.2, 2.0, 2.0, 1.9, 1.5, 1.0,
               0.8, 0.2, 0.2, 0.1, 0.1]
    vocabulary = ["".join(rng.choices(letters, weights, k=rng.randint(2, 10))) for _ in range(20_000)]
    target = size_mb * MB
    written = 0
    record_id = 0
    tmp = path.with_suffix(".partial")
    with open(tmp, "wb", buffering=CHUNK) as out:
        while written < target:
            words = rng.choices(vocabulary, k=rng.randint(600, 760))
            article = ". ".join(" ".join(words[i : i + 18]).capitalize() for i in range(0, len(words), 18)) + "."
            summary = " ".join(rng.choices(vocabulary, k=rng.randint(40, 60)))
            line = orjson.dumps({"id": record_id, "text_inputs": "Briefly summarize this text: " + article,
                                 "reference": summary}, option=orjson.OPT_APPEND_NEWLINE)
            out.write(line)
            written += len(line)
            record_id += 1
    tmp.rename(path)


# ---------------------------------------------------------------- variants (run in a child process)


def chunks_of(path: Path):
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def prepare_floor(source: Path, out_dir: Path, pipeline_name: str):
    import orjson

    def work() -> int:
        loads = orjson.loads
        count = 0
        with open(out_dir / "floor.jsonl", "wb", buffering=CHUNK) as out:
            write = out.write
            tail = b""
            for chunk in chunks_of(source):
                lines = (tail + chunk).split(b"\n")
                tail = lines.pop()
                for line in lines:
                    loads(line)
                    write(line)
                    write(b"\n")
                    count += 1
            if tail:
                loads(tail)
                write(tail + b"\n")
                count += 1
        return count

    return work


def prepare_naive(source: Path, out_dir: Path, pipeline_name: str):
    from pydantic import BaseModel, ConfigDict

    class Record(BaseModel):
        model_config = ConfigDict(extra="forbid")
        id: int | str
        text_inputs: str
        reference: str | None = None

    def work() -> int:
        count = 0
        with open(source, encoding="utf-8") as lines, open(out_dir / "naive.jsonl", "w", encoding="utf-8") as out:
            for line in lines:
                record = Record.model_validate(json.loads(line))
                out.write(json.dumps(record.model_dump(exclude={"reference"})) + "\n")
                count += 1
        return count

    return work


def prepare_intake(source: Path, out_dir: Path, pipeline_name: str):
    from batch_pipeline.intake import LocalDirSink, run_intake
    from batch_pipeline_local.settings import load_pipeline

    pipeline = load_pipeline(pipeline_name)

    def work() -> int:
        result = run_intake(chunks_of(source), pipeline, sink=LocalDirSink(out_dir / "run"), workdir=str(out_dir))
        if not result.accepted:
            raise SystemExit(f"intake rejected the benchmark file: {result.report['reason']}")
        return result.report["valid"]

    return work


def child(args: argparse.Namespace) -> None:
    """Imports and configuration happen before the clock starts, for every variant alike."""
    prepare = {"floor": prepare_floor, "naive": prepare_naive, "intake": prepare_intake}[args.variant]
    work = prepare(Path(args.input), Path(args.out_dir), args.pipeline)
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    records = work()
    print(json.dumps({"wall": time.perf_counter() - started_wall, "cpu": time.process_time() - started_cpu,
                      "records": records}))


# ---------------------------------------------------------------- parent


def measure(variant: str, source: Path, pipeline: str) -> dict:
    out_dir = OUT / f"run-{variant}"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", variant, "--input", str(source), "--out-dir", str(out_dir),
         "--pipeline", pipeline],
        stdout=subprocess.PIPE, cwd=ROOT,
    )
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    shutil.rmtree(out_dir, ignore_errors=True)
    if process.returncode != 0:
        raise SystemExit(f"{variant} failed with exit code {process.returncode}")
    result = json.loads(output)
    result["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux reports KiB
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=512, help="input size in MB (default 512)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant, interleaved (default 3)")
    parser.add_argument("--pipeline", default="summarize", help="pipeline from cdk.json for the intake variant")
    parser.add_argument("--child", choices=VARIANTS, dest="variant", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--out-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        child(args)
        return

    OUT.mkdir(parents=True, exist_ok=True)
    source = OUT / f"intake-{args.size_mb}mb.jsonl"
    if not source.exists():
        print(f"generating {source} ...", file=sys.stderr)
        generate(source, args.size_mb)
    size = source.stat().st_size
    runs: dict[str, list[dict]] = {variant: [] for variant in VARIANTS}
    for round_number in range(args.repeat):
        for variant in VARIANTS:
            result = measure(variant, source, args.pipeline)
            runs[variant].append(result)
            print(f"round {round_number + 1}: {variant:<6} {size / MB / result['wall']:7.1f} MB/s wall  "
                  f"{size / MB / result['cpu']:7.1f} MB/s cpu  {result['peak_rss_mb']:6.1f} MB peak RSS", file=sys.stderr)

    summary = {}
    for variant, results in runs.items():
        summary[variant] = {
            "wall_mb_s": size / MB / statistics.median(r["wall"] for r in results),
            "cpu_mb_s": size / MB / statistics.median(r["cpu"] for r in results),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
            "records": results[0]["records"],
        }
    print(f"input: {source.name}, {size / MB:.0f} MB, {summary['floor']['records']} records; pipeline "
          f"{args.pipeline!r}; median of {args.repeat} runs")
    print(f"{'variant':<8}{'MB/s wall':>11}{'MB/s cpu':>10}{'peak RSS MB':>13}")
    for variant, figures in summary.items():
        print(f"{variant:<8}{figures['wall_mb_s']:>11.1f}{figures['cpu_mb_s']:>10.1f}{figures['peak_rss_mb']:>13.1f}")
    intake, floor, naive = summary["intake"], summary["floor"], summary["naive"]
    print(f"intake / floor: {intake['wall_mb_s'] / floor['wall_mb_s']:.2f} wall, {intake['cpu_mb_s'] / floor['cpu_mb_s']:.2f} cpu"
          "   (target >= 0.50)")
    print(f"intake / naive: {intake['wall_mb_s'] / naive['wall_mb_s']:.2f} wall, {intake['cpu_mb_s'] / naive['cpu_mb_s']:.2f} cpu"
          "   (target >= 2)")
    print(f"intake peak RSS: {intake['peak_rss_mb']:.1f} MB   (target < 150 MB)")
    # No implementation that writes its output can beat the floor, so this bounds the intake/naive ratio.
    print(f"floor / naive:  {floor['wall_mb_s'] / naive['wall_mb_s']:.2f} wall, {floor['cpu_mb_s'] / naive['cpu_mb_s']:.2f} cpu"
          "   (the most any writer can reach against naive)")


if __name__ == "__main__":
    main()
