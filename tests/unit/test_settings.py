"""The environment module: every environment variable parsed once, with errors that name the variable."""

from __future__ import annotations

import pytest

from batch_pipeline import settings
from batch_pipeline.config.app import ConfigError
from batch_pipeline.config.runtime import dump_runtime_pipelines
from batch_pipeline_local.project import load_pipeline


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    for name in settings.VARIABLES.values():
        monkeypatch.delenv(name, raising=False)
    settings.reset()
    yield
    settings.reset()


def test_defaults_without_any_variable():
    current = settings.current()
    assert current.poll_initial_seconds == 30 and current.poll_max_seconds == 600 and current.poll_jitter == 0.2
    assert current.job_backstop_seconds == 3600 and current.job_name_prefix == "llmbp-"
    assert current.local_stand_in is False and current.output_bucket is None


def test_a_missing_variable_is_named():
    with pytest.raises(ConfigError, match="the OUTPUT_BUCKET environment variable is not set"):
        settings.current().require("output_bucket")
    with pytest.raises(ConfigError, match="the PIPELINES environment variable is not set"):
        settings.current().pipelines  # noqa: B018 - the property parses


@pytest.mark.parametrize(("value", "message"), [("soon", "must be a number"), ("-1", "must not be negative")])
def test_a_malformed_number_names_the_variable_and_the_value(monkeypatch, value, message):
    monkeypatch.setenv("POLL_MAX_SECONDS", value)
    with pytest.raises(ConfigError, match=f"POLL_MAX_SECONDS {message}, got '{value}'"):
        settings.current()


def test_parsed_once_per_environment_and_again_when_it_changes(monkeypatch):
    pipeline = load_pipeline("bedrock-summarize")
    monkeypatch.setenv("PIPELINES", dump_runtime_pipelines({pipeline.name: pipeline}))
    first = settings.current()
    assert settings.current() is first
    assert first.pipeline("bedrock-summarize") is settings.current().pipelines["bedrock-summarize"]
    with pytest.raises(ConfigError, match="unknown pipeline 'nope'; configured: bedrock-summarize"):
        first.pipeline("nope")
    monkeypatch.setenv("LOCAL_STAND_IN", "1")
    changed = settings.current()
    assert changed is not first and changed.local_stand_in is True
    settings.reset()
    assert settings.current() is not changed


def test_invalid_pipelines_say_so(monkeypatch):
    monkeypatch.setenv("PIPELINES", "{not json")
    with pytest.raises(ConfigError, match="invalid PIPELINES environment variable"):
        settings.current().pipelines  # noqa: B018


def test_clients_are_made_once_per_service_with_adaptive_retries(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s3 = settings.client("s3")
    assert settings.client("s3") is s3
    assert s3.meta.config.retries["mode"] == "adaptive"
    settings.reset()
    assert settings.client("s3") is not s3


def test_only_the_settings_module_reads_the_environment_or_makes_clients():
    """One settings module: a handler or helper that reads os.environ or makes a boto3 client itself would bypass the
    typed, parsed-once settings (two did, after parallel branches met: PRICES in finalize, the region in the report)."""
    import ast
    from pathlib import Path

    package = Path(__file__).resolve().parents[2] / "lambdas" / "batch_pipeline"
    offenders = []
    for path in sorted(package.rglob("*.py")):
        if path.name == "settings.py" and path.parent == package:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and (
                (node.attr in ("environ", "getenv") and isinstance(node.value, ast.Name) and node.value.id == "os")
                or (
                    node.attr in ("client", "resource")
                    and isinstance(node.value, ast.Name)
                    and node.value.id == "boto3"
                )
            ):
                offenders.append(f"{path.relative_to(package)}:{node.lineno}")
    assert not offenders, f"read the environment through batch_pipeline.settings instead: {offenders}"
