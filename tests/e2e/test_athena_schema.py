"""The Athena tables read what the pipeline writes: real local runs, parsed with the schema in the synthesized
template, the way Athena reads them.

Athena reads every object under a partition's location (Athena guide, "Specify a table location in Amazon S3"),
so each table is checked over *everything* under each partition location rendered from its
`storage.location.template`, not only over the file the writer meant for it. Each line must be one JSON object
(the OpenX JSON SerDe reads one per line). Keys are compared lower-cased, as the SerDe does with its default
`case.insensitive` = TRUE (Athena guide, "OpenX JSON SerDe"; two keys equal but for case fail the query with
"Duplicate key"). Types follow the SerDe's object inspectors (rcongiu/Hive-JSON-Serde): a string column takes a
JSON string, number or boolean as its text; bigint/int take integers; double any number; boolean true/false.

Both directions are checked, at every level of nesting: every key the writers write is declared with a compatible
type, and every declared column and struct field is written by at least one of the runs. The runs cover
summarize, classify, Bedrock, partial runs with errors, and a run failed by a workflow step (failure manifest).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from batch_pipeline_local.emulator.run import run_file
from batch_pipeline_local.emulator.session import local_aws
from batch_pipeline_local.template import REGION, resources_of
from tests.e2e.test_bedrock_runs import transcript
from tests.e2e.test_local_runs import EXAMPLES, lines_of, write

INT32 = (-(2**31), 2**31 - 1)


# ---------------------------------------------------------------- the tables, from the synthesized template


@dataclass
class Table:
    name: str
    columns: dict[str, str]  # name -> Hive type, in order
    partitions: list[str]
    key_template: str  # storage.location.template below s3://<output bucket>/, with ${pipeline} and ${run}
    parameters: dict[str, Any]
    serde: str

    def location(self, **partition: str) -> str:
        key = self.key_template
        for name in self.partitions:
            key = key.replace("${" + name + "}", partition[name])
        return key


def output_bucket_logical_id(template: dict) -> str:
    return template["Outputs"]["OutputBucketName"]["Value"]["Ref"]


def glue_tables(template: dict) -> dict[str, Table]:
    bucket = output_bucket_logical_id(template)
    tables = {}
    for resource in resources_of(template, "AWS::Glue::Table").values():
        table_input = resource["Properties"]["TableInput"]
        parameters = table_input["Parameters"]
        parts = parameters["storage.location.template"]["Fn::Join"][1]
        assert parts[:2] == ["s3://", {"Ref": bucket}], "the table must read the stack's output bucket"
        storage = table_input["StorageDescriptor"]
        tables[table_input["Name"]] = Table(
            name=table_input["Name"],
            columns={c["Name"]: c["Type"] for c in storage["Columns"]},
            partitions=[p["Name"] for p in table_input["PartitionKeys"]],
            key_template="".join(parts[2:]).removeprefix("/"),
            parameters=parameters,
            serde=storage["SerdeInfo"]["SerializationLibrary"],
        )
    return tables


# ---------------------------------------------------------------- Hive types


def parse_type(text: str) -> Any:
    """'struct<a:int,b:array<string>>' -> ("struct", [("a", "int"), ("b", ("array", "string"))])."""
    parsed, rest = _parse(text.replace(" ", ""))
    assert not rest, f"unparsed type text {rest!r} in {text!r}"
    return parsed


def _parse(text: str) -> tuple[Any, str]:
    match = re.match(r"[a-z0-9_]+", text)
    assert match, f"not a Hive type: {text!r}"
    name, rest = match.group(), text[match.end() :]
    if name not in ("struct", "array", "map"):
        return name, rest
    assert rest.startswith("<"), f"{name} without <...> in {text!r}"
    rest = rest[1:]
    if name == "array":
        element, rest = _parse(rest)
        assert rest.startswith(">")
        return ("array", element), rest[1:]
    if name == "map":
        key, rest = _parse(rest)
        assert rest.startswith(",")
        value, rest = _parse(rest[1:])
        assert rest.startswith(">")
        return ("map", key, value), rest[1:]
    fields = []
    while True:
        field_name, _, rest = rest.partition(":")
        field_type, rest = _parse(rest)
        fields.append((field_name, field_type))
        if rest.startswith(">"):
            return ("struct", fields), rest[1:]
        assert rest.startswith(","), f"bad struct in {text!r}"
        rest = rest[1:]


def declared_paths(columns: dict[str, str]) -> set[str]:
    paths: set[str] = set()

    def walk(path: str, hive: Any) -> None:
        paths.add(path)
        if isinstance(hive, tuple) and hive[0] == "struct":
            for name, child in hive[1]:
                walk(f"{path}.{name}", child)
        elif isinstance(hive, tuple) and hive[0] == "array":
            walk(f"{path}[]", hive[1])
        elif isinstance(hive, tuple) and hive[0] == "map":
            walk(f"{path}{{}}", hive[2])

    for name, text in columns.items():
        walk(name, parse_type(text))
    return paths


@dataclass
class Check:
    """Problems found, and the paths (column, column.field, column[], column{}) that carried a value."""

    problems: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def value(self, value: Any, hive: Any, path: str, where: str) -> None:
        self.seen.add(path)
        if value is None:
            return
        if isinstance(hive, str):
            if not _primitive_fits(value, hive):
                self.problems.append(f"{where}: {path} is {json.dumps(value)[:80]}, not a {hive}")
        elif hive[0] == "struct":
            self._struct(value, dict(hive[1]), path, where)
        elif not isinstance(value, list if hive[0] == "array" else dict):
            self.problems.append(
                f"{where}: {path} is not {'an array' if hive[0] == 'array' else 'an object'} (declared {hive[0]})"
            )
        elif hive[0] == "array":
            for item in value:
                self.value(item, hive[1], f"{path}[]", where)
        else:
            for item in value.values():
                self.value(item, hive[2], f"{path}{{}}", where)

    def _struct(self, value: Any, fields: dict[str, Any], path: str, where: str) -> None:
        if not isinstance(value, dict):
            self.problems.append(f"{where}: {path} is not an object (declared struct)")
            return
        for key, child in lower_keys(value, path, where, self.problems).items():
            if key not in fields:
                self.problems.append(f"{where}: {path}.{key} is written but not declared")
            else:
                self.value(child, fields[key], f"{path}.{key}", where)


def _primitive_fits(value: Any, hive: str) -> bool:
    if hive == "string":
        return isinstance(value, (str, int, float, bool))  # the SerDe's string inspector: toString()
    if hive in ("bigint", "int"):
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and (hive == "bigint" or INT32[0] <= value <= INT32[1])
        )
    if hive == "double":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hive == "boolean":
        return isinstance(value, bool)
    raise AssertionError(f"the check knows no Hive type {hive!r}: teach it before declaring one")


def lower_keys(obj: dict[str, Any], path: str, where: str, problems: list[str]) -> dict[str, Any]:
    lowered: dict[str, Any] = {}
    for key, value in obj.items():
        if key.lower() in lowered:
            problems.append(f"{where}: {path} has keys equal but for case ({key!r}): the SerDe fails the query")
        lowered[key.lower()] = value
    return lowered


# ---------------------------------------------------------------- reading a table as Athena would


def partition_values(table: Table, root: Path) -> list[dict[str, str]]:
    """Every partition of the table: pipeline from its enum; run (injected) from every run folder there is."""
    pipelines = table.parameters["projection.pipeline.values"].split(",")
    if "run" not in table.partitions:
        return [{"pipeline": p} for p in pipelines]
    return [
        {"pipeline": p, "run": folder.name}
        for p in pipelines
        for folder in sorted((root / "runs" / p).glob("*"))
        if folder.is_dir()
    ]


def table_problems(table: Table, root: Path, columns: dict[str, str] | None = None) -> tuple[list[str], int]:
    """Read every object under every partition location of `table` with its declared columns (or `columns`):
    (problems, rows read)."""
    columns = columns if columns is not None else table.columns
    types = {name: parse_type(text) for name, text in columns.items()}
    check = Check()
    rows = 0
    for partition in partition_values(table, root):
        for path in sorted(p for p in (root / table.location(**partition)).rglob("*") if p.is_file()):
            where = f"{table.name} {path.relative_to(root)}"
            for number, line in enumerate(path.read_bytes().split(b"\n"), 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    check.problems.append(f"{where}:{number}: not one JSON object on a line")
                    continue
                if not isinstance(row, dict):
                    check.problems.append(f"{where}:{number}: a JSON {type(row).__name__}, not an object")
                    continue
                rows += 1
                for key, value in lower_keys(row, "", where, check.problems).items():
                    if key in table.partitions:  # the partition's value comes from the path, not the row
                        if value != partition[key]:
                            check.problems.append(
                                f"{where}:{number}: {key} {value!r} but the folder says {partition[key]!r}"
                            )
                    elif key not in types:
                        check.problems.append(f"{where}:{number}: column {key} is written but not declared")
                    else:
                        check.value(value, types[key], key, f"{where}:{number}")
    never = sorted(declared_paths(columns) - check.seen)
    check.problems += [f"{table.name}: {path} is declared but no run wrote it" for path in never]
    return check.problems, rows


# ---------------------------------------------------------------- the runs


def copy_runs(local: Any, root: Path) -> None:
    """Every object under runs/ in emulated S3 to root/<its key>, the same layout as the bucket (what
    `batch-pipeline local run --out` gives for one run)."""
    s3 = boto3.client("s3", region_name=REGION)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=local.output_bucket, Prefix="runs/"):
        for item in page.get("Contents", []):
            target = root / item["Key"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(s3.get_object(Bucket=local.output_bucket, Key=item["Key"])["Body"].read())


@dataclass
class AthenaRuns:
    root: Path
    manifests: dict[str, dict[str, Any]]  # what each run's manifest.json says, by a name for the run


def local_athena_runs(template: dict, tmp_path_factory: pytest.TempPathFactory) -> AthenaRuns:
    """Local runs on every path that writes something different, copied out of emulated S3 into one folder."""
    inputs = tmp_path_factory.mktemp("inputs")
    root = tmp_path_factory.mktemp("bucket")
    dropping = lines_of(EXAMPLES / "summarize.jsonl")[:6]
    dropping[4]["text_inputs"] += " [[drop-output]]"
    runs = {
        "summarize": (EXAMPLES / "summarize.jsonl", "summarize"),
        "summarize-partial": (write(inputs, "dropping.jsonl", dropping), "summarize"),
        "classify": (EXAMPLES / "classify.jsonl", "classify"),
        "bedrock": (EXAMPLES / "bedrock-summarize.jsonl", "bedrock-summarize"),
        "bedrock-partial": (
            write(
                inputs, "calls.jsonl", [transcript(i, "[[error-record]]" if i in (3, 7) else "") for i in range(120)]
            ),
            "bedrock-summarize",
        ),
    }
    manifests = {}
    with local_aws(template=template) as local:
        for name, (path, pipeline) in runs.items():
            manifests[name] = run_file(local, path, pipeline).manifest
        copy_runs(local, root)
    # A workflow step fails: the failure manifest (failed_state, error, cause, recover, recollect fields on jobs).
    with local_aws(template=template, faults=["Collect and score outputs:RuntimeError:1"]) as local:
        manifests["failed"] = run_file(
            local, write(inputs, "failing.jsonl", lines_of(EXAMPLES / "summarize.jsonl")), "summarize"
        ).manifest
        copy_runs(local, root)
    assert manifests["failed"]["status"] == "FAILED" and manifests["summarize-partial"]["status"] == "PARTIAL"
    assert manifests["bedrock-partial"]["status"] == "PARTIAL"
    return AthenaRuns(root, manifests)


@pytest.fixture(scope="module")
def tables(template: dict) -> dict[str, Table]:
    return glue_tables(template)


# ---------------------------------------------------------------- the tests


def test_the_template_declares_the_three_tables_over_runs_with_the_json_serde(tables):
    assert sorted(tables) == ["errors", "manifests", "predictions"]
    assert {t.serde for t in tables.values()} == {"org.openx.data.jsonserde.JsonSerDe"}
    assert all(t.key_template.startswith("runs/${pipeline}/") for t in tables.values())


@pytest.mark.parametrize("name", ["predictions", "errors", "manifests"])
def test_every_object_under_every_partition_reads_with_the_declared_columns(name, tables, athena_runs):
    problems, rows = table_problems(tables[name], athena_runs.root)
    assert not problems, "\n".join(problems)
    assert rows > 0


def test_the_tables_hold_every_record_and_every_run(tables, athena_runs):
    """Partition locations find the writers' files: as many prediction rows as valid records, as many error rows as
    failed ones, one manifest row per run, and the manifest row is the run's manifest.json."""
    root = athena_runs.root
    for manifest in athena_runs.manifests.values():
        partition = {"pipeline": manifest["pipeline"], "run": manifest["run_id"]}
        predictions = json_lines(root / tables["predictions"].location(**partition))
        errors = json_lines(root / tables["errors"].location(**partition))
        if manifest["status"] != "FAILED":
            assert len(predictions) == manifest["counts"]["valid"]
            assert len(errors) == manifest["counts"]["failed"]
        rows = json_lines(root / tables["manifests"].location(**partition))
        (row,) = [r for r in rows if r["run_id"] == manifest["run_id"]]
        assert row == manifest


