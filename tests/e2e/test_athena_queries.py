"""The Athena page's example queries (docs/athena.md), run as written with DuckDB over real local runs.

DuckDB is a LOCAL STAND-IN ENGINE, not Athena. It shows that the queries are right about the files the pipeline
writes; it does not show that Athena runs them.

The SQL comes from docs/athena.md (each ```sql block that starts with `-- example: <name>`), so the page cannot
drift from what is tested. Only the tables are translated:
  - each Glue table becomes a DuckDB view with the same name, over `read_json` of the folders its
    `storage.location.template` names (in the synthesized template), with the table's declared columns and types;
  - the partition columns (`pipeline`, `run`) are cut from each file's path, as partition projection takes them from
    the location;
  - JSON keys are lower-cased as the rows are staged, which is what the OpenX SerDe's case-insensitive matching
    does (DuckDB matches keys case-sensitively);
  - the page's example run id is replaced by the local run's.
The answers are checked against the runs' own files (predictions, errors, manifests), computed without SQL.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.e2e.test_athena_schema import (
    AthenaRuns,
    Table,
    glue_tables,
    json_lines,
    parse_type,
    partition_values,
)

ATHENA_PAGE = Path(__file__).resolve().parents[2] / "docs" / "athena.md"
EXAMPLE = re.compile(r"```sql\n-- example: (?P<name>[^\n]+)\n(?P<sql>.*?)```", re.S)
EXAMPLE_RUN_ID = "summarize-0123456789abcdef"


def documented_queries() -> dict[str, str]:
    queries = {m.group("name").strip(): m.group("sql") for m in EXAMPLE.finditer(ATHENA_PAGE.read_text())}
    assert set(queries) == {
        "mean ROUGE-L per pipeline per day",
        "the failed records of one run",
        "token spend per model",
    }, sorted(queries)
    return queries


# ---------------------------------------------------------------- the translation: Glue table -> DuckDB view


def duckdb_type(hive: Any) -> str:
    if isinstance(hive, str):
        return {"string": "VARCHAR", "bigint": "BIGINT", "int": "INTEGER", "double": "DOUBLE", "boolean": "BOOLEAN"}[
            hive
        ]
    if hive[0] == "array":
        return duckdb_type(hive[1]) + "[]"
    if hive[0] == "map":
        return f"MAP({duckdb_type(hive[1])}, {duckdb_type(hive[2])})"
    return "STRUCT(" + ", ".join(f'"{name}" {duckdb_type(child)}' for name, child in hive[1]) + ")"


def _lowered(value: Any) -> Any:
    if isinstance(value, dict):
        return {key.lower(): _lowered(child) for key, child in value.items()}
    if isinstance(value, list):
        return [_lowered(item) for item in value]
    return value


def stage(table: Table, root: Path, staged: Path) -> None:
    """Every object under the table's partition folders, keys lower-cased, at the same path under `staged`."""
    for partition in partition_values(table, root):
        for path in sorted(p for p in (root / table.location(**partition)).rglob("*") if p.is_file()):
            target = staged / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(
                "".join(
                    json.dumps(_lowered(json.loads(line))) + "\n"
                    for line in path.read_text().splitlines()
                    if line.strip()
                )
            )


def create_view(connection: duckdb.DuckDBPyConnection, table: Table, staged: Path) -> None:
    glob = str(staged / (table.key_template.replace("${pipeline}", "*").replace("${run}", "*") + "*"))
    pattern = re.escape(table.key_template)
    for name in table.partitions:
        pattern = pattern.replace(re.escape("${" + name + "}"), "([^/]+)")
    columns = {name: duckdb_type(parse_type(text)) for name, text in table.columns.items()}
    partitions = ", ".join(
        f"regexp_extract(filename, '{pattern}', {index}) AS {name}" for index, name in enumerate(table.partitions, 1)
    )
    source = glob.replace("'", "''")  # a view cannot take a prepared parameter: the path as an SQL literal
    connection.execute(
        f"CREATE VIEW {table.name} AS SELECT {', '.join(columns)}, {partitions} "
        f"FROM read_json('{source}', format = 'newline_delimited', columns = {columns!r}, filename = true)"
    )


@pytest.fixture(scope="module")
def tables(template: dict) -> dict[str, Table]:
    return glue_tables(template)


