"""Local mode fixtures: the app is synthesized once per session and deployed into a fresh moto per test."""

from __future__ import annotations

import pytest

from batch_pipeline_local.runner import local_aws, synthesize_template


@pytest.fixture(scope="session")
def template():
    return synthesize_template()


@pytest.fixture
def local(template):
    with local_aws(template=template) as app:
        yield app
