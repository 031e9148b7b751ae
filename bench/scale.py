"""Benchmark: each Lambda step's own code over generated CNN/DailyMail-sized runs, against the step's limits.

    .venv/bin/python bench/scale.py --records 100000 1000000 --pipeline summarize classify bedrock-summarize \\
        bedrock-converse [--json] [--workdir DIR] [--assembly cdk.out] [--failed-share 0.02] [--retry-failed-share 0.1]

Exit status 0 when the goal below is met at the largest size measured, 1 when it is not. At 1M records a run
writes about 20 GB per pipeline under --workdir (removed after each run) and takes five to six CPU-minutes per pipeline.

For each pipeline and size, a seeded generator writes the upload in the pipeline's input format: ~4 KB articles
with quotes, newlines and non-ASCII, and a ~300-character reference (ROUGE pipelines) or a label (classification)
each; no third-party text. Then each step runs its own code, each in its own subprocess so that its peak RSS is
its own, in the order the state machine runs them:

  intake       IntakeService.process (the handler's body): validation, spill, shards, id index, references,
               intake.json, the job plan (jobs/), StartExecution
  job_control  loop.submit_job / loop.check_job per job and round (the poll loop), including the Bedrock
               retry of failed records (`BedrockBackend.finish`: the retry file, then the retry's submission)
  retry_merge  a job control invocation that merged a retry's answers into the first output, on code where job
               control does that (older runs); collect does it now, so it is part of collect's row
  collect      collect (the handler's body), including the merge of retried answers and the scoring: per-record
               scores, their run-level sums and evaluation.json, in the same pass (there is no evaluate step)
  finalize     build_manifest + Manifest validation + summary.md + report.html (the handler's body)

Between the rounds of job control, a local stand-in for the model (not measured, not a Lambda) answers every
record of every running job where the backend reads it (`raw_outputs`): SageMaker text2text as a JumpStart
container's Python-literal `.out` lines, SHUFFLED; SageMaker zero-shot in input order (SplitType=Line with
AssembleWith=Line keeps it; collect joins by position); Bedrock `{"recordId", "modelInput", "modelOutput"}`
lines, SHUFFLED, with a share of records failed (`--failed-share`, default 2%, as Bedrock's per-record `error`
lines) of which a share fails again on retry (`--retry-failed-share`, default 10%), plus manifest.json.out.
The Bedrock pipelines are run with `retry_failed_records` on (cdk.json leaves it off), so the merge is measured.

AWS: S3 is bench/file_s3.py (objects are files; GetObject returns botocore's real StreamingBody), so a step reads
as it reads S3 and its memory holds no bucket. SageMaker, Bedrock, Bedrock runtime and Step Functions are real
botocore clients answered by bench/aws_stand_in.py (botocore validates each request and parses each answer).

Reported per step: records (the run's), invocations, peak_rss_mb (the step process's own VmHWM), cpu_s
(user+system; for job control the longest single invocation, which is what its timeout sees; cpu_total_s is
every invocation), lambda_seconds (cpu x 1769 / MemorySize, at least cpu: a Lambda has one vCPU's worth of time
at 1,769 MB), tmp_mb (the peak size of the step's TMPDIR, sampled every 0.2 s), and the step's memory_mb,
timeout_s and ephemeral_mb from the synthesized template (synthesized once per bench run); then the share of each
limit used and, for every size, the ratio of peak RSS to the same step at the baseline size (100,000 records
when measured, else the smallest). Goal (issue 13): at the largest size every step within 60% of each limit,
and collect's peak RSS growing at most 1.5x from the baseline. A measurement, not a timed test.
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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "lambdas", REPO / "local"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

BUCKET = "llmbp-bench-output"
INPUT_BUCKET = "llmbp-bench-input"
STATE_MACHINE_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:llmbp-bench"
BEDROCK_ROLE_ARN = "arn:aws:iam::123456789012:role/llmbp-bench-bedrock"
# Each reported step and the Lambda whose template limits apply to it.
STEP_FUNCTION = {
    "intake": "batch_pipeline.handlers.intake.handler",
    "job_control": "batch_pipeline.handlers.job_control.handler",
    # Only on code where job control merged retries (collect does now); a merge Lambda of its own would go here.
    "retry_merge": "batch_pipeline.handlers.job_control.handler",
    "collect": "batch_pipeline.handlers.collect.handler",
    "finalize": "batch_pipeline.handlers.finalize.handler",
}
GROWTH_STEPS = ("collect",)
LIMIT_SHARE = 0.6
GROWTH_LIMIT = 1.5
GOAL_RECORDS = 1_000_000
BASELINE_RECORDS = 100_000
MAX_ROUNDS = 8
LABELS = ("politics", "business", "sport", "science", "culture")
_WORDS = (
    "the",
    "council",
    "said",
    "on",
    "Tuesday",
    "that",
    "a",
    "new",
    "bridge",
    "would",
    "open",
    "in",
    "spring",
    "officials",
    "café",
    "naïve",
    "São",
    "Paulo",
    "Zürich",
    "résumé",
    "report",
    "found",
    "more",
    "than",
    "half",
    "residents",
    "had",
    "never",
    "visited",
    "museum",
    "据报道",
    "Москва",
)


# ---------------------------------------------------------------- generated text


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


def _nova_body(text: str) -> dict[str, Any]:
    return {
        "schemaVersion": "messages-v1",
        "messages": [{"role": "user", "content": [{"text": text}]}],
        "inferenceConfig": {"maxTokens": 300, "temperature": 0.2},
    }


def _record_maker(input_format: str) -> Callable[[int, str, str, str], dict[str, Any]]:
    """(index, article, reference, label) -> one upload line in the pipeline's input format."""
    makers: dict[str, Callable[[int, str, str, str], dict[str, Any]]] = {
        "jumpstart-text2text": lambda i, text, ref, label: {
            "id": f"cnn-{i:08d}",
            "text_inputs": f"Summarize: {i} " + text,
            "reference": ref,
        },
        "zero-shot": lambda i, text, ref, label: {
            "id": f"cnn-{i:08d}",
            "sequences": f"{i} {text}",
            "candidate_labels": list(LABELS),
            "label": label,
        },
        "bedrock": lambda i, text, ref, label: {
            "recordId": f"cnn-{i:08d}",
            "modelInput": _nova_body(f"Summarize this article in three sentences: {i} {text}"),
            "reference": ref,
        },
        "prompt": lambda i, text, ref, label: {
            "id": f"cnn-{i:08d}",
            "prompt": f"Summarize: {i} {text}",
            "reference": ref,
        },
    }
    if input_format not in makers:
        raise SystemExit(f"bench/scale.py generates no {input_format!r} input")
    return makers[input_format]