@pytest.fixture(scope="module")
def stand_in(athena_runs: AthenaRuns, tables: dict[str, Table], tmp_path_factory: pytest.TempPathFactory):
    staged = tmp_path_factory.mktemp("staged")
    connection = duckdb.connect()
    for table in tables.values():
        stage(table, athena_runs.root, staged)
        create_view(connection, table, staged)
    yield connection
    connection.close()


def rows(connection: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    cursor = connection.execute(sql)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


# ---------------------------------------------------------------- the documented queries (DuckDB stand-in)


def test_mean_rouge_l_per_pipeline_per_day_with_the_duckdb_stand_in(stand_in, athena_runs, tables):
    """Expected: the mean over every scored record's own rougeL F-measure in predictions, by the day its run ended."""
    scores: dict[tuple[str, str], list[float]] = defaultdict(list)
    runs: dict[tuple[str, str], int] = defaultdict(int)
    for manifest in athena_runs.manifests.values():
        if (manifest.get("evaluation") or {}).get("metric") != "rouge":
            continue
        day = (manifest["pipeline"], manifest["timings"]["finished_at"][:10])
        runs[day] += 1
        partition = {"pipeline": manifest["pipeline"], "run": manifest["run_id"]}
        folder = athena_runs.root / tables["predictions"].location(**partition)
        scores[day] += [p["metrics"]["rougeL"]["fmeasure"] for p in json_lines(folder) if p.get("metrics")]
    assert len(scores) >= 2  # SageMaker summarize and Bedrock summarize
    got = rows(stand_in, documented_queries()["mean ROUGE-L per pipeline per day"])
    assert [(r["pipeline"], r["day"]) for r in got] == sorted(scores)
    for row in got:
        expected = scores[(row["pipeline"], row["day"])]
        assert row["mean_rouge_l"] == pytest.approx(sum(expected) / len(expected), rel=1e-9)
        assert row["records_scored"] == len(expected) and row["runs"] == runs[(row["pipeline"], row["day"])]


@pytest.mark.parametrize("run_name", ["summarize-partial", "bedrock-partial"])
def test_the_failed_records_of_one_run_with_the_duckdb_stand_in(run_name, stand_in, athena_runs, tables):
    manifest = athena_runs.manifests[run_name]
    sql = documented_queries()["the failed records of one run"]
    assert f"'{EXAMPLE_RUN_ID}'" in sql and "pipeline = 'summarize'" in sql
    sql = sql.replace(EXAMPLE_RUN_ID, manifest["run_id"]).replace("'summarize'", f"'{manifest['pipeline']}'")
    got = rows(stand_in, sql)
    folder = athena_runs.root / tables["errors"].location(pipeline=manifest["pipeline"], run=manifest["run_id"])
    expected = sorted(json_lines(folder), key=lambda e: str(e["id"]))
    assert len(got) == manifest["counts"]["failed"] > 0
    assert [(r["id"], r["code"], r["message"], r["job"]) for r in got] == [
        (str(e["id"]), e["error"]["code"], e["error"]["message"], e["job"]) for e in expected
    ]


def test_token_spend_per_model_with_the_duckdb_stand_in(stand_in, athena_runs):
    expected: dict[str, list[int]] = {}
    for manifest in athena_runs.manifests.values():
        if manifest.get("tokens"):
            totals = expected.setdefault(manifest["model"], [0, 0, 0])
            totals[0] += manifest["tokens"]["input_tokens"]
            totals[1] += manifest["tokens"]["output_tokens"]
            totals[2] += 1
    assert expected and all(count == 2 for *_, count in expected.values())  # the two Bedrock runs
    got = rows(stand_in, documented_queries()["token spend per model"])
    assert {r["model"]: [r["input_tokens"], r["output_tokens"], r["runs"]] for r in got} == expected


def test_a_predictions_query_must_name_its_run(stand_in, athena_runs):
    """In Athena a query without a run fails (injected projection); the stand-in cannot enforce that, so this only
    shows the view finds exactly the named run's rows."""
    manifest = athena_runs.manifests["summarize"]
    (count,) = stand_in.execute(
        "SELECT count(*) FROM predictions WHERE pipeline = ? AND run = ?", [manifest["pipeline"], manifest["run_id"]]
    ).fetchone()
    assert count == manifest["counts"]["valid"]
