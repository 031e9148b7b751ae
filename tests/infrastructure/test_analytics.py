"""Athena over every run (stacks/analytics.py): the Glue database and tables, the workgroup, and the query policy,
asserted on the synthesized template; the policy's scope is asked of the IAM policy evaluator local mode uses."""

from __future__ import annotations

import copy
import posixpath

import pytest

from batch_pipeline.config.app import CONTEXT_KEY
from batch_pipeline.storage.layout import RunFolder
from batch_pipeline_local.authorization.enforce import simulate
from batch_pipeline_local.authorization.operations import SECURE, Request
from batch_pipeline_local.template import ACCOUNT, REGION, Resolver
from stacks.analytics import RESULTS_PREFIX

RUN = "calls-0123456789abcdef"


def _folder(pipeline: str, run_id: str) -> RunFolder:
    return RunFolder.of({"run_id": run_id, "pipeline": pipeline, "output_bucket": "output-bucket"})


def only(template, kind: str) -> tuple[str, dict]:
    (item,) = template.find_resources(kind).items()
    return item


def tables(template) -> dict[str, dict]:
    return {
        t["Properties"]["TableInput"]["Name"]: t["Properties"]
        for t in template.find_resources("AWS::Glue::Table").values()
    }


def output_bucket_id(template) -> str:
    return template.to_json()["Outputs"]["OutputBucketName"]["Value"]["Ref"]


def test_one_database_three_tables_and_no_crawler(template):
    _, database = only(template, "AWS::Glue::Database")
    name = database["Properties"]["DatabaseInput"]["Name"]
    assert name == "llmbatchpipeline_runs"
    assert sorted(tables(template)) == ["errors", "manifests", "predictions"]
    assert {t["DatabaseName"] for t in tables(template).values()} == {name}
    template.resource_count_is("AWS::Glue::Crawler", 0)
    template.resource_count_is("AWS::Glue::Partition", 0)  # projection: no partition is ever registered


def test_every_table_reads_json_lines_with_the_openx_serde(template):
    for name, table in tables(template).items():
        storage = table["TableInput"]["StorageDescriptor"]
        serde = {
            "SerializationLibrary": "org.openx.data.jsonserde.JsonSerDe",
            "Parameters": {"case.insensitive": "TRUE", "ignore.malformed.json": "FALSE"},
        }
        assert storage["SerdeInfo"] == serde, name
        assert storage["InputFormat"] == "org.apache.hadoop.mapred.TextInputFormat", name
        assert table["TableInput"]["TableType"] == "EXTERNAL_TABLE", name
        assert all(c["Name"] == c["Name"].lower() and c["Type"] for c in storage["Columns"]), name


def test_partition_projection_pipeline_enum_run_injected_where_a_run_is_named(template, default_context):
    pipelines = sorted(default_context[CONTEXT_KEY]["pipelines"])
    expected_partitions = {"predictions": ["pipeline", "run"], "errors": ["pipeline", "run"], "manifests": ["pipeline"]}
    for name, table in tables(template).items():
        parameters = table["TableInput"]["Parameters"]
        assert [p["Name"] for p in table["TableInput"]["PartitionKeys"]] == expected_partitions[name]
        assert {p["Type"] for p in table["TableInput"]["PartitionKeys"]} == {"string"}
        assert parameters["projection.enabled"] == "true"
        assert parameters["projection.pipeline.type"] == "enum"
        assert parameters["projection.pipeline.values"].split(",") == pipelines
        assert parameters.get("projection.run.type") == ("injected" if "run" in expected_partitions[name] else None)


