"""What the Lambda asset holds: the runtime package and its pinned dependencies, not the CLI's code.

The bundler (stacks/bundling.py) is run for real into a temporary folder, with the pip-installed dependency folder
replaced by an empty one (pip needs the network; what decides the package's files is the copy, tested here)."""

from __future__ import annotations

import ast
from pathlib import Path

import aws_cdk.aws_lambda as lambda_

from stacks import bundling
from tests.unit.test_import_graph import import_graph


def bundle(tmp_path: Path, monkeypatch) -> Path:
    dependencies = tmp_path / "dependencies"
    dependencies.mkdir()
    monkeypatch.setattr(bundling, "_dependencies_dir", lambda architecture: dependencies)
    output = tmp_path / "asset"
    assert bundling.LocalPipBundler(lambda_.Architecture.ARM_64).try_bundle(str(output)) is True
    return output


def test_the_asset_holds_the_handlers_and_no_real_time_client(tmp_path, monkeypatch):
    asset = bundle(tmp_path, monkeypatch)
    modules = {path.relative_to(asset).as_posix() for path in asset.rglob("*.py")}
    assert "batch_pipeline/handlers/job_control.py" in modules and "batch_pipeline/contracts.py" in modules
    # The real-time endpoint client is the CLI's (batch_pipeline_local.realtime): no function calls an endpoint.
    assert not [module for module in modules if "realtime" in module], "the real-time client is in the Lambda asset"
    assert not [module for module in modules if module.startswith("batch_pipeline_local/")]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names} | {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }


def test_no_runtime_module_imports_the_cli_package():
    runtime = Path(bundling.LAMBDA_SOURCE) / "batch_pipeline"
    offenders = [
        path.relative_to(runtime).as_posix()
        for path in runtime.rglob("*.py")
        if any(module.split(".")[0] == "batch_pipeline_local" for module in imported_modules(path))
    ]
    assert offenders == [], f"the Lambda asset would import the CLI package, which it does not hold: {offenders}"


def unused_by_handlers(package_root: Path) -> list[str]:
    """Modules of the runtime package under `package_root` that no handler imports, directly or through others
    (importing a module also loads its parent packages)."""
    graph = import_graph({package_root: "batch_pipeline"})
    reached: set[str] = set()
    todo = [module for module in graph if module.startswith("batch_pipeline.handlers.")]
    while todo:
        module = todo.pop()
        if module in reached:
            continue
        reached.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:end]) for end in range(1, len(parts))]
        todo += graph[module]
    return sorted(set(graph) - reached)


def test_every_module_in_the_asset_is_used_by_a_handler(tmp_path, monkeypatch):
    """Code only the CLI uses (`batch-pipeline evaluate`'s join and scoring) lives beside the CLI, not in the asset."""
    asset = bundle(tmp_path, monkeypatch)
    modules = {path.relative_to(asset).as_posix() for path in asset.rglob("*.py")}
    assert "batch_pipeline/results/evaluation/streaming.py" in modules  # the asset's evaluation is bundled
    for cli_only in ("batch_pipeline/results/evaluation/core.py", "batch_pipeline/results/evaluation/join.py"):
        assert cli_only not in modules, f"{cli_only} is only the CLI's and must not be in the Lambda asset"
    assert unused_by_handlers(asset) == []


def test_the_check_finds_a_module_no_handler_uses(tmp_path):
    package = tmp_path / "batch_pipeline"
    (package / "handlers").mkdir(parents=True)
    for name, source in {
        "__init__.py": "",
        "handlers/__init__.py": "",
        "handlers/step.py": "from batch_pipeline import used\n",
        "used.py": "",
        "cli_only.py": "from batch_pipeline import used\n",
    }.items():
        (package / name).write_text(source)
    assert unused_by_handlers(tmp_path) == ["batch_pipeline.cli_only"]
