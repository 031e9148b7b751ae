"""No import circle in the runtime package (lambdas/batch_pipeline) nor in the CLI and local mode
(local/batch_pipeline_local).

The graph is read from the source (AST), not from what happens to be imported at run time: every `import` and
`from ... import` counts, at module level, inside functions and inside `if TYPE_CHECKING:` alike, so a circle cannot
hide behind a function-level import or a typing-only one. An import names the module it loads: `import a.b` -> a.b;
`from a import b` -> the module a.b when there is one, else a (a name defined in a's __init__); relative imports
are resolved. A module's implicit import of its own parent packages is not an edge, so a package's __init__ may
import its submodules; a submodule importing a *name* from its package's __init__ is an edge like any other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Source folder -> the package under it (what sys.path holds for each tree).
TREES = {REPO / "lambdas": "batch_pipeline", REPO / "local": "batch_pipeline_local"}

Graph = dict[str, dict[str, tuple[Path, int]]]  # module -> {imported module: (file, line)}


def modules_of(trees: dict[Path, str]) -> dict[str, Path]:
    """Dotted module name -> file, for every Python file of each tree's package."""
    modules: dict[str, Path] = {}
    for root, package in trees.items():
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The module `name` is, or the deepest of its parents that is ours (an attribute of a module is that module)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> dict[str, int]:
    """The modules of ours that `module` imports anywhere in its source, each with the line of its first import."""
    found: dict[str, int] = {}
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        for target in targets:
            known = _known(target, modules)
            if known is not None and known != module:
                found.setdefault(known, node.lineno)
    return found


def import_graph(trees: dict[Path, str]) -> Graph:
    modules = modules_of(trees)
    return {
        module: {target: (path, line) for target, line in imports_of(module, path, modules).items()}
        for module, path in modules.items()
    }


def circles(graph: Graph) -> list[list[str]]:
    """One circle through each group of modules that import each other (strongly connected components of more than
    one module, Tarjan's algorithm), as a path that starts and ends at the group's first module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for child in sorted(graph.get(node, {})):
            if child not in index:
                visit(child)
                low[node] = min(low[node], low[child])
            elif child in stack:
                low[node] = min(low[node], index[child])
        if low[node] == index[node]:
            component = stack[stack.index(node) :]
            del stack[stack.index(node) :]
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_path_through(component, graph) for component in components]


def _path_through(component: list[str], graph: Graph) -> list[str]:
    """A shortest circle from the component's first module back to it, inside the component (breadth first)."""
    members, start = set(component), component[0]
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node]):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if child in members and child not in previous and child != start:
                    previous[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"no circle through {component}")  # a strongly connected component always has one


def describe_circle(circle: list[str], graph: Graph) -> str:
    """`a -> b (file:line) -> c (file:line) -> a (file:line)`: each import that closes the circle, where it is."""
    text = circle[0]
    for a, b in zip(circle, circle[1:], strict=False):
        path, line = graph[a][b]
        where = path.relative_to(REPO) if path.is_relative_to(REPO) else path
        text += f" -> {b} ({where}:{line})"
    return text


def test_no_import_circle_in_lambdas_or_local():
    graph = import_graph(TREES)
    found = circles(graph)
    assert not found, "import circles (typing-only and function-level imports count):\n  " + "\n  ".join(
        describe_circle(circle, graph) for circle in found
    )


def test_the_graph_sees_every_kind_of_import_in_the_real_trees():
    graph = import_graph(TREES)
    # A module-level import, a function-level (deferred) one, and a typing-only one, across and within the trees.
    assert "batch_pipeline_local.emulator.deploy" in graph["batch_pipeline_local.emulator.session"]
    assert "batch_pipeline_local.emulator.session" in graph["batch_pipeline_local.cli.demo"]
    assert "batch_pipeline_local.emulator.run" in graph["batch_pipeline_local.cli.local"]
    assert "batch_pipeline.results.evaluation.errors" in graph["batch_pipeline_local.cli.evaluate_join"]
    assert sum(m.startswith("batch_pipeline_local.") for m in graph) > 30
    assert sum(m.startswith("batch_pipeline.") for m in graph) > 30


def test_authorization_is_handed_what_it_needs_and_imports_no_emulator():
    """authorization/ gets the policies, the evaluator's folder and the resources' tags as arguments; it imports
    nothing of the emulator, the engines or the CLI (which is what once closed local mode's import circle)."""
    graph = import_graph(TREES)
    above = ("batch_pipeline_local.emulator", "batch_pipeline_local.engines", "batch_pipeline_local.cli")
    reaches = {
        module: sorted(target for target in targets if target.startswith(above))
        for module, targets in graph.items()
        if module.startswith("batch_pipeline_local.authorization")
    }
    assert {module: targets for module, targets in reaches.items() if targets} == {}


# ---------------------------------------------------------------- the check, on planted circles


def plant(tmp_path: Path, files: dict[str, str]) -> dict[Path, str]:
    for name, source in files.items():
        path = tmp_path / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return {tmp_path / "src": "pkg"}


@pytest.mark.parametrize(
    ("files", "circle"),
    [
        pytest.param(
            {"pkg/__init__.py": "", "pkg/a.py": "from pkg.b import x\n", "pkg/b.py": "from pkg.a import y\n"},
            ["pkg.a", "pkg.b", "pkg.a"],
            id="module level",
        ),
        pytest.param(
            {
                "pkg/__init__.py": "",
                "pkg/a.py": "from pkg.b import x\n",
                "pkg/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import App\n",
            },
            ["pkg.a", "pkg.b", "pkg.a"],
            id="typing only",
        ),
        pytest.param(
            {
                "pkg/__init__.py": "",
                "pkg/a.py": "import pkg.b\n",
                "pkg/b.py": "def f():\n    from pkg.c import g\n    return g\n",
                "pkg/c.py": "from pkg import a\n",
            },
            ["pkg.a", "pkg.b", "pkg.c", "pkg.a"],
            id="function level, three modules",
        ),
        pytest.param(
            {
                "pkg/__init__.py": "",
                "pkg/sub/__init__.py": "",
                "pkg/sub/a.py": "from . import b\n",
                "pkg/sub/b.py": "from .a import f\n",
            },
            ["pkg.sub.a", "pkg.sub.b", "pkg.sub.a"],
            id="relative",
        ),
        pytest.param(
            {"pkg/__init__.py": "from pkg.a import f\nNAME = 1\n", "pkg/a.py": "from pkg import NAME\n"},
            ["pkg", "pkg.a", "pkg"],
            id="a name from the package's own __init__",
        ),
    ],
)
def test_a_planted_circle_is_found_and_named(tmp_path, files, circle):
    graph = import_graph(plant(tmp_path, files))
    assert circles(graph) == [circle]
    message = describe_circle(circle, graph)
    for importer, imported in zip(circle, circle[1:], strict=False):
        path, line = graph[importer][imported]
        assert f"-> {imported} ({path}:{line})" in message


def test_no_circle_is_reported_where_there_is_none(tmp_path):
    files = {
        # A package's __init__ re-exporting its submodules, which import siblings through the package: no circle.
        "pkg/__init__.py": "from pkg.a import f\nfrom pkg.b import g\n",
        "pkg/a.py": "from pkg import b\n\ndef f():\n    return b.g()\n",
        "pkg/b.py": "import json\n\ndef g():\n    return json.dumps(1)\n",
    }
    assert circles(import_graph(plant(tmp_path, files))) == []