@pytest.mark.parametrize(
    ("table", "writer_key"),
    [
        ("predictions", lambda p, r: _folder(p, r).predictions_key),
        ("errors", lambda p, r: _folder(p, r).errors_key),
        ("manifests", lambda p, r: _folder(p, r).manifest_row_key),
    ],
)
def test_each_location_template_is_the_writers_folder_and_holds_nothing_else(template, table, writer_key):
    """The rendered location is exactly the folder of the writer's key (layout.py), and no other file of the run
    (shards, raw output, manifest.json, ...) is under it: Athena would read those as rows."""
    parameters = tables(template)[table]["TableInput"]["Parameters"]
    separator, parts = parameters["storage.location.template"]["Fn::Join"]
    assert separator == "" and parts[:2] == ["s3://", {"Ref": output_bucket_id(template)}]
    rendered = "".join(parts[2:]).removeprefix("/").replace("${pipeline}", "summarize").replace("${run}", RUN)
    key = writer_key("summarize", RUN)
    assert posixpath.dirname(key) + "/" == rendered
    folder = _folder("summarize", RUN)
    others = [
        folder.prefix + name
        for name in (
            "manifest.json",
            "summary.md",
            "evaluation.json",
            "intake.json",
            "references.jsonl",
            "shards/part-00000.jsonl",
            "raw/job/x.out",
            "jobs/0.json",
            "ids/part-00000.jsonl",
        )
    ]
    others += [folder.predictions_key, folder.errors_key, folder.manifest_row_key]
    assert [k for k in others if k.startswith(rendered)] == [key]


def workgroup(template) -> dict:
    return only(template, "AWS::Athena::WorkGroup")[1]["Properties"]


def test_the_workgroup_encrypts_results_with_the_stack_key_and_enforces_its_settings(template):
    config = workgroup(template)["WorkGroupConfiguration"]
    assert config["EnforceWorkGroupConfiguration"] is True
    key_id, _ = only(template, "AWS::KMS::Key")
    results = config["ResultConfiguration"]
    assert results["EncryptionConfiguration"] == {
        "EncryptionOption": "SSE_KMS",
        "KmsKey": {"Fn::GetAtt": [key_id, "Arn"]},
    }
    bucket = {"Ref": output_bucket_id(template)}
    assert results["OutputLocation"] == {"Fn::Join": ["", ["s3://", bucket, f"/{RESULTS_PREFIX}"]]}
    assert results["ExpectedBucketOwner"] == {"Ref": "AWS::AccountId"}
    assert config["BytesScannedCutoffPerQuery"] > 0
    assert config["EngineVersion"] == {"SelectedEngineVersion": "Athena engine version 3"}