def generate(path: Path, records: int, input_format: str, seed: int = 0) -> None:
    rng = random.Random(seed)
    # A pool of generated texts, recombined per record: realistic sizes without generating 4 GB word by word.
    articles = [_article(rng, 4000) for _ in range(256)]
    summaries = [_summary(rng) for _ in range(256)]
    make = _record_maker(input_format)
    with open(path, "w", encoding="utf-8") as out:
        for i in range(records):
            record = make(i, articles[rng.randrange(256)], summaries[rng.randrange(256)], LABELS[rng.randrange(5)])
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------- adapters: each step's own code, called as its
# handler calls it (a step that moves to another module is a one-line change here)


class Bench:
    """One generated run: the S3 stand-in, the AWS stand-ins, the pipeline, the run reference."""

    def __init__(self, root: Path, pipeline_name: str, failed_share: float, retry_failed_share: float) -> None:
        from bench.aws_stand_in import StandInAws
        from bench.file_s3 import FileS3

        self.root = root
        self.s3 = FileS3(root / "s3")
        self.aws = StandInAws(root / "aws-stand-in.json", runtime_failed_share=retry_failed_share)
        self.pipeline = bench_pipeline(pipeline_name)
        self.failed_share, self.retry_failed_share = failed_share, retry_failed_share

    @property
    def run(self) -> dict[str, Any]:
        started: dict[str, Any] = json.loads((self.root / "execution-input.json").read_text())
        run: dict[str, Any] = started.get("run", started)  # {"run", "plan"}; older intakes started with the run
        return run

    @property
    def folder(self) -> Any:
        from batch_pipeline.storage.layout import RunFolder

        return RunFolder.of(self.run)

    def backend(self) -> Any:
        from batch_pipeline.jobs.backends import backend_class, backend_for

        services = [service for service in backend_class(self.pipeline.backend).CLIENTS if service != "s3"]
        clients = {service.replace("-", "_"): self.aws.client(service) for service in services}
        return backend_for(self.pipeline, s3=self.s3, **clients)

    def jobs(self) -> list[Any]:
        """Every job of the run (contracts.Job), from its jobs/ folder."""
        from batch_pipeline.storage.job_store import resolve_jobs

        return resolve_jobs(self.s3, self.folder, None)

    def save(self, name: str, value: Any) -> None:
        (self.root / f"{name}.json").write_text(json.dumps(value))

    def load(self, name: str) -> Any:
        return json.loads((self.root / f"{name}.json").read_text())


