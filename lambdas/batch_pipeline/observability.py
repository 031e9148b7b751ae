"""The one place Logger, Tracer and Metrics are made, so every handler logs, traces and counts alike.

Every handler uses the same decorator order (outermost first):
    @logger.inject_lambda_context(correlation_id_path=...)   # run id as correlation id
    @tracer.capture_lambda_handler
    @metrics.log_metrics
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

from batch_pipeline import settings

SERVICE = settings.current().service_name
NAMESPACE = settings.current().metrics_namespace

logger = Logger(service=SERVICE)
# Outside Lambda (tests, CLI, local mode) there is no X-Ray daemon: Powertools then disables tracing itself.
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


def local_stand_in() -> bool:
    """True only when local mode runs a handler in-process against emulated AWS: outputs say "local stand-in".

    Read at call time, not at import: a process may import this module before local mode sets the variable."""
    return settings.current().local_stand_in
