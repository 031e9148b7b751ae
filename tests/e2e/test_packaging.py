"""The package as a user installs it: the wheel holds every package, and a non-editable install runs local mode.

- `pip wheel --no-deps` of the project holds every Python file under lambdas/ and local/ (a package left out of
  the build's package list would be missing) and the files the packages read at run time (local mode's IAM bridge
  script).
- From a fresh install of that wheel (`pip install --no-deps --target DIR`), `batch-pipeline local run
  examples/summarize.jsonl --pipeline summarize`, run in the project folder, succeeds. The install is honest: the
  command runs with `python -S -P`, so neither the checkout nor the project's editable install (an import hook that
  site-packages' .pth file would install) can be found; the dependencies come from the project venv's site-packages,
  put on the path as a plain folder. After the run, every module of the two packages must have been loaded from DIR.

The wheel is built from a copy of pyproject.toml, lambdas/ and local/ (all the build reads), so parallel test
workers never build inside the checkout; --no-build-isolation uses the venv's setuptools, so no network is needed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("lambdas", "local")
# Files other than Python the packages read at run time.
DATA_FILES = ("batch_pipeline_local/authorization/iam_bridge.js",)

pytestmark = pytest.mark.packaging

# Runs the installed console script, then checks where every module of ours came from.
CHECKED_RUN = """
import json, os, runpy, sys
script, target, report = sys.argv[1], os.environ["INSTALLED"], os.environ["ORIGINS_REPORT"]
sys.argv = [script, *sys.argv[2:]]
code = 0
try:
    runpy.run_path(script, run_name="__main__")
except SystemExit as exit:
    code = exit.code if isinstance(exit.code, int) else 1
ours = {
    name: getattr(module, "__file__", None)
    for name, module in list(sys.modules.items())
    if name.split(".")[0] in ("batch_pipeline", "batch_pipeline_local")
}
with open(report, "w") as out:
    json.dump({"target": target, "modules": ours}, out)
sys.exit(code)
"""


def pip(command: list) -> None:
    done = subprocess.run([*command, "--quiet", "--disable-pip-version-check"], capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(map(str, command))} failed:\n{done.stderr[-4000:]}"


def build_wheel(source: Path, out: Path) -> Path:
    """`pip wheel --no-deps` of a copy of the project's build inputs."""
    copy = out / "project"
    copy.mkdir(parents=True)
    shutil.copy2(source / "pyproject.toml", copy / "pyproject.toml")
    for folder in SOURCES:
        shutil.copytree(
            source / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
        )
    wheels = out / "wheels"
    pip([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", wheels, copy])
    (wheel,) = wheels.glob("*.whl")
    return wheel


def missing_from_wheel(source: Path, wheel: Path) -> list[str]:
    """Every Python file under the source folders, and every data file, that the wheel does not hold."""
    with zipfile.ZipFile(wheel) as archive:
        held = set(archive.namelist())
    expected = {
        path.relative_to(source / folder).as_posix()
        for folder in SOURCES
        for path in (source / folder).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    return sorted((expected | set(DATA_FILES)) - held)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_wheel(REPO, tmp_path_factory.mktemp("wheel"))


def test_the_wheel_holds_every_package_and_its_data(wheel):
    assert missing_from_wheel(REPO, wheel) == []
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
        entry_points = next(n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    assert {top for top in tops if not top.endswith(".dist-info")} == {"batch_pipeline", "batch_pipeline_local"}
    assert "batch-pipeline = batch_pipeline_local.cli.main:main" in scripts


def test_the_check_finds_a_package_left_out_of_the_wheel(tmp_path):
    # The defect this guards against: a package missing from the build's package list (once, authorization/).
    source = tmp_path / "source"
    for folder in SOURCES:
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    pyproject = (REPO / "pyproject.toml").read_text()
    where = 'where = ["lambdas", "local"]\n'
    assert where in pyproject
    planted = pyproject.replace(where, where + 'exclude = ["batch_pipeline_local.authorization"]\n')
    (source / "pyproject.toml").write_text(planted)
    missing = missing_from_wheel(source, build_wheel(source, tmp_path / "out"))
    authorization = sorted(
        f"batch_pipeline_local/authorization/{path.name}"
        for path in (REPO / "local" / "batch_pipeline_local" / "authorization").glob("*.py")
    )
    assert missing == authorization


def test_a_non_editable_install_runs_local_mode_from_the_project_folder(wheel, tmp_path):
    installed = tmp_path / "installed"
    pip([sys.executable, "-m", "pip", "install", "--no-deps", "--target", installed, wheel])
    script = installed / "bin" / "batch-pipeline"
    assert script.is_file()
    report = tmp_path / "origins.json"
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    environment |= {
        # The install, then the venv's dependencies as a plain folder: no .pth file of it is read (python -S).
        "PYTHONPATH": os.pathsep.join([str(installed), sysconfig.get_paths()["purelib"]]),
        "PYTHONNOUSERSITE": "1",
        "POWERTOOLS_LOG_LEVEL": "ERROR",
        "INSTALLED": str(installed),
        "ORIGINS_REPORT": str(report),
    }
    run = subprocess.run(
        [sys.executable, "-S", "-P", "-c", CHECKED_RUN, str(script), "local", "run", "examples/summarize.jsonl"]
        + ["--pipeline", "summarize", "--json"],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    manifest = json.loads(run.stdout)
    assert manifest["status"] == "SUCCEEDED"
    assert manifest["authorization"]["checked"] > 0 and manifest["authorization"]["denied"] == 0
    origins = json.loads(report.read_text())["modules"]
    assert "batch_pipeline_local.emulator.session" in origins and "batch_pipeline.handlers.collect" in origins
    elsewhere = {name: path for name, path in origins.items() if path and not path.startswith(str(installed))}
    assert elsewhere == {}, f"modules not loaded from the install: {elsewhere}"