def bench_pipeline(name: str) -> Any:
    """The pipeline from cdk.json; the stack's model name for SageMaker; Bedrock with retry_failed_records on."""
    from batch_pipeline_local.project import load_pipeline

    loaded = load_pipeline(name)
    update: dict[str, Any] = {"sagemaker_model_name": loaded.sagemaker_model_name or f"llmbp-{loaded.model_key}"}
    if loaded.pipeline.bedrock is not None:
        bedrock = loaded.pipeline.bedrock.model_copy(update={"retry_failed_records": True})
        update["pipeline"] = loaded.pipeline.model_copy(update={"bedrock": bedrock})
    return loaded.model_copy(update=update)


def step_intake(bench: Bench) -> list[dict[str, Any]]:
    from batch_pipeline.intake.service import IntakeService, IntakeSettings

    settings = IntakeSettings(
        pipelines={bench.pipeline.name: bench.pipeline},
        output_bucket=BUCKET,
        state_machine_arn=STATE_MACHINE_ARN,
        topic_arn=None,
        workdir=None,
    )
    service = IntakeService(bench.s3, bench.aws.client("stepfunctions"), None, settings, log=lambda *args, **keys: None)
    result = service.process(INPUT_BUCKET, f"{bench.pipeline.name}/upload.jsonl")
    if result["status"] != "started":
        raise SystemExit(f"intake did not start the run: {result}")
    return [{"records": result["counts"]["valid"]}]


def job_control_invocation(step: Any, backend: Any, folder: Any) -> Any:
    """One job control invocation: the Map's first step submits, every later one checks (loop.py)."""
    from batch_pipeline.jobs import loop

    action = loop.check_job if step.job.state is not None else loop.submit_job
    return action(step, backend, folder)


def step_job_control(bench: Bench) -> list[dict[str, Any]]:
    """One round of the poll loop: one invocation per job that has not ended, as the Map runs them."""
    from batch_pipeline.contracts import JobStep
    from batch_pipeline.storage.job_store import save_job

    run, folder, backend, invocations = bench.run, bench.folder, bench.backend(), []
    for job in bench.jobs():
        if job.done:
            continue
        started = time.process_time()
        result = job_control_invocation(JobStep.model_validate({"run": run, "job": job}), backend, folder)
        save_job(bench.s3, folder, result.job)
        merged = bool(result.job.merged_output_key) and not job.merged_output_key
        invocations.append(
            {
                "step": "retry_merge" if merged else "job_control",
                "records": result.job.records,
                "cpu_s": round(time.process_time() - started, 3),
            }
        )
    return invocations


def step_collect(bench: Bench) -> list[dict[str, Any]]:
    from batch_pipeline.results.collect import collect

    result = collect(bench.folder, bench.jobs(), bench.backend(), bench.s3)
    bench.save("collect", result)
    return [{"records": result["records"]}]


