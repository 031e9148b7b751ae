"""The Lambda asset (runtime package + pinned wheels, as stacks/bundling.py builds it) fits Lambda's unzipped limit
with the Powertools layer beside it, and holds the report's chart library.

Lambda quotas (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html): "Deployment package
(.zip file archive) size: 250 MB (unzipped)", counting "the deployment package and layers when they're extracted"
(CodeSizeUnzipped, https://docs.aws.amazon.com/lambda/latest/api/API_AccountLimit.html). moto does not enforce it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stacks import bundling
from stacks.functions import ARCHITECTURE

UNZIPPED_LIMIT = 250 * 1024 * 1024
# The managed Powertools layer is not in our asset but counts toward the same limit. Allowance: aws-lambda-powertools
# 3.37.0[all] installed for Linux arm64 / Python 3.14 with its dependencies, botocore included, measured at 78 MB
# (the layer itself ships less: it relies on the runtime's boto3).
POWERTOOLS_LAYER_ALLOWANCE = 80 * 1024 * 1024


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file() and "__pycache__" not in path.parts)


def fits(asset_bytes: int, layer_allowance: int = POWERTOOLS_LAYER_ALLOWANCE) -> bool:
    return asset_bytes + layer_allowance <= UNZIPPED_LIMIT


@pytest.fixture(scope="module")
def dependencies() -> Path:
    # Cached under .cache/ by the full synth `make test` runs first; installed here otherwise (pip, Linux wheels).
    return bundling._dependencies_dir(ARCHITECTURE)


def test_the_asset_with_its_layer_fits_the_unzipped_limit(dependencies):
    asset = folder_bytes(dependencies) + folder_bytes(bundling.LAMBDA_SOURCE / "batch_pipeline")
    assert fits(asset), f"asset {asset / 1e6:.1f} MB + layer allowance exceeds {UNZIPPED_LIMIT / 1e6:.0f} MB"


def test_the_asset_bundles_the_chart_library_for_the_lambda_platform(dependencies):
    assert (dependencies / "vl_convert").is_dir()
    binaries = list((dependencies / "vl_convert").glob("*.so"))
    # ELF header: e_machine (little-endian, offset 18) is 183 for AArch64, the functions' architecture.
    headers = [path.open("rb").read(20) for path in binaries]
    assert binaries, "no native library in vl_convert"
    assert all(h[:4] == b"\x7fELF" and int.from_bytes(h[18:20], "little") == 183 for h in headers), binaries


def test_the_size_check_fails_for_an_asset_over_the_limit():
    assert fits(UNZIPPED_LIMIT - POWERTOOLS_LAYER_ALLOWANCE)
    assert not fits(UNZIPPED_LIMIT - POWERTOOLS_LAYER_ALLOWANCE + 1)
