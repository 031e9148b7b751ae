"""The IAM evaluator: one long-lived Node process running @cloud-copilot/iam-simulate (iam_bridge.js).

Started at the first check and kept for the life of the Python process (JSON lines over stdin/stdout), so a
test session pays Node's start-up once, not per call. iam-simulate is AGPL-3.0 and a development dependency
only: it runs beside local mode and the tests, and nothing of it is bundled into the Lambda asset or the CDK app.
It is installed in the project's node_modules/ (`npm ci`, run by `make setup`), which the caller names: the bridge
script ships in this package, the evaluator it loads stays with the project.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Literal, NotRequired, TypedDict, final

from batch_pipeline_local.authorization.policies import NamedPolicy, PolicyDocument

BRIDGE = Path(__file__).with_name("iam_bridge.js")
IAM_SIMULATE = ("@cloud-copilot", "iam-simulate")


class EvaluatorError(RuntimeError):
    """The evaluator could not run, or rejected the request (an unknown action, a resource of the wrong type)."""


# One question and its answer, in iam-simulate's shapes (its Simulation input, and what iam_bridge.js returns).
ContextValue = str | list[str]


class SimulatedResource(TypedDict):
    resource: str  # the ARN, or "*"
    accountId: str


class SimulatedRequest(TypedDict):
    principal: str
    action: str
    resource: SimulatedResource
    contextVariables: Mapping[str, ContextValue]


class Simulation(TypedDict):
    request: SimulatedRequest
    identityPolicies: list[NamedPolicy]
    serviceControlPolicies: list[NamedPolicy]  # none: the emulated account is in no organization
    resourceControlPolicies: list[NamedPolicy]
    resourcePolicy: NotRequired[PolicyDocument]


class RequestDenial(TypedDict):
    """Why a request was denied: iam-simulate's RequestDenial (analysis/analyzeResults.d.ts)."""

    policyType: Literal["scp", "rcp", "vpce", "identity", "resource", "pb", "s3-bpa"]
    denialType: Literal["Implicit", "Explicit"]
    blocking: NotRequired[bool]
    identifier: NotRequired[str]
    statementId: NotRequired[str]


class Verdict(TypedDict):
    result: Literal["Allowed", "ImplicitlyDenied", "ExplicitlyDenied"]
    denials: list[RequestDenial]  # empty when allowed


@final  # final, so that `"error" in answer` tells the two answers apart
class _Answer(Verdict):
    """iam_bridge.js's answer line: the verdict, the request id, and what the evaluator ignored and why it allowed."""

    id: int
    grants: list[dict[str, object]]
    ignoredContextKeys: list[str]


@final
class _Failure(TypedDict):
    """iam_bridge.js's answer when the evaluator rejected the request (or the line was not JSON: no id)."""

    id: int | None
    error: str
    details: NotRequired[object]


class _Bridge:
    def __init__(self, node_modules: Path) -> None:
        node = shutil.which("node")
        if node is None:
            raise EvaluatorError("local mode checks IAM with Node (iam-simulate); install Node 20 and run `make setup`")
        if not node_modules.joinpath(*IAM_SIMULATE).is_dir():
            raise EvaluatorError(
                f"@cloud-copilot/iam-simulate is not installed in {node_modules}: run `make setup` (npm ci) in the "
                "project folder"
            )
        self._process = subprocess.Popen(
            [node, str(BRIDGE)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            # iam_bridge.js resolves iam-simulate from this folder (its node_modules/).
            env={**os.environ, "BATCH_PIPELINE_NODE_MODULES": str(node_modules.parent)},
        )
        if self._process.stdin is None or self._process.stdout is None:  # asked for above; typed as optional
            raise EvaluatorError("the IAM evaluator (node iam_bridge.js) has no pipes")
        self._stdin, self._stdout = self._process.stdin, self._process.stdout
        self._lock = threading.Lock()
        self._next = 0

    def ask(self, simulation: Simulation) -> _Answer:
        with self._lock:
            self._next += 1
            self._stdin.write(json.dumps({"id": self._next, "simulation": simulation}) + "\n")
            self._stdin.flush()
            line = self._stdout.readline()
        if not line:
            raise EvaluatorError("the IAM evaluator (node iam_bridge.js) exited")
        answer: _Answer | _Failure = json.loads(line)
        if "error" in answer:
            raise EvaluatorError(
                f"{simulation['request']['action']} on {simulation['request']['resource']['resource']}: "
                f"{answer['error']}"
            )
        return answer

    def close(self) -> None:
        if self._process.poll() is None:
            self._stdin.close()
            self._process.wait(timeout=5)


_bridges: dict[Path, _Bridge] = {}  # one evaluator process per node_modules folder, for the life of the process
_bridge_lock = threading.Lock()


def _the_bridge(node_modules: Path) -> _Bridge:
    with _bridge_lock:
        if node_modules not in _bridges:
            _bridges[node_modules] = bridge = _Bridge(node_modules)
            atexit.register(bridge.close)
        return _bridges[node_modules]


@lru_cache(maxsize=65536)
def _evaluate_json(simulation_json: str, node_modules: Path) -> str:
    return json.dumps(_the_bridge(node_modules).ask(json.loads(simulation_json)))


def evaluate(simulation: Simulation, node_modules: Path) -> Verdict:
    """iam-simulate's verdict: {"result": "Allowed"|"ImplicitlyDenied"|"ExplicitlyDenied", "denials": [...], ...},
    from the iam-simulate installed in `node_modules`. Identical questions (the same policies, request and context)
    are answered once."""
    verdict: Verdict = json.loads(_evaluate_json(json.dumps(simulation, sort_keys=True), node_modules.resolve()))
    return verdict