def step_finalize(bench: Bench) -> list[dict[str, Any]]:
    from batch_pipeline.contracts import Job, Manifest
    from batch_pipeline.results.finish import report_page
    from batch_pipeline.results.manifest import build_manifest, render_summary
    from batch_pipeline.results.report import put_report

    run, folder, collected = bench.run, bench.folder, bench.load("collect")
    # As the handler: the jobs' final states from collect's result, not a second listing of jobs/; the evaluation
    # collect wrote in its own pass.
    jobs = [Job.model_validate(job) for job in collected["job_states"]]
    manifest = build_manifest(run, jobs, collected, collected["evaluation"], folder=folder)
    Manifest.model_validate(manifest)
    bench.s3.put_object(Bucket=BUCKET, Key=folder.manifest_key, Body=json.dumps(manifest, indent=2).encode())
    bench.s3.put_object(Bucket=BUCKET, Key=folder.summary_key, Body=render_summary(manifest).encode())
    # report.html as the handler renders it (vl-convert's start-up and the charts included) from collect's aggregates.
    page, error = report_page(manifest, collected["evaluation"], collected.get("report"))
    if page is None:
        raise RuntimeError("report.html could not be rendered") from error
    put_report(bench.s3, BUCKET, folder.report_key, page)
    # What the run came to, so a table row is also a check that the run worked.
    return [
        {
            "records": collected["records"],
            "succeeded": manifest["counts"]["succeeded"],
            "failed": manifest["counts"]["failed"],
            "status": manifest["status"],
        }
    ]


# ---------------------------------------------------------------- the model stand-in (not measured)


def step_model(bench: Bench) -> list[dict[str, Any]]:
    """Answer every record of every job the stand-in control plane has running, where the backend reads it."""
    import orjson

    running = {name for name, job in bench.aws.jobs().items() if job["status"] == "InProgress"}
    backend, rng = bench.backend(), random.Random(7)
    answers = [_summary(rng) for _ in range(512)]
    count = 0
    for job in bench.jobs():
        if job.name not in running:
            continue
        retry = job.first_attempt is not None
        counts = {"totalRecordCount": 0, "processedRecordCount": 0, "successRecordCount": 0, "errorRecordCount": 0}
        for raw in backend.raw_outputs(bench.folder, job):
            body = bench.s3.get_object(Bucket=BUCKET, Key=raw.input_key)["Body"]
            records = (orjson.loads(line) for line in body.iter_lines() if line.strip())
            path = bench.root / "s3" / BUCKET / raw.output_key
            path.parent.mkdir(parents=True, exist_ok=True)
            written = errors = 0
            with open(path, "wb") as out:
                lines = _answers(bench, records, answers, rng, retry)
                if raw.join == "id":
                    # Order is not guaranteed (the join is by id): shuffled. Held whole here, in the stand-in only.
                    lines = list(lines)
                    rng.shuffle(lines)
                for line in lines:
                    out.write(line)
                    written += 1
                    errors += line.startswith(b'{"recordId"') and b'"error":{' in line
            counts = {
                "totalRecordCount": counts["totalRecordCount"] + written,
                "processedRecordCount": counts["processedRecordCount"] + written,
                "successRecordCount": counts["successRecordCount"] + written - errors,
                "errorRecordCount": counts["errorRecordCount"] + errors,
            }
            count += written
            if bench.pipeline.backend == "bedrock":
                manifest = {
                    **counts,
                    "inputTokenCount": 1000 * counts["successRecordCount"],
                    "outputTokenCount": 50 * counts["successRecordCount"],
                }
                path.with_name("manifest.json.out").write_bytes(orjson.dumps(manifest))
        bench.aws.complete(job.name, counts if bench.pipeline.backend == "bedrock" else None)
    return [{"records": count}]


