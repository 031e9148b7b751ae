"""What intake does for one uploaded object, in AWS terms: dedupe, validate and shard, quarantine or start the run.

Order matters for retries (the Lambda is invoked asynchronously and retried on error):
- the deterministic execution name is checked first, so a duplicate or replayed event does no work;
- a rejected file's `<name>.report.json` is written last and doubles as the "already handled" marker;
- an accepted file's run folder (its planned jobs in jobs/ included) is written before StartExecution, and
  ExecutionAlreadyExists is a no-op, so a crash between the two is repaired by the retry.

The run is planned here (batch_pipeline.jobs.planning), from what the pass just measured: each job goes to
`<run>/jobs/<index>.json` and the execution input carries one `{"index"}` reference per job, so the workflow starts
running jobs without reading anything back (intake.json stays as the human-readable intake report).
The original object is only ever read (GetObject, and CopyObject as the source); nothing is deleted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from batch_pipeline.config.runtime import RuntimePipeline
from batch_pipeline.contracts import ExecutionInput, Job, PlanResult
from batch_pipeline.intake.stream import object_version_token, run_id_for, run_intake
from batch_pipeline.jobs.planning import plan_jobs, plan_references
from batch_pipeline.results.notifications import run_message
from batch_pipeline.results.report import put_report, render_rejection_report
from batch_pipeline.storage.job_store import save_job
from batch_pipeline.storage.layout import INTERMEDIATE_TAGGING, RejectedFile, RunFolder, run_prefix
from batch_pipeline.storage.s3io import (
    JSON,
    S3RunSink,
    copy_object,
    describe_object,
    error_code,
    iter_object_chunks,
    object_exists,
    put_bytes,
)

# A notification names a handful of errors and points at the full report. SNS refuses a publish whose message
# (with its attributes) exceeds 256 KB (262,144 bytes), so the body is cut well below that, counted in UTF-8 bytes.
NOTIFY_ERRORS = 10
NOTIFY_BODY_LIMIT = 64 * 1024


def bounded_bytes(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes (never inside a character), with a marker when cut."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    marker = f"\n... [truncated, {len(data)} bytes in all]\n"
    return data[: limit - len(marker.encode())].decode("utf-8", "ignore") + marker


def run_counts(report: dict[str, Any]) -> dict[str, int]:
    """The run's record counts as the manifest carries them, from the validation report."""
    return {key: report["counts"][key] for key in ("total", "valid", "rejected")}


def execution_arn(state_machine_arn: str, run_id: str) -> str:
    """arn:aws:states:R:A:stateMachine:NAME -> arn:aws:states:R:A:execution:NAME:RUN_ID."""
    parts = state_machine_arn.split(":")
    if len(parts) != 7 or parts[5] != "stateMachine":
        raise ValueError(f"not a state machine ARN: {state_machine_arn!r}")
    return ":".join([*parts[:5], "execution", parts[6], run_id])


def execution_input(run: dict[str, Any], jobs: list[Job], backend: str) -> dict[str, Any]:
    """StartExecution's input: the run reference and one `{"index"}` per planned job (the jobs are in jobs/)."""
    document = {"run": run, "plan": plan_references(jobs, backend)}
    ExecutionInput.model_validate(document)
    return document


@dataclass
class IntakeSettings:
    pipelines: dict[str, RuntimePipeline]
    output_bucket: str
    state_machine_arn: str
    topic_arn: str | None = None
    workdir: str | None = None


