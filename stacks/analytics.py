"""Athena over every run: a Glue database with three tables over runs/ (predictions, errors, manifests), a
workgroup whose query results are encrypted and cannot be redirected, and a managed policy for querying.

Tables, not a crawler: the columns are what collect and the manifest writer write (tests/e2e/test_athena_schema.py
parses real local runs with them), and partition projection computes partition locations from the query, so no
partition is ever registered (Athena guide, "Partition projection with Amazon Athena").

Partitions and why:
  - `pipeline` is `enum` over the configured pipelines: the set is known at synth and small.
  - predictions and errors are per run, in the run folder (`runs/<pipeline>/<run>/predictions/`), so they need
    `run` as a partition too. Run ids are derived from each upload and cannot be enumerated, so `run` is
    `injected` (Athena guide, "Use dynamic ID partitioning"): a query must name the run(s) in WHERE, with
    `run = '...'` or `run IN (...)`; one without fails with CONSTRAINT_VIOLATION instead of scanning every run.
    That is the question these tables answer (this run's failures, two runs side by side); 1M-record files are
    never scanned by accident.
  - manifests answer questions across runs (spend per model, ROUGE-L per day), so they are partitioned by
    `pipeline` only and read from one folder per pipeline (`runs/<pipeline>/manifests/<run>.json`, one line per
    run, written by the manifest step beside manifest.json).
Athena reads every object under a table's (or partition's) location, so each location holds only its table's
files (batch_pipeline.storage.layout); a location over the run folder would read shards and raw output as rows.

JSON SerDe: org.openx.data.jsonserde.JsonSerDe (Athena guide, "OpenX JSON SerDe"), one JSON object per line,
keys matched case-insensitively (its default), so `rougeL` reads as the column `rougel`. A string column takes
any JSON scalar as its text (the SerDe's string inspector calls toString()), so integer and string record ids
share the `id` column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from batch_pipeline.storage.layout import ERRORS_FOLDER, MANIFESTS_FOLDER, PREDICTIONS_FOLDER, RUNS_PREFIX

from .nag import acknowledge, logical_id
from .naming import stack_scoped_name

JSON_SERDE = "org.openx.data.jsonserde.JsonSerDe"
TEXT_INPUT_FORMAT = "org.apache.hadoop.mapred.TextInputFormat"
TEXT_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
RESULTS_PREFIX = "athena-results/"
# Query results can be produced again from the tables; kept long enough to download and share.
RESULTS_EXPIRY_DAYS = 30
# A guard against a runaway scan (Athena bills per byte scanned): a query that reads more is cancelled.
BYTES_SCANNED_CUTOFF = 100 * 1024**3
WORKGROUP_NAME_MAX = 128

_ROUGE_SCORE = "struct<precision:double,recall:double,fmeasure:double>"
_METRICS = (
    f"struct<rouge1:{_ROUGE_SCORE},rouge2:{_ROUGE_SCORE},rougel:{_ROUGE_SCORE},rougelsum:{_ROUGE_SCORE},"
    "label:string,predicted:string,correct:boolean>"
)
_ERROR = "struct<code:string,message:string>"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    comment: str


@dataclass(frozen=True)
class TableSpec:
    name: str
    folder: str  # the location template below runs/, with ${pipeline} and ${run}
    partitions: tuple[str, ...]
    columns: tuple[Column, ...]
    description: str


PREDICTIONS = TableSpec(
    "predictions",
    "${pipeline}/${run}/" + PREDICTIONS_FOLDER,
    ("pipeline", "run"),
    (
        Column("id", "string", "the record id (an integer id reads as its text)"),
        Column("prediction", "string", "the model's answer; null when the record has none"),
        Column("labels", "array<string>", "zero-shot: candidate labels, best first"),
        Column("scores", "array<double>", "zero-shot: the score of each label"),
        Column("input_tokens", "bigint", "Bedrock: tokens in the request"),
        Column("output_tokens", "bigint", "Bedrock: tokens in the answer"),
        Column("error", _ERROR, "why the record has no prediction"),
        Column("reference", "string", "the reference summary, when the input carried one"),
        Column(
            "label",
            "string",
            "the true label, when the input carried one (a multi-label list reads as its "
            "JSON text: the SerDe renders a non-string value with toString())",
        ),
        Column("metrics", _METRICS, "per-record scores: ROUGE precision/recall/F, or label/predicted/correct"),
    ),
    "One line per valid input record of a run; query with run = '<run id>' (injected partition)",
)

ERRORS = TableSpec(
    "errors",
    "${pipeline}/${run}/" + ERRORS_FOLDER,
    ("pipeline", "run"),
    (
        Column("id", "string", "the record id"),
        Column("prediction", "string", "always null"),
        Column("error", _ERROR, "code (no-output, parse-error, job-failed, Bedrock's code, ...) and message"),
        Column("job", "string", "the backend job the record was sent in"),
        Column("source", "string", "the shard (input object) the record was in"),
    ),
    "Records of a run the model did not answer, with the reason; query with run = '<run id>'",
)

MANIFESTS = TableSpec(
    "manifests",
    "${pipeline}/" + MANIFESTS_FOLDER,
    ("pipeline",),
    (
        Column("manifest_version", "int", "manifest format version"),
        Column("run_id", "string", "the run id (the Step Functions execution name)"),
        Column("backend", "string", "sagemaker or bedrock"),
        Column("model", "string", "model id or SageMaker model"),
        Column(
            "input", "struct<bucket:string,key:string,version_id:string,etag:string,size:bigint>", "the uploaded object"
        ),
        Column("ids_assigned", "boolean", "intake assigned record ids"),
        Column("local_stand_in", "boolean", "true for a local-mode run (stand-in engines, not a model)"),
        Column(
            "counts",
            "struct<total:bigint,valid:bigint,rejected:bigint,processed:bigint,succeeded:bigint,failed:bigint>",
            "record counts",
        ),
        Column(
            "jobs",
            "array<struct<name:string,arn:string,status:string,state:string,failure_reason:string,"
            "output_uri:string,records:bigint,route:string,invocation_type:string,model_invocations:bigint,"
            "index:int,input_uri:string,done:boolean,started_at:string,ended_at:string>>",
            "the run's backend jobs (started_at/ended_at: SageMaker's TransformStartTime/TransformEndTime)",
        ),
        Column("model_invocations", "struct<total:bigint,by_job:map<string,bigint>>", "billed model requests"),
        Column("status", "string", "SUCCEEDED, PARTIAL or FAILED"),
        Column("tokens", "struct<input_tokens:bigint,output_tokens:bigint>", "token counts (Bedrock)"),
        Column(
            "cost",
            "struct<usd:double,input_usd:double,output_usd:double,instance_usd:double,route:string,"
            "model:string,prices_as_of:string,source:string,basis:string>",
            "the run's cost at the catalog's prices (batch_pipeline.results.pricing)",
        ),
        Column(
            "backend_counts",
            "struct<totalrecordcount:bigint,processedrecordcount:bigint,"
            "successrecordcount:bigint,errorrecordcount:bigint,inputtokencount:bigint,"
            "outputtokencount:bigint>",
            "Bedrock's manifest.json.out counts",
        ),
        Column(
            "evaluation",
            "struct<metric:string,records:bigint,scored:bigint,missing:bigint,errors:bigint,"
            "accuracy:double,macro_f1:double,rouge_f:struct<rouge1:double,rouge2:double,"
            "rougel:double,rougelsum:double>>",
            "the evaluation headline",
        ),
        Column(
            "timings", "struct<started_at:string,finished_at:string,duration_seconds:double>", "ISO 8601 times in UTC"
        ),
        Column("outputs", "map<string,string>", "where the run's files are"),
        Column("failed_state", "string", "a failed run: the workflow step that failed"),
        Column("error", "string", "a failed run: the error name"),
        Column("cause", "string", "a failed run: what happened"),
        Column(
            "recover",
            "struct<outputs_kept:array<string>,command:string,how:string>",
            "a failed run: how to finish it from the outputs already paid for",
        ),
    ),
    "One row per run (its manifest), across runs; partitioned by pipeline only",
)

TABLES = (PREDICTIONS, ERRORS, MANIFESTS)


def database_name(stack_name: str) -> str:
    """Glue and Athena want lower case letters, digits and underscores."""
    return re.sub(r"[^a-z0-9]+", "_", stack_name.lower()).strip("_") + "_runs"


class Analytics(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        pipelines: list[str],
        output_bucket: s3.Bucket,
        key: kms.IKey | None,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self._bucket = output_bucket
        self.database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=stack.account,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=database_name(stack.stack_name),
                description="llm-batch-pipeline runs: predictions, errors and manifests (partition projection)",
            ),
        )
        self.tables = {spec.name: self._table(spec, pipelines) for spec in TABLES}

        # The output bucket is versioned: the expired result's noncurrent version goes a day later.
        output_bucket.add_lifecycle_rule(
            id="ExpireQueryResults",
            prefix=RESULTS_PREFIX,
            expiration=cdk.Duration.days(RESULTS_EXPIRY_DAYS),
            noncurrent_version_expiration=cdk.Duration.days(1),
        )
        encryption = (
            athena.CfnWorkGroup.EncryptionConfigurationProperty(encryption_option="SSE_KMS", kms_key=key.key_arn)
            if key
            else athena.CfnWorkGroup.EncryptionConfigurationProperty(encryption_option="SSE_S3")
        )
        self.workgroup = athena.CfnWorkGroup(
            self,
            "WorkGroup",
            name=stack_scoped_name(stack.stack_name, "runs", WORKGROUP_NAME_MAX),
            description="Queries over llm-batch-pipeline runs; results encrypted in the output bucket",
            state="ENABLED",
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                # Users cannot point results elsewhere or switch encryption off in a query's own settings.
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=BYTES_SCANNED_CUTOFF,
                engine_version=athena.CfnWorkGroup.EngineVersionProperty(
                    selected_engine_version="Athena engine version 3"
                ),
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=f"s3://{output_bucket.bucket_name}/{RESULTS_PREFIX}",
                    encryption_configuration=encryption,
                    expected_bucket_owner=stack.account,
                ),
            ),
        )
        self.query_policy = self._query_policy(key)

        cdk.CfnOutput(
            stack,
            "AnalyticsDatabase",
            value=database_name(stack.stack_name),
            description="Glue database of the predictions, errors and manifests tables",
        )
        cdk.CfnOutput(
            stack,
            "AnalyticsWorkGroup",
            value=self.workgroup.ref,
            description="Athena workgroup to query runs in (results are encrypted, location enforced)",
        )
        cdk.CfnOutput(
            stack,
            "AnalyticsQueryPolicyArn",
            value=self.query_policy.managed_policy_arn,
            description="Attach to a role or user that queries runs with Athena",
        )

    def _table(self, spec: TableSpec, pipelines: list[str]) -> glue.CfnTable:
        stack = cdk.Stack.of(self)
        runs = f"s3://{self._bucket.bucket_name}/{RUNS_PREFIX}"
        projection = {
            "projection.enabled": "true",
            "projection.pipeline.type": "enum",
            "projection.pipeline.values": ",".join(sorted(pipelines)),
            "storage.location.template": runs + spec.folder,
        }
        if "run" in spec.partitions:
            projection["projection.run.type"] = "injected"
        table = glue.CfnTable(
            self,
            spec.name.title(),
            catalog_id=stack.account,
            database_name=database_name(stack.stack_name),
            table_input=glue.CfnTable.TableInputProperty(
                name=spec.name,
                description=spec.description,
                table_type="EXTERNAL_TABLE",
                parameters={"EXTERNAL": "TRUE", "classification": "json", **projection},
                partition_keys=[
                    glue.CfnTable.ColumnProperty(name=name, type="string", comment=f"the {name}")
                    for name in spec.partitions
                ],
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    location=runs,
                    input_format=TEXT_INPUT_FORMAT,
                    output_format=TEXT_OUTPUT_FORMAT,
                    columns=[
                        glue.CfnTable.ColumnProperty(name=c.name, type=c.type, comment=c.comment) for c in spec.columns
                    ],
                    serde_info=glue.CfnTable.SerdeInfoProperty(
                        serialization_library=JSON_SERDE,
                        # A line that is not JSON fails the query instead of reading as a row of nulls.
                        parameters={"case.insensitive": "TRUE", "ignore.malformed.json": "FALSE"},
                    ),
                ),
            ),
        )
        table.node.add_dependency(self.database)
        return table

    def _query_policy(self, key: kms.IKey | None) -> iam.ManagedPolicy:
        """What a person or role needs to query the tables in the workgroup, and nothing wider: the three tables,
        this workgroup, read of the tables' folders only (not shards, raw outputs or inputs), results read/write."""
        stack = cdk.Stack.of(self)
        bucket = self._bucket
        database = database_name(stack.stack_name)
        table_objects = [
            f"{RUNS_PREFIX}*/*/{PREDICTIONS_FOLDER}*",
            f"{RUNS_PREFIX}*/*/{ERRORS_FOLDER}*",
            f"{RUNS_PREFIX}*/{MANIFESTS_FOLDER}*",
        ]
        workgroup_arn = stack.format_arn(service="athena", resource="workgroup", resource_name=self.workgroup.ref)
        statements = [
            iam.PolicyStatement(
                sid="RunQueriesInTheWorkGroup",
                actions=[
                    "athena:StartQueryExecution",
                    "athena:GetQueryExecution",
                    "athena:GetQueryResults",
                    "athena:StopQueryExecution",
                    "athena:GetWorkGroup",
                    "athena:BatchGetQueryExecution",
                    "athena:ListQueryExecutions",
                ],
                resources=[workgroup_arn],
            ),
            iam.PolicyStatement(
                sid="ReadTheTables",
                actions=[
                    "glue:GetDatabase",
                    "glue:GetTable",
                    "glue:GetTables",
                    "glue:GetPartition",
                    "glue:GetPartitions",
                ],
                resources=[
                    stack.format_arn(service="glue", resource="catalog"),
                    stack.format_arn(service="glue", resource="database", resource_name=database),
                    *[
                        stack.format_arn(service="glue", resource="table", resource_name=f"{database}/{spec.name}")
                        for spec in TABLES
                    ],
                ],
            ),
            iam.PolicyStatement(
                sid="ReadTableFiles",
                actions=["s3:GetObject"],
                resources=[bucket.arn_for_objects(pattern) for pattern in table_objects],
            ),
            iam.PolicyStatement(
                sid="ListTableFilesAndResults",
                actions=["s3:ListBucket", "s3:GetBucketLocation"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [*table_objects, f"{RUNS_PREFIX}*", f"{RESULTS_PREFIX}*"]}},
            ),
            iam.PolicyStatement(
                sid="ReadAndWriteQueryResults",
                actions=["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
                resources=[bucket.arn_for_objects(f"{RESULTS_PREFIX}*")],
            ),
        ]
        if key is not None:
            # Only through S3, and only for objects of this bucket. With S3 Bucket Keys the encryption context is
            # the bucket ARN (S3 User Guide, "Reducing the cost of SSE-KMS with Amazon S3 Bucket Keys"); without,
            # the object ARN: both are allowed, nothing else.
            statements.append(
                iam.PolicyStatement(
                    sid="DecryptTablesAndEncryptResults",
                    actions=["kms:Decrypt", "kms:GenerateDataKey"],
                    resources=[key.key_arn],
                    conditions={
                        "StringEquals": {"kms:ViaService": f"s3.{stack.region}.amazonaws.com"},
                        "StringLike": {
                            "kms:EncryptionContext:aws:s3:arn": [
                                bucket.bucket_arn,
                                bucket.arn_for_objects(f"{RUNS_PREFIX}*"),
                                bucket.arn_for_objects(f"{RESULTS_PREFIX}*"),
                            ]
                        },
                    },
                )
            )
        policy = iam.ManagedPolicy(
            self,
            "QueryPolicy",
            description="Query llm-batch-pipeline runs with Athena in the stack's workgroup",
            statements=statements,
        )
        bucket_id = logical_id(bucket)
        reasons = {
            f"Resource::<{bucket_id}.Arn>/{pattern}": "Run ids are created per upload; reads stay inside the "
            "tables' own folders (predictions/, errors/, manifests/), never shards, raw outputs or inputs."
            for pattern in table_objects
        }
        reasons[f"Resource::<{bucket_id}.Arn>/{RESULTS_PREFIX}*"] = (
            "Athena names each query's result objects at run time; access stays inside the results prefix."
        )
        for evidence, reason in reasons.items():
            acknowledge(policy, "AwsSolutions-IAM5", reason, applies_to=evidence)
        return policy
