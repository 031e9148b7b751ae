r"""Intake throughput and peak memory against the fastest honest floor, measured in the same run.

    .venv/bin/python bench/intake.py                          # 512 MB per case (generated once under bench/out/)
    .venv/bin/python bench/intake.py --size-mb 100 --repeat 5 # a quicker run

Two input cases, both generated here from a seeded generator (random words, no third-party text):
- realistic: CNN/DailyMail-like ~4 KB articles with quoted speech (escaped `\"`), paragraph breaks (`\n`),
  non-ASCII names and punctuation, a third of the lines written with `\uXXXX` escapes (as Python's json.dumps
  writes them by default), an inline ~300-byte reference on 90% of lines, and per-record generation parameters
  on 20%;
- escape-free: the older bench file (ASCII words, no escapes, a reference on every line). It flatters intake.

Variants, each in its own subprocess (peak RSS from os.wait4 for that child alone), interleaved round by round:
- floor-split / floor-find / floor-re: the least work that produces what intake produces. Split the input into
  lines (bytes.split copies; bytes.find + memoryview and re.finditer + memoryview are zero-copy), orjson.loads
  every line, write the line back to the model sink unchanged, except that a line carrying a reference is
  re-serialised without it (orjson.dumps) and the reference is written to the references sink (orjson.dumps of
  {"id", "reference"}), as intake must. Why it is honest: it parses every byte (intake cannot validate without
  parsing), it writes every output byte intake writes, and it uses the fastest C-level parse/serialise there is;
  it skips only the checks (field types, ids, limits). The fastest of the three (lowest median) is THE floor.
- naive: json.loads + a Pydantic model per line + json.dumps (what a straightforward implementation does);
- intake: batch_pipeline.intake.stream.run_intake for the pipeline (validate, convert, split references, spill, shard)
          into a local run folder.
The ratio is floor time / intake time (1.0 = as fast as the floor), taken per round (the floor and intake run
back to back) and the median over rounds is printed, for wall and CPU time (CPU is steadier on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
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
FLOORS = ("floor-split", "floor-find", "floor-re")
VARIANTS = (*FLOORS, "naive", "intake")
CASES = ("realistic", "escape-free")


# ---------------------------------------------------------------- input


def generate(path: Path, size_mb: int, seed: int = 7) -> None:
    """Synthetic CNN/DailyMail-sized records: ~4 KB article text and a ~300-byte reference each."""
    import orjson

    rng = random.Random(seed)
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    weights = [
        12.7,
        9.1,
        8.2,
        7.5,
        7.0,
        6.7,
        6.3,
        6.1,
        6.0,
        4.3,
        4.0,
        2.8,
        2.8,
        2.4,
        2.4,
        2.2,
        2.0,
        2.0,
        1.9,
        1.5,
        1.0,
        0.8,
        0.2,
        0.2,
        0.1,
        0.1,
    ]
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
            line = orjson.dumps(
                {"id": record_id, "text_inputs": "Briefly summarize this text: " + article, "reference": summary},
                option=orjson.OPT_APPEND_NEWLINE,
            )
            out.write(line)
            written += len(line)
            record_id += 1
    tmp.rename(path)


_NAMES = [
    "José",
    "Zoë",
    "Müller",
    "Łukasz",
    "Nguyễn",
    "François",
    "Søren",
    "Ángel",
    "Renée",
    "Çelik",
    "Dvořák",
    "Øyvind",
    "Jürgen",
    "Inés",
    "Ōtani",
    "São Paulo",
    "Zürich",
    "Kraków",
    "Málaga",
    "Reykjavík",
]
_PUNCTUATION = ["\u2014", "\u2019", "\u201c", "\u201d", "\u20ac", "\u00b0", "\u2026"]  # — ’ “ ” € ° …


def generate_realistic(path: Path, size_mb: int, seed: int = 11) -> None:
    """CNN-like records: quotes, paragraph breaks, non-ASCII, \\uXXXX escapes, references, per-record parameters."""
    rng = random.Random(seed)
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    vocabulary = ["".join(rng.choices(letters, k=rng.randint(2, 10))) for _ in range(20_000)]
    punctuation = [json.loads(f'"{p}"') for p in _PUNCTUATION]
    target = size_mb * MB
    written = record_id = 0
    tmp = path.with_suffix(".partial")

    def sentence() -> str:
        words = rng.choices(vocabulary, k=rng.randint(8, 28))
        if rng.random() < 0.3:
            words[rng.randrange(len(words))] = rng.choice(_NAMES)
        text = " ".join(words).capitalize()
        if rng.random() < 0.25:  # quoted speech
            text = f'"{text}," said {rng.choice(_NAMES)} {rng.choice(vocabulary).capitalize()}'
        if rng.random() < 0.15:
            text += f" {rng.choice(punctuation)} {rng.choice(vocabulary)}"
        return text + "."

    with open(tmp, "wb", buffering=CHUNK) as out:
        while written < target:
            paragraphs = ["  ".join(sentence() for _ in range(rng.randint(2, 5))) for _ in range(rng.randint(5, 9))]
            article = f"{rng.choice(_NAMES).upper()} (CNN) {punctuation[0]} " + "\n\n".join(paragraphs)
            record: dict = {
                "id": f"cnn-{record_id:07d}" if record_id % 2 else record_id,
                "text_inputs": "Summarize: " + article,
            }
            if rng.random() < 0.2:
                record["max_length"] = rng.choice([60, 80, 120])
                record["temperature"] = round(rng.uniform(0.1, 1.0), 2)
            if rng.random() < 0.9:
                record["reference"] = "\n".join(sentence() for _ in range(3))
            # A third written as Python's json.dumps does by default (\\uXXXX for every non-ASCII character).
            line = json.dumps(record, ensure_ascii=rng.random() < 0.33).encode() + b"\n"
            out.write(line)
            written += len(line)
            record_id += 1
    tmp.rename(path)


# ---------------------------------------------------------------- variants (run in a child process)


def chunks_of(path: Path):
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def _floor_record(line, loads, dumps, newline: int, write, write_reference) -> None:
    """Parse; a line with a reference is rewritten without it, and the reference goes to its own sink."""
    record = loads(line)
    reference = record.pop("reference", None)
    if reference is None:
        write(line)
        return
    write(dumps(record, option=newline))
    write_reference(dumps({"id": record.get("id"), "reference": reference}, option=newline))


def _lines_split(source: Path):
    """Python-level split: bytes.split copies every line."""
    tail = b""
    for chunk in chunks_of(source):
        lines = (tail + chunk).split(b"\n")
        tail = lines.pop()
        for line in lines:
            yield line + b"\n"
    if tail:
        yield tail + b"\n"


def _lines_find(source: Path):
    """C-speed zero-copy split: bytes.find over the chunk, each line a memoryview of it."""
    tail = b""
    for chunk in chunks_of(source):
        if tail:
            newline = chunk.find(b"\n")
            if newline < 0:
                tail += chunk
                continue
            yield tail + chunk[: newline + 1]
            start = newline + 1
        else:
            start = 0
        view, find = memoryview(chunk), chunk.find
        newline = find(b"\n", start)
        while newline >= 0:
            yield view[start : newline + 1]
            start = newline + 1
            newline = find(b"\n", start)
        tail = chunk[start:]
    if tail:
        yield tail + b"\n"


_LINE = re.compile(rb"[^\n]*\n")


def _lines_re(source: Path):
    """re.finditer over the chunk, each line a memoryview of it."""
    tail = b""
    for chunk in chunks_of(source):
        data = tail + chunk if tail else chunk
        view = memoryview(data)
        end = 0
        for match in _LINE.finditer(data):
            start, end = match.span()
            yield view[start:end]
        tail = data[end:]
    if tail:
        yield tail + b"\n"


def _prepare_floor(lines_of):
    def prepare(source: Path, out_dir: Path, pipeline_name: str):
        import orjson

        from batch_pipeline.storage.layout import REFERENCES

        def work() -> int:
            loads, dumps, newline = orjson.loads, orjson.dumps, orjson.OPT_APPEND_NEWLINE
            count = 0
            with (
                open(out_dir / "model.jsonl", "wb", buffering=CHUNK) as out,
                open(out_dir / REFERENCES, "wb", buffering=CHUNK) as references,
            ):
                write, write_reference = out.write, references.write
                for line in lines_of(source):
                    _floor_record(line, loads, dumps, newline, write, write_reference)
                    count += 1
            return count

        return work

    return prepare


def prepare_naive(source: Path, out_dir: Path, pipeline_name: str):
    from pydantic import BaseModel, ConfigDict

    class Record(BaseModel):
        model_config = ConfigDict(extra="forbid")
        id: int | str
        text_inputs: str
        reference: str | None = None
        max_length: int | None = None
        temperature: float | None = None

    def work() -> int:
        count = 0
        with open(source, encoding="utf-8") as lines, open(out_dir / "naive.jsonl", "w", encoding="utf-8") as out:
            for line in lines:
                record = Record.model_validate(json.loads(line))
                out.write(json.dumps(record.model_dump(exclude={"reference"}, exclude_none=True)) + "\n")
                count += 1
        return count

    return work


def prepare_intake(source: Path, out_dir: Path, pipeline_name: str):
    from batch_pipeline.intake.stream import LocalDirSink, run_intake
    from batch_pipeline_local.project import load_pipeline

    pipeline = load_pipeline(pipeline_name)

    def work() -> int:
        result = run_intake(chunks_of(source), pipeline, sink=LocalDirSink(out_dir / "run"), workdir=str(out_dir))
        if not result.accepted:
            raise SystemExit(f"intake rejected the benchmark file: {result.report['reason']}")
        return result.report["counts"]["valid"]

    return work


def child(args: argparse.Namespace) -> None:
    """Imports and configuration happen before the clock starts, for every variant alike."""
    prepare = {
        "floor-split": _prepare_floor(_lines_split),
        "floor-find": _prepare_floor(_lines_find),
        "floor-re": _prepare_floor(_lines_re),
        "naive": prepare_naive,
        "intake": prepare_intake,
    }[args.variant]
    work = prepare(Path(args.input), Path(args.out_dir), args.pipeline)
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    records = work()
    print(
        json.dumps(
            {"wall": time.perf_counter() - started_wall, "cpu": time.process_time() - started_cpu, "records": records}
        )
    )


# ---------------------------------------------------------------- parent


def measure(variant: str, source: Path, pipeline: str) -> dict:
    out_dir = OUT / f"run-{variant}"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    process = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--child",
            variant,
            "--input",
            str(source),
            "--out-dir",
            str(out_dir),
            "--pipeline",
            pipeline,
        ],
        stdout=subprocess.PIPE,
        cwd=ROOT,
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
    parser.add_argument("--size-mb", type=int, default=512, help="input size in MB per case (default 512)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds, each running every variant (default 3)")
    parser.add_argument("--pipeline", default="summarize", help="pipeline from cdk.json for the intake variant")
    parser.add_argument("--case", choices=CASES, action="append", help="input case(s) (default: both)")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive variant (the slowest)")
    parser.add_argument("--child", choices=VARIANTS, dest="variant", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--out-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        child(args)
        return

    OUT.mkdir(parents=True, exist_ok=True)
    variants = [v for v in VARIANTS if not (args.no_naive and v == "naive")]
    for case in args.case or CASES:
        name = "intake-realistic" if case == "realistic" else "intake"  # the escape-free file keeps its old name
        source = OUT / f"{name}-{args.size_mb}mb.jsonl"
        if not source.exists():
            print(f"generating {source} ...", file=sys.stderr)
            (generate_realistic if case == "realistic" else generate)(source, args.size_mb)
        report_case(case, source, variants, args)


def report_case(case: str, source: Path, variants: list[str], args: argparse.Namespace) -> None:
    size = source.stat().st_size
    runs: dict[str, list[dict]] = {variant: [] for variant in variants}
    for round_number in range(args.repeat):
        for variant in variants:
            result = measure(variant, source, args.pipeline)
            runs[variant].append(result)
            print(
                f"{case} round {round_number + 1}: {variant:<11} {size / MB / result['wall']:7.1f} MB/s wall  "
                f"{size / MB / result['cpu']:7.1f} MB/s cpu  {result['peak_rss_mb']:6.1f} MB peak RSS",
                file=sys.stderr,
            )
    median = statistics.median
    floor = min(FLOORS, key=lambda v: median(r["cpu"] for r in runs[v]))
    print(
        f"\ncase {case}: {source.name}, {size / MB:.0f} MB, {runs['intake'][0]['records']} records; pipeline "
        f"{args.pipeline!r}; {args.repeat} rounds"
    )
    print(f"{'variant':<12}{'MB/s wall':>11}{'MB/s cpu':>10}{'peak RSS MB':>13}")
    for variant, results in runs.items():
        mark = "  <- the floor (fastest)" if variant == floor else ""
        print(
            f"{variant:<12}{size / MB / median(r['wall'] for r in results):>11.1f}"
            f"{size / MB / median(r['cpu'] for r in results):>10.1f}"
            f"{max(r['peak_rss_mb'] for r in results):>13.1f}{mark}"
        )

    def ratio(numerator: str, denominator: str, clock: str) -> tuple[float, float, float]:
        per_round = [n[clock] / d[clock] for n, d in zip(runs[denominator], runs[numerator], strict=True)]
        return median(per_round), min(per_round), max(per_round)

    for clock in ("wall", "cpu"):
        mid, low, high = ratio("intake", floor, clock)
        print(
            f"intake / floor ({floor}), {clock}: median {mid:.2f} of per-round ratios (range {low:.2f}-{high:.2f})"
            "   (goal >= 0.60)"
        )
    if "naive" in runs:
        mid, low, high = ratio("intake", "naive", "cpu")
        print(f"intake / naive, cpu: median {mid:.2f} (range {low:.2f}-{high:.2f})")
    print(f"intake peak RSS: {max(r['peak_rss_mb'] for r in runs['intake']):.1f} MB   (goal < 150 MB at 500 MB input)")


if __name__ == "__main__":
    main()