class IntakeService:
    def __init__(
        self, s3: Any, sfn: Any, sns: Any | None, settings: IntakeSettings, log: Callable[..., None] | None = None
    ):
        self.s3 = s3
        self.sfn = sfn
        self.sns = sns
        self.settings = settings
        self.log = log or (lambda level, message, **keys: None)

    def process(
        self, bucket: str, key: str, version_id: str | None = None, raw_key: str | None = None
    ) -> dict[str, Any]:
        """Handle one ObjectCreated object; returns what happened as {"status", ...} (never raises for bad input).

        `key` is the decoded key; `raw_key` the key as the event carried it, tried when the decoded one is not found
        (a key that really contains '%' or '+' is ambiguous once decoded).
        """
        if key.endswith("/"):
            return {"status": "ignored", "key": key, "reason": "folder marker"}
        pipeline_name = key.split("/", 1)[0] if "/" in key else ""
        pipeline = self.settings.pipelines.get(pipeline_name)
        if pipeline is None:
            return self._unknown_pipeline(bucket, key, pipeline_name)

        source = describe_object(self.s3, bucket, key, version_id)
        if source is None and raw_key and raw_key != key:
            source = describe_object(self.s3, bucket, raw_key, version_id)
            key = raw_key if source is not None else key
        if source is None:
            self.log("warning", "object no longer exists; nothing to do", bucket=bucket, key=key, version_id=version_id)
            return {"status": "gone", "key": key}
        run_id = run_id_for(bucket, key, object_version_token(source["version_id"], source["etag"]))
        name = key.rsplit("/", 1)[-1]
        result = {"run_id": run_id, "pipeline": pipeline.name, "key": key}

        arn = execution_arn(self.settings.state_machine_arn, run_id)
        if self._execution_exists(arn):
            self.log("info", "duplicate event: the run already exists", run_id=run_id, execution_arn=arn)
            return {**result, "status": "duplicate", "execution_arn": arn}
        report_key = RejectedFile.of(self.settings.output_bucket, pipeline.name, run_id, name).report_key
        if self._already_rejected(report_key):
            self.log("info", "duplicate event: the file was already rejected", run_id=run_id, report_key=report_key)
            return {**result, "status": "duplicate", "report_key": report_key}

        prefix = run_prefix(pipeline.name, run_id)
        folder = RunFolder(bucket=self.settings.output_bucket, prefix=prefix, pipeline=pipeline.name, run_id=run_id)
        sink = S3RunSink(self.s3, folder.bucket, folder.prefix, intermediate_tagging=INTERMEDIATE_TAGGING)
        outcome = run_intake(
            iter_object_chunks(self.s3, bucket, key, source["version_id"]),
            pipeline,
            sink=sink,
            workdir=self.settings.workdir,
            input_object=source,
            run_id=run_id,
        )
        report = outcome.report
        if not outcome.accepted:
            return {**result, **self._reject(pipeline, run_id, source, name, report)}

        run = {
            "run_id": run_id,
            "pipeline": pipeline.name,
            "backend": pipeline.backend,
            # The Bedrock model id or the SageMaker model name: what actually answered, for the manifest.
            "model": pipeline.bedrock_model_id or pipeline.sagemaker_model_name or pipeline.model_key,
            "output_bucket": folder.bucket,
            "run_prefix": folder.prefix,
            "input": source,
            "counts": run_counts(report),
            "ids_assigned": report["ids_assigned"],
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        jobs = plan_jobs(folder, outcome.intake, pipeline)
        PlanResult(jobs=jobs, backend=pipeline.backend)
        for job in jobs:
            save_job(self.s3, folder, job)
        self.log("info", "planned jobs", run_id=run_id, jobs=len(jobs), records=sum(job.records for job in jobs))
        start_input = execution_input(run, jobs, pipeline.backend)
        try:
            started = self.sfn.start_execution(
                stateMachineArn=self.settings.state_machine_arn, name=run_id, input=json.dumps(start_input)
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
                raise
            self.log("info", "duplicate event: execution already exists", run_id=run_id, execution_arn=arn)
            return {**result, "status": "duplicate", "execution_arn": arn}
        self.log(
            "info",
            "run started",
            run_id=run_id,
            execution_arn=started["executionArn"],
            **run_counts(report),
            shards=len(outcome.shards),
        )
        return {
            **result,
            "status": "started",
            "execution_arn": started["executionArn"],
            "counts": run["counts"],
            "shards": len(outcome.shards),
            "jobs": len(jobs),
        }

    def _already_rejected(self, report_key: str) -> bool:
        try:
            return object_exists(self.s3, self.settings.output_bucket, report_key)
        except ClientError as error:
            if error_code(error) not in ("403", "AccessDenied"):
                raise
            # Without s3:GetObject on rejected/* the check cannot be made; a replay then only repeats the notice.
            self.log(
                "warning",
                "cannot check for an earlier rejection (needs s3:GetObject on rejected/*)",
                report_key=report_key,
            )
            return False

    def _execution_exists(self, arn: str) -> bool:
        try:
            self.sfn.describe_execution(executionArn=arn)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ExecutionDoesNotExist":
                return False
            raise
        return True

    def _reject(
        self, pipeline: RuntimePipeline, run_id: str, source: dict[str, Any], name: str, report: dict[str, Any]
    ) -> dict[str, Any]:
        bucket = self.settings.output_bucket
        rejected = RejectedFile.of(bucket, pipeline.name, run_id, name)
        report_key, page_key = rejected.report_key, rejected.page_key
        copy_uri = rejected.uri(rejected.copy_key)
        # Everything that could fail on the input's content is built before anything is written, so a retry never
        # finds a copy without its report.
        report_body = json.dumps({**report, "rejected_copy": copy_uri}, indent=2).encode()
        page = self._rejection_page(report, copy_uri, rejected.uri(report_key), run_id)
        manifest = {
            "status": "rejected",
            "run_id": run_id,
            "pipeline": pipeline.name,
            "counts": run_counts(report),
            "error": "InputRejected",
            "cause": report["reason"],
            "outputs": {
                "report": rejected.uri(report_key),
                **({"report_html": rejected.uri(page_key)} if page is not None else {}),
            },
        }
        subject, body, attributes = run_message(manifest)
        first_errors = "\n".join(
            f"  line {error['line']}: {error['field'] or '-'}: {error['reason']}"
            for error in report["errors"][:NOTIFY_ERRORS]
        )
        message = f"{body}\n\nFirst errors:\n{first_errors}\n"
        copy_object(self.s3, source, bucket, rejected.copy_key)
        if page is not None:
            put_report(self.s3, bucket, page_key, page)
        self._notify(subject, message, attributes)
        # Written last: its presence marks the rejection as complete for a replayed event.
        put_bytes(self.s3, bucket, report_key, report_body, JSON)
        self.log(
            "warning",
            "file rejected",
            run_id=run_id,
            reason=report["reason"],
            counts_by_reason=report["counts_by_reason"],
            report_key=report_key,
        )
        return {"status": "rejected", "report_key": report_key, "reason": report["reason"]}

    def _rejection_page(self, report: dict[str, Any], copy_uri: str, report_uri: str, run_id: str) -> str | None:
        """The rejection's report.html, or None if it cannot be rendered (the JSON report and notice still go out)."""
        try:
            return render_rejection_report(report, rejected_copy=copy_uri, report_json=report_uri, run_id=run_id)
        except Exception as error:
            self.log("error", "the rejection's report.html could not be rendered", run_id=run_id, error=repr(error))
            return None

    def _unknown_pipeline(self, bucket: str, key: str, pipeline_name: str) -> dict[str, Any]:
        known = ", ".join(sorted(self.settings.pipelines))
        if pipeline_name:
            reason = (
                f"the first key segment {pipeline_name!r} names no configured pipeline; upload under one of: {known}"
            )
        else:
            reason = f"the object is not under a pipeline prefix; upload under one of: {known}"
        self.log("error", "upload for an unknown pipeline: no run started", bucket=bucket, key=key, reason=reason)
        self._notify(
            "llm-batch-pipeline: upload for an unknown pipeline",
            f"s3://{bucket}/{key} was not processed: {reason}.\n",
            {"status": "unknown_pipeline"},
        )
        return {"status": "unknown_pipeline", "key": key, "reason": reason}

    def _notify(self, subject: str, body: str, attributes: dict[str, str]) -> None:
        if not self.settings.topic_arn or self.sns is None:
            self.log(
                "warning",
                "no notification topic configured; notification logged only",
                subject=subject,
                notification=bounded_bytes(body, NOTIFY_BODY_LIMIT),
            )
            return
        # SNS subjects must be printable ASCII without line breaks, at most 100 characters.
        ascii_subject = "".join(c if " " <= c <= "~" else "?" for c in subject)[:100]
        self.sns.publish(
            TopicArn=self.settings.topic_arn,
            Subject=ascii_subject,
            Message=bounded_bytes(body, NOTIFY_BODY_LIMIT),
            MessageAttributes={
                name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()
            },
        )