def _answers(
    bench: Bench, records: Iterator[dict[str, Any]], answers: list[str], rng: random.Random, retry: bool
) -> Iterator[bytes]:
    import orjson

    from bench.aws_stand_in import fails, nova_output

    pipeline = bench.pipeline
    if pipeline.backend == "bedrock":
        share = bench.retry_failed_share if retry else bench.failed_share
        for record in records:
            line: dict[str, Any] = {"recordId": record["recordId"], "modelInput": record["modelInput"]}
            if fails(record["recordId"], share, salt="retry" if retry else "first"):
                line["error"] = {"errorCode": 400, "errorMessage": "stand-in model refused the record"}
            else:
                line["modelOutput"] = nova_output(answers[rng.randrange(512)])
            yield orjson.dumps(line) + b"\n"
    elif pipeline.task == "zero-shot":
        for record in records:
            labels = list(record["candidate_labels"])
            rng.shuffle(labels)
            scores = sorted((rng.random() for _ in labels), reverse=True)
            yield (
                orjson.dumps(
                    {
                        "sequence": record["sequences"],
                        "labels": labels,
                        "scores": [score / sum(scores) for score in scores],
                    }
                )
                + b"\n"
            )
    else:
        # JumpStart text2text writes Python literals, not JSON.
        for record in records:
            yield (repr({"id": record["id"], "generated_texts": [answers[rng.randrange(512)]]}) + "\n").encode()


STEPS: dict[str, Callable[[Bench], list[dict[str, Any]]]] = {
    "intake": step_intake,
    "job_control": step_job_control,
    "model": step_model,
    "collect": step_collect,
    "finalize": step_finalize,
}


# ---------------------------------------------------------------- one step, in its own process


def _tree_bytes(path: str) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # a file the step removed meanwhile
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


def child(step: str, root: Path, pipeline_name: str, failed_share: float, retry_failed_share: float) -> None:
    """Run one step with TMPDIR as its /tmp (the parent set it), and print what it used as one JSON line."""
    tmp = os.environ["TMPDIR"]
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            peak[0] = max(peak[0], _tree_bytes(tmp))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    # CPU of the step's own work (its module imports included), not of this interpreter's start-up.
    started = time.process_time()
    invocations = STEPS[step](Bench(root, pipeline_name, failed_share, retry_failed_share))
    cpu = time.process_time() - started
    done.set()
    sampler.join()
    peak[0] = max(peak[0], _tree_bytes(tmp))
    print(
        json.dumps(
            {
                "invocations": invocations,
                "peak_rss_mb": round(_peak_rss_kb() / 1024, 1),
                "cpu_s": round(cpu, 2),
                "tmp_mb": round(peak[0] / 2**20, 1),
            }
        )
    )


# ---------------------------------------------------------------- the parent: sizes x pipelines x steps


def limits_from_template(assembly: str | None = None) -> dict[str, dict[str, int]]:
    """Each step's MemorySize, Timeout and EphemeralStorage: from a cloud assembly (`cdk synth` writes cdk.out)
    when given, else from a synthesis of the app now."""
    from batch_pipeline_local.template import resources_of, synthesize_template, template_from_assembly

    template = template_from_assembly(assembly) if assembly else synthesize_template()
    by_handler = {}
    for resource_ in resources_of(template, "AWS::Lambda::Function").values():
        props = resource_["Properties"]
        by_handler[props.get("Handler")] = {
            "memory_mb": props.get("MemorySize", 128),
            "timeout_s": props.get("Timeout", 3),
            "ephemeral_mb": props.get("EphemeralStorage", {}).get("Size", 512),
        }
    return {step: by_handler[handler] for step, handler in STEP_FUNCTION.items() if handler in by_handler}


def _run_step(step: str, root: Path, args: argparse.Namespace, pipeline_name: str) -> dict[str, Any]:
    tmp = tempfile.mkdtemp(prefix=f"{step}-tmp-", dir=root)
    command = [
        sys.executable,
        __file__,
        "--child",
        step,
        "--root",
        str(root),
        "--pipeline",
        pipeline_name,
        "--failed-share",
        str(args.failed_share),
        "--retry-failed-share",
        str(args.retry_failed_share),
    ]
    env = {
        **os.environ,
        "TMPDIR": tmp,
        "BEDROCK_ROLE_ARN": BEDROCK_ROLE_ARN,
        "OUTPUT_BUCKET": BUCKET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
    }
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    shutil.rmtree(tmp, ignore_errors=True)
    if done.returncode:
        raise SystemExit(f"step {step} of {pipeline_name} failed:\n{done.stderr[-4000:]}")
    measured: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    measured["wall_s"] = round(time.monotonic() - started, 1)
    return measured


