"""One owner for the run folder: no code outside storage/layout.py spells a run key.

Every name the output bucket's keys are made of is in `layout.NAMES` (runs/, shards/, raw/, jobs/, manifest.json,
predictions/predictions.jsonl, job-tokens/, rejected/, .report.json, ...). A string literal elsewhere in lambdas/,
local/ or bench/ that holds one of them, with no whitespace around it (so a key or a piece of one, such as the
constant part of f"{prefix}raw/{name}/", and not a sentence in a docstring, a log line or a help text), fails this
test with its file and line. A line that really means something else says so with a `# not-a-run-key: <why>`
comment (the cloud assembly's own manifest.json, for one).
"""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest

from batch_pipeline.storage import layout

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("lambdas", "local", "bench")
# The one module allowed to spell them, relative to the scanned root.
LAYOUT_MODULE = Path(layout.__file__).resolve().relative_to(ROOT)
MARKER = re.compile(r"#\s*not-a-run-key:\s*(\S.*)?$")


def _needle(name: str) -> str:
    """A folder or file name at the start of a literal or after a "/"; a suffix anywhere. Never followed by more
    of a name, so Bedrock's own manifest.json.out is not our manifest.json."""
    start = "" if name[0] in ".-" else r"(?:^|/)"
    end = "" if name.endswith("/") else r"(?![\w.])"
    return start + re.escape(name) + end


NEEDLES = re.compile("|".join(_needle(name) for name in sorted(layout.NAMES, key=len, reverse=True)))


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of every bare string statement (docstrings, and strings used as comments)."""
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    }


def run_key_literals(source: str) -> list[tuple[int, str]]:
    """(line, literal) for each string literal, or constant part of an f-string, that spells a run key."""
    tree = ast.parse(source)
    skipped = _docstrings(tree)
    lines = source.splitlines()
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or id(node) in skipped:
            continue
        text = node.value
        if not text or any(c.isspace() for c in text) or not NEEDLES.search(text):
            continue
        marker = MARKER.search(lines[node.lineno - 1])
        if marker is not None and marker.group(1):
            continue
        found.append((node.lineno, text))
    return sorted(found)


def scan(root: Path, folders: tuple[str, ...] = SCANNED) -> list[str]:
    """`path:line: "literal"` for every run-key literal under `root`'s folders, the layout module excepted."""
    problems = []
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            relative = path.relative_to(root)
            if relative == LAYOUT_MODULE or ".venv" in relative.parts:
                continue
            for line, text in run_key_literals(path.read_text()):
                problems.append(f"{relative}:{line}: {text!r}")
    return problems


def test_no_run_key_is_spelled_outside_the_layout_module():
    problems = scan(ROOT)
    assert not problems, "run keys come from batch_pipeline.storage.layout (RunFolder):\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "planted",
    [
        'key = f"{prefix}raw/{name}/"',
        'key = prefix + "manifest.json"',
        'KEY = "job-tokens/"',
        'key = f"{folder}predictions/predictions.jsonl"',
        'page = copy_key + ".report.html"',
        'glob = "runs/*/*/jobs"',
        'path = directory / "references.jsonl"',
        'parts = f"{folder}on-demand/parts/part-{i:05d}.jsonl"',
    ],
)
def test_the_scanner_finds_a_planted_key(planted):
    assert [line for line, _ in run_key_literals(f"x = 1\n{planted}\n")] == [2]


@pytest.mark.parametrize(
    "innocent",
    [
        '"""Writes manifest.json and summary.md into the run folder."""',
        'help = "print manifest.json (or the rejection report) as JSON"',
        'MANIFEST_OUT = "manifest.json.out"',  # Bedrock's own file, not ours
        'route = "on-demand"',
        'key = event["jobs"]',
        'path = directory / "manifest.json"  # not-a-run-key: the cloud assembly\'s manifest',
    ],
)
def test_the_scanner_leaves_prose_other_names_and_marked_lines_alone(innocent):
    assert run_key_literals(innocent + "\n") == []


def test_a_marker_without_a_reason_does_not_excuse_a_literal():
    assert run_key_literals('key = "manifest.json"  # not-a-run-key:\n') == [(1, "manifest.json")]


def test_the_test_fails_naming_the_file_and_line_of_a_key_planted_in_a_copy_of_the_tree(tmp_path):
    for folder in SCANNED:
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__", "*.js"))
    assert scan(tmp_path) == []
    handler = tmp_path / "lambdas" / "batch_pipeline" / "handlers" / "collect.py"
    lines = handler.read_text().splitlines()
    handler.write_text("\n".join([*lines, 'DETAILS = f"{prefix}collect.json"', ""]))
    assert scan(tmp_path) == [f"lambdas/batch_pipeline/handlers/collect.py:{len(lines) + 1}: 'collect.json'"]
