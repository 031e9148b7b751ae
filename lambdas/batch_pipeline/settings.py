"""The Lambdas' environment: every variable they read, parsed in one place into typed settings, and their boto3
clients.

The stack sets each function's environment (stacks/); local mode gives every handler the union of them
(batch_pipeline_local.emulator.deploy.shared_environment). `current()` parses the variables into a typed Settings, once:
the result is cached for as long as the variables keep their values, which in a Lambda container is its whole life
(tests and local mode change them between runs, and get a fresh parse). `reset()` drops the cache and the clients.

A variable a step needs but its function was not given fails with a ConfigError that names it (`Settings.require`),
not with a KeyError; a malformed number names the variable and the value.

Clients are made on first use (`client`), one per service for the container's life, with botocore's adaptive
retries: they retry throttling and transient errors with backoff and slow down when a service throttles them, which
matters for job control's checks and submissions against shared account quotas. Made lazily, so tests and local
mode can set up emulated AWS before any client exists.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from batch_pipeline.config.app import ConfigError
from batch_pipeline.config.runtime import RuntimePipeline, RuntimePricing, parse_runtime_pipelines, parse_runtime_prices

# The variable job control reads its stack's name from (stacks/bedrock.py sets it): the value of the
# batch_pipeline.storage.layout.OWNER_TAG_KEY tag on every backend job it starts.
OWNER_TAG_ENV = "OWNER_STACK"
# Settings field -> environment variable.
VARIABLES = {
    "pipelines_json": "PIPELINES",
    "prices_json": "PRICES",
    "region": "AWS_REGION",
    "default_region": "AWS_DEFAULT_REGION",
    "output_bucket": "OUTPUT_BUCKET",
    "state_machine_arn": "STATE_MACHINE_ARN",
    "topic_arn": "TOPIC_ARN",
    "intake_workdir": "INTAKE_WORKDIR",
    "bedrock_role_arn": "BEDROCK_ROLE_ARN",
    "output_kms_key_arn": "OUTPUT_KMS_KEY_ARN",
    "owner_stack": OWNER_TAG_ENV,
    "job_name_prefix": "JOB_NAME_PREFIX",
    "poll_initial_seconds": "POLL_INITIAL_SECONDS",
    "poll_max_seconds": "POLL_MAX_SECONDS",
    "poll_jitter": "POLL_JITTER",
    "job_queue_timeout_hours": "JOB_QUEUE_TIMEOUT_HOURS",
    "job_backstop_seconds": "JOB_BACKSTOP_SECONDS",
    "collect_bytes_per_pass": "COLLECT_BYTES_PER_PASS",
    "local_stand_in": "LOCAL_STAND_IN",
    # Powertools reads these itself too; observability names its Logger, Tracer and Metrics with them.
    "service_name": "POWERTOOLS_SERVICE_NAME",
    "metrics_namespace": "POWERTOOLS_METRICS_NAMESPACE",
}
NUMBERS = (
    "poll_initial_seconds",
    "poll_max_seconds",
    "poll_jitter",
    "job_queue_timeout_hours",
    "job_backstop_seconds",
    "collect_bytes_per_pass",
)
# botocore's adaptive mode: retries with backoff, and client-side rate limiting when the service throttles.
CLIENT_RETRIES = {"mode": "adaptive", "max_attempts": 8}


class Settings(BaseModel):
    """What the environment says. Optional fields are None when their variable is unset or empty."""

    model_config = ConfigDict(frozen=True)

    pipelines_json: str | None = None
    # The catalog's prices by model, set on the manifest function only (batch_pipeline.results.pricing).
    prices_json: str | None = None
    # Lambda sets AWS_REGION; local mode and the CLI may set only AWS_DEFAULT_REGION.
    region: str | None = None
    default_region: str | None = None
    output_bucket: str | None = None
    state_machine_arn: str | None = None
    topic_arn: str | None = None
    intake_workdir: str | None = None
    bedrock_role_arn: str | None = None
    output_kms_key_arn: str | None = None
    # The stack's name, tagged on every backend job it starts (batch_pipeline.storage.layout.OWNER_TAG_KEY).
    owner_stack: str | None = None
    job_name_prefix: str = "llmbp-"
    poll_initial_seconds: float = Field(default=30, ge=0)
    poll_max_seconds: float = Field(default=600, ge=0)
    poll_jitter: float = Field(default=0.2, ge=0)
    job_queue_timeout_hours: float = Field(default=24, ge=0)
    # How long a waiting iteration sleeps on its task token before it checks the job itself.
    job_backstop_seconds: float = Field(default=3600, ge=0)
    # Staged bytes collect joins in one pass (batch_pipeline.results.collect).
    collect_bytes_per_pass: int = Field(default=32 * 1024 * 1024, ge=0)
    # Local mode runs the handlers in-process against emulated AWS: outputs say "local stand-in".
    local_stand_in: bool = False
    service_name: str = "llm-batch-pipeline"
    metrics_namespace: str = "LlmBatchPipeline"

    @field_validator("local_stand_in", mode="before")
    @classmethod
    def _flag(cls, value: Any) -> bool:
        return value is True or value == "1"

    def require(self, field: str) -> str:
        """The value of a variable this step cannot do without; a ConfigError naming it when it is not set."""
        value = getattr(self, field)
        if not value:
            raise ConfigError(f"the {VARIABLES[field]} environment variable is not set")
        return str(value)

    @property
    def pipelines(self) -> dict[str, RuntimePipeline]:
        return _parse_pipelines(self.require("pipelines_json"))

    def pipeline(self, name: str) -> RuntimePipeline:
        pipelines = self.pipelines
        if name not in pipelines:
            raise ConfigError(f"unknown pipeline {name!r}; configured: {', '.join(sorted(pipelines))}")
        return pipelines[name]

    @property
    def prices(self) -> dict[str, RuntimePricing]:
        """The catalog's prices by model key (PRICES); empty where the variable is not set."""
        return _parse_prices(self.prices_json or "{}")