def _jobs_done(root: Path) -> bool:
    from batch_pipeline.storage.layout import RunFolder

    started = root / "execution-input.json"
    if not started.exists():
        return False
    execution_input = json.loads(started.read_text())
    run = execution_input.get("run", execution_input)
    folder = root / "s3" / BUCKET / RunFolder.of(run).jobs_prefix
    return folder.is_dir() and all(json.loads(path.read_text()).get("done") for path in folder.glob("*.json"))


def measure(
    records: int, pipeline_name: str, limits: dict[str, dict[str, int]], args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Every step of one run; job control's rounds are folded into one row per reported step."""
    root = Path(tempfile.mkdtemp(prefix=f"scale-{pipeline_name}-{records}-", dir=args.workdir))
    rows: dict[str, dict[str, Any]] = {}
    try:
        upload = root / "s3" / INPUT_BUCKET / pipeline_name / "upload.jsonl"
        upload.parent.mkdir(parents=True)
        (root / "s3" / BUCKET).mkdir(parents=True)
        generate(upload, records, bench_pipeline(pipeline_name).pipeline.input_format)
        for name in ["intake"] + ["job_control"] * MAX_ROUNDS + ["collect", "finalize"]:
            if name == "job_control" and _jobs_done(root):
                continue
            _fold(rows, name, _run_step(name, root, args, pipeline_name))
            if name == "job_control" and not _jobs_done(root):
                _run_step("model", root, args, pipeline_name)
        if not _jobs_done(root):
            raise SystemExit(f"{pipeline_name}: jobs not done after {MAX_ROUNDS} rounds of job control")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out = []
    for step, row in rows.items():
        row = {"pipeline": pipeline_name, "step": step, "records": records, **row, **limits.get(step, {})}
        if step in limits:
            row["lambda_seconds"] = round(max(row["cpu_s"], row["cpu_s"] * 1769 / row["memory_mb"]), 2)
            row["memory_share"] = round(row["peak_rss_mb"] / row["memory_mb"], 3)
            row["timeout_share"] = round(row["lambda_seconds"] / row["timeout_s"], 3)
            row["ephemeral_share"] = round(row["tmp_mb"] / row["ephemeral_mb"], 3)
        out.append(row)
        print(
            f"  {pipeline_name:<18} {records:>9,} {step:<12} rss {row['peak_rss_mb']:>7} MB  cpu {row['cpu_s']:>7} s"
            f"  tmp {row['tmp_mb']:>7} MB  wall {row['wall_s']:>6} s",
            file=sys.stderr,
            flush=True,
        )
    return out


def _fold(rows: dict[str, dict[str, Any]], name: str, measured: dict[str, Any]) -> None:
    """A step's process into its row; job control's invocations into job_control / retry_merge by what they did."""
    if name != "job_control":
        outcome = {key: value for key, value in measured["invocations"][0].items() if key != "records"}
        rows[name] = {
            **outcome,
            "invocations": 1,
            "peak_rss_mb": measured["peak_rss_mb"],
            "cpu_s": measured["cpu_s"],
            "cpu_total_s": measured["cpu_s"],
            "tmp_mb": measured["tmp_mb"],
            "wall_s": measured["wall_s"],
        }
        return
    for step in {invocation["step"] for invocation in measured["invocations"]}:
        mine = [invocation for invocation in measured["invocations"] if invocation["step"] == step]
        row = rows.setdefault(
            step, {"invocations": 0, "peak_rss_mb": 0.0, "cpu_s": 0.0, "cpu_total_s": 0.0, "tmp_mb": 0.0, "wall_s": 0.0}
        )
        row["invocations"] += len(mine)
        row["peak_rss_mb"] = max(row["peak_rss_mb"], measured["peak_rss_mb"])
        row["tmp_mb"] = max(row["tmp_mb"], measured["tmp_mb"])
        row["cpu_s"] = round(max(row["cpu_s"], *(invocation["cpu_s"] for invocation in mine)), 2)
        row["cpu_total_s"] = round(row["cpu_total_s"] + sum(invocation["cpu_s"] for invocation in mine), 2)
        row["wall_s"] = round(row["wall_s"] + measured["wall_s"], 1)


def add_growth(rows: list[dict[str, Any]]) -> None:
    """Each row's peak RSS against the same pipeline and step at the baseline size (100k when measured)."""
    for row in rows:
        sizes = sorted({r["records"] for r in rows if r["pipeline"] == row["pipeline"]})
        baseline_size = BASELINE_RECORDS if BASELINE_RECORDS in sizes else sizes[0]
        base = next(
            (
                r
                for r in rows
                if r["pipeline"] == row["pipeline"] and r["step"] == row["step"] and r["records"] == baseline_size
            ),
            None,
        )
        if base is not None and base["peak_rss_mb"]:
            row["rss_vs_baseline"] = round(row["peak_rss_mb"] / base["peak_rss_mb"], 2)
            row["baseline_records"] = baseline_size


def verdict(rows: list[dict[str, Any]]) -> tuple[bool, list[str]]:
    """(goal met, one line per miss and per growth figure) at the largest size measured."""
    largest = max(row["records"] for row in rows)
    lines, ok = [], True
    for row in rows:
        if row["records"] != largest or "memory_share" not in row:
            continue
        for limit in ("memory", "timeout", "ephemeral"):
            if row[f"{limit}_share"] > LIMIT_SHARE:
                ok = False
                lines.append(
                    f"MISS {row['pipeline']} {row['step']} at {largest:,}: {row[f'{limit}_share']:.0%} of "
                    f"its {limit} limit (goal <= {LIMIT_SHARE:.0%})"
                )
        if row["step"] in GROWTH_STEPS and row.get("baseline_records", largest) != largest:
            growth = row["rss_vs_baseline"]
            ok &= growth <= GROWTH_LIMIT
            lines.append(
                f"{'MISS' if growth > GROWTH_LIMIT else 'ok'} {row['pipeline']} {row['step']} peak RSS grows "
                f"{growth:.2f}x from {row['baseline_records']:,} to {largest:,} (goal <= {GROWTH_LIMIT}x)"
            )
    scope = "" if largest >= GOAL_RECORDS else f" (measured at {largest:,} records; the goal is stated for 1,000,000)"
    lines.append(
        f"{'PASS' if ok else 'FAIL'}: every step within {LIMIT_SHARE:.0%} of each limit, collect "
        f"memory growth <= {GROWTH_LIMIT}x{scope}"
    )
    return ok, lines


TABLE = (
    "pipeline",
    "step",
    "records",
    "invocations",
    "peak_rss_mb",
    "memory_mb",
    "memory_share",
    "cpu_s",
    "lambda_seconds",
    "timeout_s",
    "timeout_share",
    "tmp_mb",
    "ephemeral_mb",
    "ephemeral_share",
    "rss_vs_baseline",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--records", type=int, nargs="+", default=[BASELINE_RECORDS])
    parser.add_argument("--pipeline", nargs="+", default=["summarize"])
    parser.add_argument("--json", action="store_true", help="print the rows as a JSON list")
    parser.add_argument("--workdir", help="where the generated runs go (default: the system temp dir)")
    parser.add_argument(
        "--assembly", help="read the limits from this cloud assembly (e.g. cdk.out) instead of synthesizing the app"
    )
    parser.add_argument("--failed-share", type=float, default=0.02, help="Bedrock records failed on the first try")
    parser.add_argument("--retry-failed-share", type=float, default=0.1, help="retried records that fail again")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, Path(args.root), args.pipeline[0], args.failed_share, args.retry_failed_share)
        return 0
    limits = limits_from_template(args.assembly)
    rows: list[dict[str, Any]] = []
    for pipeline_name in args.pipeline:
        for records in sorted(args.records):
            rows += measure(records, pipeline_name, limits, args)
    add_growth(rows)
    ok, lines = verdict(rows)
    if args.json:
        print(json.dumps(rows, indent=2))
        for line in lines:
            print(line, file=sys.stderr)
    else:
        print(" | ".join(TABLE))
        for row in rows:
            print(" | ".join(str(row.get(name, "")) for name in TABLE))
        for line in lines:
            print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
