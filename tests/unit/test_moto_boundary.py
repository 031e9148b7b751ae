"""moto's private internals are reached from one module only, local/batch_pipeline_local/emulator/moto_hooks.py.

Public moto API (`from moto import mock_aws`, `moto.server.ThreadedMotoServer`) may be used anywhere. Anything else
under `moto.` (its backends, models, core, the Step Functions interpreter) is private: a moto upgrade may move it, and
then exactly one module, with a named function per hook, must change. This test reads every Python file of the
repository's own code (AST, not text: comments and docstrings may talk about moto freely) and fails on an import of a
moto-private module or name, or a string naming one passed to mock.patch / monkeypatch.setattr / import_module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HOOKS = REPO / "local" / "batch_pipeline_local" / "emulator" / "moto_hooks.py"
SOURCES = ("app.py", "stacks", "lambdas", "local", "tests", "bench")
# module -> the names it exports publicly (None: the module itself, e.g. `import moto`).
PUBLIC = {"moto": {"mock_aws", None}, "moto.server": {"ThreadedMotoServer"}}
PATCHERS = {"patch", "setattr", "import_module", "__import__"}


def python_files() -> list[Path]:
    files: list[Path] = []
    for name in SOURCES:
        path = REPO / name
        files += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return [f for f in files if f != HOOKS and ".venv" not in f.parts and "node_modules" not in f.parts]


def _is_moto(module: str) -> bool:
    return module == "moto" or module.startswith("moto.")


def private_uses(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) for every reach into moto's privates in one module."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _is_moto(alias.name) and None not in PUBLIC.get(alias.name, set()):
                    found.append((node.lineno, f"import {alias.name}"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and _is_moto(node.module):
            private = [a.name for a in node.names if a.name not in PUBLIC.get(node.module, set())]
            if private:
                found.append((node.lineno, f"from {node.module} import {', '.join(private)}"))
        elif isinstance(node, ast.Call):
            function = node.func
            name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
            texts = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if name in PATCHERS:
                found += [(node.lineno, f"{name}({text!r})") for text in texts if text.startswith("moto.")]
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "moto"
            and node.attr not in PUBLIC["moto"]
        ):
            found.append((node.lineno, f"moto.{node.attr}"))
    return found


def test_no_module_but_moto_hooks_reaches_into_moto_privates():
    offenders = []
    for path in python_files():
        for line, what in private_uses(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            offenders.append(f"{path.relative_to(REPO)}:{line}: {what}")
    assert not offenders, (
        "moto-private names are used outside local/batch_pipeline_local/emulator/moto_hooks.py. Put each behind a "
        "named function there, with a comment saying which moto gap it fills and the AWS behaviour it reproduces:\n  "
        + "\n  ".join(offenders)
    )


def test_moto_hooks_itself_is_where_the_private_names_are():
    assert private_uses(ast.parse(HOOKS.read_text(encoding="utf-8")))  # else this guard checks nothing


@pytest.mark.parametrize(
    "source",
    [
        "from moto.sagemaker.models import SageMakerModelBackend",
        "import moto.core.models",
        "from moto.core import DEFAULT_ACCOUNT_ID",
        "import moto\nmoto.backends.get_backend('s3')",
        "from unittest import mock\nmock.patch('moto.stepfunctions.parser.asl.x', 1)",
        "monkeypatch.setattr('moto.core.models.botocore_stubber.process_request', f)",
    ],
)
def test_the_guard_catches_each_kind_of_reach(source):
    assert private_uses(ast.parse(source))


@pytest.mark.parametrize(
    "source",
    [
        "from moto import mock_aws",
        "from moto.server import ThreadedMotoServer",
        "import moto",
        "import logging\nlogging.getLogger('moto.stepfunctions.parser')",
        '"""moto.core is private"""',
    ],
)
def test_the_guard_lets_public_api_and_prose_pass(source):
    assert private_uses(ast.parse(source)) == []
