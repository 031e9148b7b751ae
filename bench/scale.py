"""Benchmark: each Lambda step's own code over generated CNN/DailyMail-sized runs, against the step's limits.

    .venv/bin/python bench/scale.py --records 100000 1000000 --pipeline summarize [--json]

For each size a seeded generator writes the upload: ~4 KB articles with quotes, newlines and non-ASCII, and a
~300-character reference each (no third-party text). Then, each in its own subprocess so that its peak RSS is
its own: intake (`run_intake`, the Lambda's validation, spill, plan and publish through `S3RunSink`), the
backend (a local stand-in, not measured: it writes one ~300-character answer per record, in shuffled order, as
a JumpStart container's `.out` lines), collect (`collect` with the pipeline's SageMaker backend), evaluate
(`evaluate_run`) and finalize (`build_manifest`). S3 is bench/file_s3.py: objects are files and GetObject
returns botocore's real StreamingBody, so a step reads exactly as it reads S3 and its memory holds no bucket.

Reported per step: records, peak_rss_mb (the step process's own VmHWM), cpu_s (user+system),
lambda_seconds (cpu x 1769 / MemorySize, at least cpu: a Lambda has one vCPU's worth of time at 1,769 MB),
tmp_mb (the peak size of the step's /tmp stand-in, sampled every 0.2 s), and the step's memory_mb, timeout_s
and ephemeral_mb from the synthesized template (synthesized once). Goal (issue 13): at 1,000,000 records every
step within 60% of each limit, and collect and evaluate peak RSS growing at most 1.5x from the smallest size
to the largest one. This is a measurement, not a timed test.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "lambdas", REPO / "local"):
    sys.path.insert(0, str(path))

BUCKET = "llmbp-bench-output"
INPUT_BUCKET = "llmbp-bench-input"
HANDLERS = {
    "intake": "batch_pipeline.handlers.intake.handler",
    "collect": "batch_pipeline.handlers.collect.handler",
    "evaluate": "batch_pipeline.handlers.evaluate.handler",
    "finalize": "batch_pipeline.handlers.finalize.handler",
}
LIMIT_SHARE = 0.6
GROWTH_LIMIT = 1.5
_WORDS = ("the", "council", "said", "on", "Tuesday", "that", "a", "new", "bridge", "would", "open", "in", "spring",
          "officials", "café", "naïve", "São", "Paulo", "Zürich", "résumé", "report", "found", "more", "than", "half",
          "residents", "had", "never", "visited", "museum", "据报道", "Москва")


def _sentence(rng: random.Random, words: int) -> str:
    text = " ".join(rng.choice(_WORDS) for _ in range(words))
    if rng.random() < 0.3:
        text += ' "' + " ".join(rng.choice(_WORDS) for _ in range(6)) + '," he said'
    return text[0].upper() + text[1:] + "."


def _article(rng: random.Random, chars: int) -> str:
    parts, size = [], 0
    while size < chars:
        paragraph = " ".join(_sentence(rng, rng.randint(8, 24)) for _ in range(rng.randint(2, 5)))
        parts.append(paragraph)
        size += len(paragraph) + 2
    return "\n\n".join(parts)[:chars]


def _summary(rng: random.Random) -> str:
    return "\n".join(_sentence(rng, rng.randint(10, 16)) for _ in range(3))[:320]


def generate(path: Path, records: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    # A pool of generated texts, recombined per record: realistic sizes without generating 4 GB word by word.
    articles = [_article(rng, 4000) for _ in range(256)]
    summaries = [_summary(rng) for _ in range(256)]
    with open(path, "w", encoding="utf-8") as out:
        for i in range(records):
            record = {"id": f"cnn-{i:08d}", "text_inputs": f"Summarize: {i} " + articles[rng.randrange(256)],
                      "reference": summaries[rng.randrange(256)]}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------- one step, in its own process


def _run(root: Path, pipeline_name: str) -> dict:
    return {"run_id": "bench-0000000000000000", "pipeline": pipeline_name, "output_bucket": BUCKET,
            "run_prefix": f"runs/{pipeline_name}/bench-0000000000000000/"}


def _client(root: Path):
    from bench.file_s3 import FileS3

    return FileS3(root / "s3")


def _pipeline(name: str):
    from batch_pipeline_local.settings import load_pipeline

    loaded = load_pipeline(name)
    return loaded.model_copy(
        update={"sagemaker_model_name": loaded.sagemaker_model_name or f"llmbp-{loaded.model_key}"}
    )


def step_intake(root: Path, pipeline_name: str, tmp: str) -> int:
    from batch_pipeline.intake import run_intake
    from batch_pipeline.layout import INTERMEDIATE_TAGGING
    from batch_pipeline.s3io import S3RunSink, iter_object_chunks

    s3, run = _client(root), _run(root, pipeline_name)
    sink = S3RunSink(s3, BUCKET, run["run_prefix"], intermediate_tagging=INTERMEDIATE_TAGGING)
    outcome = run_intake(iter_object_chunks(s3, INPUT_BUCKET, "upload.jsonl"), _pipeline(pipeline_name), sink=sink,
                         workdir=tmp, run_id=run["run_id"])
    if not outcome.accepted:
        raise SystemExit(f"intake rejected the generated file: {outcome.report.get('reason')}")
    (root / "shards.json").write_text(json.dumps([shard["key"] for shard in outcome.shards]))
    return outcome.report["valid"]


def step_backend(root: Path, pipeline_name: str, tmp: str) -> int:
    """The local stand-in for the model container: shuffled `.out` lines, Python-literal as JumpStart writes."""
    import orjson

    s3, run = _client(root), _run(root, pipeline_name)
    rng = random.Random(7)
    answers = [_summary(rng) for _ in range(512)]
    count = 0
    for key in json.loads((root / "shards.json").read_text()):
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"]
        ids = [orjson.loads(line)["id"] for line in body.iter_lines()]
        rng.shuffle(ids)
        lines = (repr({"id": i, "generated_texts": [answers[rng.randrange(512)]]}) + "\n" for i in ids)
        out = root / "s3" / BUCKET / f"{run['run_prefix']}raw/bench-job/{key.rsplit('/', 1)[-1]}.out"
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w", encoding="utf-8") as handle:
            handle.writelines(lines)
        count += len(ids)
    return count


def _job(root: Path) -> dict:
    return {"name": "bench-job", "state": "succeeded", "status": "Completed",
            "shard_keys": json.loads((root / "shards.json").read_text())}


def step_collect(root: Path, pipeline_name: str, tmp: str) -> int:
    from batch_pipeline.backends.sagemaker import SageMakerBackend
    from batch_pipeline.collect import collect

    s3, run = _client(root), _run(root, pipeline_name)
    backend = SageMakerBackend(_pipeline(pipeline_name), s3=s3, sagemaker=None)
    result = collect(run, [_job(root)], backend, s3, workdir=tmp)
    (root / "collect.json").write_text(json.dumps(result))
    return result["records"]


def step_evaluate(root: Path, pipeline_name: str, tmp: str) -> int:
    from batch_pipeline.handlers.evaluate import evaluate_run

    s3, run = _client(root), _run(root, pipeline_name)
    collected = json.loads((root / "collect.json").read_text())
    evaluation = evaluate_run(run, collected, _pipeline(pipeline_name).pipeline.evaluation, s3)
    (root / "evaluation.json").write_text(json.dumps(evaluation))
    return evaluation.get("prediction_lines", 0)


def step_finalize(root: Path, pipeline_name: str, tmp: str) -> int:
    from batch_pipeline.manifest import build_manifest

    s3, run = _client(root), _run(root, pipeline_name)
    collected = json.loads((root / "collect.json").read_text())
    evaluation = json.loads((root / "evaluation.json").read_text())
    run = {**run, "counts": {"total": collected["records"], "valid": collected["records"], "rejected": 0},
           "input": {"bucket": INPUT_BUCKET, "key": "upload.jsonl"}, "started_at": "2026-01-01T00:00:00+00:00",
           "backend": "sagemaker", "model": "bench"}
    manifest = build_manifest(run, [_job(root)], collected, evaluation)
    s3.put_object(Bucket=BUCKET, Key=f"{run['run_prefix']}manifest.json", Body=json.dumps(manifest).encode())
    return collected["records"]


STEPS = {"intake": step_intake, "backend": step_backend, "collect": step_collect, "evaluate": step_evaluate,
         "finalize": step_finalize}


def _tree_bytes(path: str) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(folder, name))
    return total


def _peak_rss_kb() -> int:
    """This process's own high-water mark (VmHWM): unlike getrusage's ru_maxrss, it does not carry the parent's
    peak over fork and exec."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(step: str, root: Path, pipeline_name: str) -> None:
    tmp = tempfile.mkdtemp(prefix=f"{step}-tmp-", dir=root)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            peak[0] = max(peak[0], _tree_bytes(tmp))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    records = STEPS[step](root, pipeline_name, tmp)
    done.set()
    sampler.join()
    peak[0] = max(peak[0], _tree_bytes(tmp))
    shutil.rmtree(tmp, ignore_errors=True)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"records": records, "peak_rss_mb": round(_peak_rss_kb() / 1024, 1),
                      "cpu_s": round(usage.ru_utime + usage.ru_stime, 2), "tmp_mb": round(peak[0] / 2**20, 1)}))


