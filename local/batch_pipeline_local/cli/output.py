"""Where CLI output goes: the command's result on stdout, everything else (logs, metrics, progress) on stderr.

With `--json`, stdout must hold exactly one JSON document so `| jq` works. Handlers run in-process in local mode and
log through Powertools (a StreamHandler bound to stdout at import) and flush EMF metrics with print(); so the CLI
points the log handlers at stderr and, for the length of a --json command, sends sys.stdout to stderr too. The
result is written by `emit_json` to the stdout saved before that redirection.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any, TextIO

_result_stream: TextIO | None = None  # the real stdout while a --json command runs


def logs_to_stderr() -> None:
    """Every log handler that writes to stdout writes to stderr instead (Powertools' included)."""
    # Deferred until a command runs: Powertools' logger, tracer and metrics load with it (`--help` does without).
    from batch_pipeline.observability import logger

    handlers = [logger.registered_handler, *logging.getLogger().handlers]
    for handler in handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stdout, sys.__stdout__):
            handler.setStream(sys.stderr)


@contextlib.contextmanager
def results_only_on_stdout(enabled: bool) -> Iterator[None]:
    """While enabled, anything printed goes to stderr; `emit_json` still reaches the real stdout."""
    global _result_stream
    if not enabled:
        yield
        return
    _result_stream = sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        _result_stream = None


def emit_json(document: Any, **dumps_options: Any) -> None:
    """Print `document` as the command's one JSON result."""
    stream = _result_stream if _result_stream is not None else sys.stdout
    stream.write(json.dumps(document, **dumps_options) + "\n")
    stream.flush()