@cache
def _parse_pipelines(text: str) -> dict[str, RuntimePipeline]:
    return parse_runtime_pipelines(text)


@cache
def _parse_prices(text: str) -> dict[str, RuntimePricing]:
    return parse_runtime_prices(text)  # once per container (per value, for local mode's in-process runs)


def _parse(values: tuple[str | None, ...]) -> Settings:
    given = {field: value for field, value in zip(VARIABLES, values, strict=True) if value not in (None, "")}
    for field in NUMBERS:
        if field in given:
            try:
                number = float(str(given[field]))
            except ValueError:
                raise ConfigError(
                    f"environment variable {VARIABLES[field]} must be a number, got {given[field]!r}"
                ) from None
            if number < 0:
                raise ConfigError(f"environment variable {VARIABLES[field]} must not be negative, got {given[field]!r}")
    try:
        return Settings.model_validate(given)
    except ValidationError as error:
        raise ConfigError(f"invalid environment: {error}") from None


_cache: dict[tuple[str | None, ...], Settings] = {}


def current() -> Settings:
    """The settings for the environment as it is now (parsed once per distinct environment)."""
    values = tuple(os.environ.get(name) for name in VARIABLES.values())
    found = _cache.get(values)
    if found is None:
        _cache.clear()
        found = _cache[values] = _parse(values)
    return found


@cache
def client(service: str) -> Any:
    """One boto3 client per service for the life of a Lambda container, with adaptive retries."""
    import boto3
    from botocore.config import Config

    return boto3.client(service, config=Config(retries=dict(CLIENT_RETRIES)))


def reset() -> None:
    """Forget the parsed environment and the clients (tests, and local mode between sessions)."""
    _cache.clear()
    _parse_pipelines.cache_clear()
    _parse_prices.cache_clear()
    client.cache_clear()
