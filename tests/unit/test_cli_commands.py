"""Every command module of the CLI is registered: a module of cli/ that defines `register` is listed in
main.COMMANDS (listed, not discovered, because the commands' logic lives beside them in the same folder)."""

from __future__ import annotations

import ast
from pathlib import Path

from batch_pipeline_local import cli
from batch_pipeline_local.cli.main import COMMANDS, build_parser

CLI = Path(cli.__file__).parent


def defines_register(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return any(isinstance(node, ast.FunctionDef) and node.name == "register" for node in tree.body)


def test_every_module_with_a_register_function_is_a_listed_command():
    modules = {path.stem for path in CLI.glob("*.py") if defines_register(path)}
    listed = {command.__name__.rsplit(".", 1)[-1] for command in COMMANDS}
    assert modules == listed


def test_the_parser_has_one_command_per_listed_module_in_order():
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    assert list(subparsers.choices) == sorted(subparsers.choices)
    assert len(subparsers.choices) == len(COMMANDS)


def test_the_check_sees_a_register_function(tmp_path):
    planted = tmp_path / "extra.py"
    planted.write_text("def register(subparsers):\n    pass\n")
    assert defines_register(planted)
    assert not defines_register(CLI / "output.py")