# ---------------------------------------------------------------- the parent: sizes x pipelines x steps


def limits_from_template() -> dict[str, dict]:
    from batch_pipeline_local.runner import resources_of, synthesize_template

    template = synthesize_template()
    limits = {}
    for resource_ in resources_of(template, "AWS::Lambda::Function").values():
        props = resource_["Properties"]
        for step, handler in HANDLERS.items():
            if props.get("Handler") == handler:
                limits[step] = {"memory_mb": props.get("MemorySize", 128), "timeout_s": props.get("Timeout", 3),
                                "ephemeral_mb": props.get("EphemeralStorage", {}).get("Size", 512)}
    return limits


def measure(records: int, pipeline_name: str, limits: dict, workdir: str | None) -> list[dict]:
    root = Path(tempfile.mkdtemp(prefix=f"scale-{records}-", dir=workdir))
    rows = []
    try:
        upload = root / "s3" / INPUT_BUCKET / "upload.jsonl"
        upload.parent.mkdir(parents=True)
        generate(upload, records)
        for step in STEPS:
            started = time.monotonic()
            done = subprocess.run([sys.executable, __file__, "--child", step, "--root", str(root),
                                   "--pipeline", pipeline_name], capture_output=True, text=True, check=False)
            if done.returncode:
                raise SystemExit(f"step {step} at {records} records failed:\n{done.stderr[-4000:]}")
            if step == "backend":
                continue  # a local stand-in for the model, not a Lambda step
            row = {"pipeline": pipeline_name, "step": step, **json.loads(done.stdout.strip().splitlines()[-1])}
            row["wall_s"] = round(time.monotonic() - started, 1)
            limit = limits.get(step, {})
            row.update(limit)
            if limit:
                row["lambda_seconds"] = round(max(row["cpu_s"], row["cpu_s"] * 1769 / limit["memory_mb"]), 1)
                row["worst_share"] = round(max(row["peak_rss_mb"] / limit["memory_mb"],
                                               row["lambda_seconds"] / limit["timeout_s"],
                                               row["tmp_mb"] / limit["ephemeral_mb"]), 3)
            rows.append(row)
            print(f"  {records:>9,} {step:<9} rss {row['peak_rss_mb']:>7} MB  cpu {row['cpu_s']:>7} s  "
                  f"tmp {row['tmp_mb']:>7} MB", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return rows


def verdict(rows: list[dict]) -> list[str]:
    lines = []
    largest = max(row["records"] for row in rows)
    for row in rows:
        if row["records"] == largest and row.get("worst_share", 0) > LIMIT_SHARE:
            lines.append(f"{row['pipeline']} {row['step']} at {largest:,} uses {row['worst_share']:.0%} of a limit")
    for pipeline_name in {row["pipeline"] for row in rows}:
        for step in ("collect", "evaluate"):
            series = sorted((r["records"], r["peak_rss_mb"]) for r in rows if r["pipeline"] == pipeline_name
                            and r["step"] == step)
            if len(series) > 1:
                growth = series[-1][1] / series[0][1]
                lines.append(f"{pipeline_name} {step} peak RSS grows {growth:.2f}x from {series[0][0]:,} to "
                             f"{series[-1][0]:,} records (goal <= {GROWTH_LIMIT}x)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, nargs="+", default=[100_000])
    parser.add_argument("--pipeline", nargs="+", default=["summarize"])
    parser.add_argument("--json", action="store_true", help="print the rows as a JSON list")
    parser.add_argument("--workdir", help="where the generated runs go (default: the system temp dir)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, Path(args.root), args.pipeline[0])
        return 0
    limits = limits_from_template()
    rows = []
    for pipeline_name in args.pipeline:
        for records in sorted(args.records):
            rows += measure(records, pipeline_name, limits, args.workdir)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        header = ("pipeline", "step", "records", "peak_rss_mb", "memory_mb", "cpu_s", "lambda_seconds", "timeout_s",
                  "tmp_mb", "ephemeral_mb", "worst_share")
        print(" | ".join(header))
        for row in rows:
            print(" | ".join(str(row.get(name, "")) for name in header))
        for line in verdict(rows):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
