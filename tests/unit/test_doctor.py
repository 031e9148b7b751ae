"""`batch-pipeline doctor` against botocore Stubber answers in the real API shapes (no network)."""

from __future__ import annotations

import argparse

import boto3
import pytest
from botocore.stub import Stubber

from batch_pipeline_local.cli import doctor as command
from batch_pipeline_local.cli.doctor import FAIL, PASS, WARN, run_checks
from batch_pipeline_local.project import load_config

MODEL = "amazon.nova-lite-v1:0"
NAME = "Nova Lite"


def clients():
    bedrock = boto3.client("bedrock", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    quotas = boto3.client("service-quotas", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    return bedrock, quotas


def quota(name: str, value: float) -> dict:
    return {
        "ServiceCode": "bedrock",
        "QuotaName": f"{name} for {NAME}",
        "QuotaCode": "L-00000000",
        "Value": value,
        "Adjustable": True,
        "GlobalQuota": False,
    }


DEFAULT_QUOTAS = [
    quota("Minimum number of records per batch inference job", 100),
    quota("Records per batch inference job", 50000),
    quota("Records per input file per batch inference job", 50000),
    quota("Batch inference input file size (in GB)", 1),
    quota("Batch inference job size (in GB)", 5),
    quota("Sum of in-progress and submitted batch inference jobs using a base model", 20),
]


def stub(bedrock, quotas, *, lifecycle="ACTIVE", authorization="AUTHORIZED", account_quotas=DEFAULT_QUOTAS):
    b, q = Stubber(bedrock), Stubber(quotas)
    q.add_response("list_service_quotas", {"Quotas": account_quotas}, {"ServiceCode": "bedrock"})
    b.add_response(
        "get_foundation_model",
        {
            "modelDetails": {
                "modelArn": f"arn:aws:bedrock:us-east-1::foundation-model/{MODEL}",
                "modelId": MODEL,
                "modelName": NAME,
                "providerName": "Amazon",
                "modelLifecycle": {"status": lifecycle},
            }
        },
        {"modelIdentifier": MODEL},
    )
    b.add_response(
        "get_foundation_model_availability",
        {
            "modelId": MODEL,
            "agreementAvailability": {"status": "AVAILABLE"},
            "authorizationStatus": authorization,
            "entitlementAvailability": "AVAILABLE",
            "regionAvailability": "AVAILABLE",
        },
        {"modelId": MODEL},
    )
    b.activate()
    q.activate()
    return b, q


def statuses(checks):
    return {(c.check, c.status) for c in checks}


def test_an_active_authorized_model_within_its_quotas_passes():
    bedrock, quotas = clients()
    b, q = stub(bedrock, quotas)
    checks = run_checks(load_config(), bedrock, quotas)
    assert {c.model for c in checks} == {"nova-lite"}
    assert all(c.status == PASS for c in checks), [c for c in checks if c.status != PASS]
    assert {c.check for c in checks} >= {
        "lifecycle",
        "access",
        "min_records_per_job",
        "max_records_per_job",
        "max_records_per_input_file",
        "max_input_file_size_mb",
        "max_job_size_mb",
        "concurrent jobs",
    }
    b.assert_no_pending_responses()
    q.assert_no_pending_responses()


@pytest.mark.parametrize("lifecycle, expected", [("LEGACY", WARN), ("EOL", FAIL)])
def test_lifecycle_legacy_warns_and_end_of_life_fails(lifecycle, expected):
    bedrock, quotas = clients()
    stub(bedrock, quotas, lifecycle=lifecycle)
    assert ("lifecycle", expected) in statuses(run_checks(load_config(), bedrock, quotas))


def test_model_access_not_granted_fails():
    bedrock, quotas = clients()
    stub(bedrock, quotas, authorization="NOT_AUTHORIZED")
    checks = run_checks(load_config(), bedrock, quotas)
    (access,) = [c for c in checks if c.check == "access"]
    assert access.status == FAIL and "NOT_AUTHORIZED" in access.detail


def test_a_configured_maximum_above_the_accounts_quota_fails_and_a_lower_minimum_fails():
    bedrock, quotas = clients()
    lowered = [
        quota("Records per batch inference job", 10000)
        if "Records per batch" in q["QuotaName"]
        else quota("Minimum number of records per batch inference job", 500)
        if "Minimum" in q["QuotaName"]
        else q
        for q in DEFAULT_QUOTAS
    ]
    stub(bedrock, quotas, account_quotas=lowered)
    bad = {(c.check, c.status) for c in run_checks(load_config(), bedrock, quotas) if c.status == FAIL}
    assert bad == {("max_records_per_job", FAIL), ("min_records_per_job", FAIL)}


def test_the_command_prints_a_table_and_exits_1_on_a_failure(capsys):
    bedrock, quotas = clients()
    stub(bedrock, quotas, lifecycle="EOL")
    args = argparse.Namespace(config=None, region="us-east-1", json=False)
    assert command.run(args, clients=(bedrock, quotas)) == command.EXIT_FAILED
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["model", "check", "status", "detail"] and "EOL" in out


def test_without_credentials_it_is_skipped_with_exit_3(monkeypatch, tmp_path, capsys):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    args = argparse.Namespace(config=None, region="us-east-1", json=False)
    assert command.run(args) == command.EXIT_SKIPPED
    assert "skipped, no AWS credentials" in capsys.readouterr().err