def test_query_results_expire(template):
    bucket = template.to_json()["Resources"][output_bucket_id(template)]
    rules = {r["Id"]: r for r in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert rules["ExpireQueryResults"]["Prefix"] == RESULTS_PREFIX
    assert rules["ExpireQueryResults"]["ExpirationInDays"] > 0 and rules["ExpireQueryResults"]["Status"] == "Enabled"


@pytest.fixture(scope="module")
def s3_managed():
    from tests.infrastructure.conftest import cdk_context, synth

    context = cdk_context()
    config = copy.deepcopy(context[CONTEXT_KEY])
    config["encryption"] = "s3"
    return synth({**context, CONTEXT_KEY: config})


def test_with_s3_managed_keys_results_use_sse_s3_and_cdk_nag_is_clean(s3_managed):
    app, _, template = s3_managed
    results = workgroup(template)["WorkGroupConfiguration"]["ResultConfiguration"]
    assert results["EncryptionConfiguration"] == {"EncryptionOption": "SSE_S3"}
    policy = only(template, "AWS::IAM::ManagedPolicy")[1]["Properties"]["PolicyDocument"]
    assert not [s for s in policy["Statement"] if any(a.startswith("kms:") for a in _actions(s))]
    app.synth()  # raises on any unacknowledged cdk-nag finding


def _actions(statement: dict) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else actions


# ---------------------------------------------------------------- the query policy, asked of the IAM evaluator


BUCKET = "out-bucket"
WORKGROUP = "LlmBatchPipeline-runs"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555"


@pytest.fixture(scope="module")
def query_policy(template) -> dict:
    """The managed policy's document, and the key policy, with the stack's references resolved to example names."""
    resources = template.to_json()["Resources"]
    workgroup_id = next(k for k, v in resources.items() if v["Type"] == "AWS::Athena::WorkGroup")
    key_id = next(k for k, v in resources.items() if v["Type"] == "AWS::KMS::Key")
    bucket = output_bucket_id(template)
    resolve = Resolver(
        {bucket: BUCKET, workgroup_id: WORKGROUP}, {(bucket, "Arn"): f"arn:aws:s3:::{BUCKET}", (key_id, "Arn"): KEY_ARN}
    )
    return {
        "identity": resolve(only(template, "AWS::IAM::ManagedPolicy")[1]["Properties"]["PolicyDocument"]),
        "key": resolve(resources[key_id]["Properties"]["KeyPolicy"]),
    }


def allowed(policies: dict, action: str, resource: str, context: dict | None = None) -> bool:
    """The evaluator's verdict for a principal of the account holding only the query policy. KMS requests are also
    evaluated against the key policy (KMS authorizes through the key policy first)."""
    request = Request(action, resource, {**SECURE, **(context or {})})
    verdict = simulate(
        f"arn:aws:iam::{ACCOUNT}:role/analyst",
        request,
        [{"name": "query", "policy": policies["identity"]}],
        policies["key"] if action.startswith("kms:") else None,
    )
    return verdict["result"] == "Allowed"


def _object(key: str) -> str:
    return f"arn:aws:s3:::{BUCKET}/{key}"


def _kms(object_key: str | None) -> dict:
    return {
        "kms:ViaService": f"s3.{REGION}.amazonaws.com",
        "kms:EncryptionContext:aws:s3:arn": f"arn:aws:s3:::{BUCKET}" + (f"/{object_key}" if object_key else ""),
    }


def test_the_query_policy_reads_the_tables_files_and_writes_results_only(query_policy):
    folder = _folder("summarize", RUN)
    glue = f"arn:aws:glue:{REGION}:{ACCOUNT}"
    database = "llmbatchpipeline_runs"
    grants = {
        ("athena:StartQueryExecution", f"arn:aws:athena:{REGION}:{ACCOUNT}:workgroup/{WORKGROUP}"): True,
        ("athena:StartQueryExecution", f"arn:aws:athena:{REGION}:{ACCOUNT}:workgroup/primary"): False,
        ("glue:GetTable", f"{glue}:table/{database}/predictions"): True,
        ("glue:GetPartitions", f"{glue}:table/{database}/manifests"): True,
        ("glue:GetTable", f"{glue}:table/other_db/secrets"): False,
        ("glue:CreateTable", f"{glue}:table/{database}/predictions"): False,
        ("s3:GetObject", _object(folder.predictions_key)): True,
        ("s3:GetObject", _object(folder.errors_key)): True,
        ("s3:GetObject", _object(folder.manifest_row_key)): True,
        ("s3:GetObject", _object(f"{folder.prefix}shards/part-00000.jsonl")): False,  # prompts sent to the model
        ("s3:GetObject", _object(f"{folder.prefix}raw/job/part-00000.jsonl.out")): False,
        ("s3:GetObject", _object("rejected/summarize/x/file.jsonl")): False,
        ("s3:PutObject", _object(folder.predictions_key)): False,  # results never overwrite a run
        ("s3:PutObject", _object(f"{RESULTS_PREFIX}abc.csv")): True,
        ("s3:GetObject", _object(f"{RESULTS_PREFIX}abc.csv")): True,
        ("s3:PutObject", _object("elsewhere/abc.csv")): False,
    }
    verdicts = {request: allowed(query_policy, *request) for request in grants}
    assert verdicts == grants


def test_the_query_policy_uses_the_key_only_through_s3_for_this_bucket(query_policy):
    key = _folder("summarize", RUN).predictions_key
    assert allowed(query_policy, "kms:Decrypt", KEY_ARN, _kms(None))  # with S3 Bucket Keys: the bucket ARN
    assert allowed(query_policy, "kms:Decrypt", KEY_ARN, _kms(key))
    assert allowed(query_policy, "kms:GenerateDataKey", KEY_ARN, _kms(f"{RESULTS_PREFIX}abc.csv"))
    not_through_s3 = {"kms:EncryptionContext:aws:s3:arn": f"arn:aws:s3:::{BUCKET}"}
    another_bucket = {**_kms(None), "kms:EncryptionContext:aws:s3:arn": "arn:aws:s3:::other"}
    through_sqs = {**_kms(None), "kms:ViaService": "sqs.us-east-1.amazonaws.com"}
    for context in (not_through_s3, another_bucket, through_sqs):
        assert not allowed(query_policy, "kms:Decrypt", KEY_ARN, context), context
