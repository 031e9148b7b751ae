"""What the Lambda asset holds: the runtime package and its pinned dependencies, not the CLI's clients.

The bundler (stacks/bundling.py) is run for real into a temporary folder, with the pip-installed dependency folder
replaced by an empty one (pip needs the network; what decides the package's files is the copy, tested here)."""

from __future__ import annotations

import ast
from pathlib import Path

import aws_cdk.aws_lambda as lambda_

from stacks import bundling


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