def json_lines(folder: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
        for line in path.read_bytes().splitlines()
        if line.strip()
    ]


# ---------------------------------------------------------------- the check fails when the schema drifts


def _drifted(table: Table, change: str) -> dict[str, str]:
    columns = copy.deepcopy(table.columns)
    if change == "drop a column":
        del columns["error" if "error" in columns else next(iter(columns))]
    elif change == "declare a column nobody writes":
        columns["latency_ms"] = "bigint"
    elif change == "narrow a type":
        columns[next(name for name, text in columns.items() if text.startswith("struct<"))] = "string"
    elif change == "drop a struct field":
        name, text = next((n, t) for n, t in columns.items() if t.startswith("struct<"))
        columns[name] = re.sub(r"^struct<[a-z0-9_]+:[a-z0-9]+,", "struct<", text)
        assert columns[name] != text
    return columns


@pytest.mark.parametrize(
    "change", ["drop a column", "declare a column nobody writes", "narrow a type", "drop a struct field"]
)
@pytest.mark.parametrize("name", ["predictions", "errors", "manifests"])
def test_a_planted_schema_drift_is_found(name, change, tables, athena_runs):
    problems, _ = table_problems(tables[name], athena_runs.root, _drifted(tables[name], change))
    assert problems


def test_a_table_over_the_run_folder_would_read_the_runs_other_files_as_rows(tables, athena_runs, tmp_path):
    """The pitfall the layout avoids: with the location at the run folder, Athena would read the manifest, shards
    and raw output as predictions. The check finds it."""
    over_run_folder = copy.deepcopy(tables["predictions"])
    over_run_folder.key_template = "runs/${pipeline}/${run}/"
    problems, _ = table_problems(over_run_folder, athena_runs.root)
    assert any("not one JSON object on a line" in p or "is written but not declared" in p for p in problems)


def test_a_stray_file_in_a_partition_folder_is_found(tables, athena_runs, tmp_path):
    root = tmp_path / "bucket"
    shutil.copytree(athena_runs.root, root)
    manifest = athena_runs.manifests["summarize"]
    folder = root / tables["predictions"].location(pipeline="summarize", run=manifest["run_id"])
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))  # pretty-printed: not one object a line
    problems, _ = table_problems(tables["predictions"], root)
    assert any("manifest.json" in p and "not one JSON object on a line" in p for p in problems)
