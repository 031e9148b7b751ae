"""Handlers are thin entry points: each parses its event, calls logic in intake/, jobs/ or results/, emits metrics and
returns. Logic a second handler needs lives outside handlers/, so no handler imports another."""

from __future__ import annotations

import ast
from pathlib import Path

HANDLERS = Path(__file__).resolve().parents[2] / "lambdas" / "batch_pipeline" / "handlers"


def handler_imports(source: str) -> list[str]:
    """The batch_pipeline.handlers modules a module's source imports (any import form, typing-only ones included)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("batch_pipeline.handlers"):
                found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.startswith("batch_pipeline.handlers")]
    return found


def test_no_handler_imports_another_handler():
    offenders = {
        path.name: imported for path in sorted(HANDLERS.glob("*.py")) if (imported := handler_imports(path.read_text()))
    }
    assert not offenders, f"move what two handlers share into jobs/ or results/: {offenders}"


def test_the_check_fires_on_a_handler_importing_another():
    """Planted defect: job events importing the token logic from job control, as they once did."""
    planted = "from batch_pipeline.handlers.job_control import resume\nimport batch_pipeline.handlers.collect\n"
    assert handler_imports(planted) == ["batch_pipeline.handlers.job_control", "batch_pipeline.handlers.collect"]
