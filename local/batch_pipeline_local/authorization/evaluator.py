"""The IAM evaluator: one long-lived Node process running @cloud-copilot/iam-simulate (iam_bridge.js).

Started at the first check and kept for the life of the Python process (JSON lines over stdin/stdout), so a
test session pays Node's start-up once, not per call. iam-simulate is AGPL-3.0 and a development dependency
only: it runs beside local mode and the tests, and nothing of it is bundled into the Lambda asset or the CDK app.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import threading
from functools import lru_cache
from pathlib import Path

BRIDGE = Path(__file__).with_name("iam_bridge.js")
REPO_ROOT = Path(__file__).resolve().parents[3]


class EvaluatorError(RuntimeError):
    """The evaluator could not run, or rejected the request (an unknown action, a resource of the wrong type)."""


class _Bridge:
    def __init__(self) -> None:
        node = shutil.which("node")
        if node is None:
            raise EvaluatorError("local mode checks IAM with Node (iam-simulate); install Node 20 and run `make setup`")
        if not (REPO_ROOT / "node_modules" / "@cloud-copilot" / "iam-simulate").is_dir():
            raise EvaluatorError("@cloud-copilot/iam-simulate is not installed: run `make setup` (npm ci)")
        self._process = subprocess.Popen(
            [node, str(BRIDGE)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            env={**os.environ, "BATCH_PIPELINE_NODE_MODULES": str(REPO_ROOT)},
        )
        self._lock = threading.Lock()
        self._next = 0

    def ask(self, simulation: dict) -> dict:
        with self._lock:
            self._next += 1
            self._process.stdin.write(json.dumps({"id": self._next, "simulation": simulation}) + "\n")
            self._process.stdin.flush()
            line = self._process.stdout.readline()
        if not line:
            raise EvaluatorError("the IAM evaluator (node iam_bridge.js) exited")
        answer = json.loads(line)
        if "error" in answer:
            raise EvaluatorError(
                f"{simulation['request']['action']} on {simulation['request']['resource']['resource']}: "
                f"{answer['error']}"
            )
        return answer

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.stdin.close()
            self._process.wait(timeout=5)


_bridge: _Bridge | None = None
_bridge_lock = threading.Lock()


def _the_bridge() -> _Bridge:
    global _bridge  # one evaluator process per Python process
    with _bridge_lock:
        if _bridge is None:
            _bridge = _Bridge()
            atexit.register(_bridge.close)
        return _bridge


@lru_cache(maxsize=65536)
def _evaluate_json(simulation_json: str) -> str:
    return json.dumps(_the_bridge().ask(json.loads(simulation_json)))


def evaluate(simulation: dict) -> dict:
    """iam-simulate's verdict: {"result": "Allowed"|"ImplicitlyDenied"|"ExplicitlyDenied", "denials": [...], ...}.
    Identical questions (the same policies, request and context) are answered once."""
    return json.loads(_evaluate_json(json.dumps(simulation, sort_keys=True)))
