"""Docker-free bundling of the Lambda asset: the runtime package plus its pinned Linux wheels.

pip resolves wheels for the Lambda platform (`--platform manylinux... --only-binary=:all:`), so no
container is needed. The installed dependencies are cached under .cache/ keyed by the hash of
requirements-lambda.txt and the target platform, so only a change of pins reinstalls them.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_

REPO_ROOT = Path(__file__).resolve().parents[1]
LAMBDA_SOURCE = REPO_ROOT / "lambdas"
REQUIREMENTS = REPO_ROOT / "requirements-lambda.txt"
CACHE_DIR = REPO_ROOT / ".cache" / "lambda-deps"

PYTHON_VERSION = "3.14"  # keep in step with functions.RUNTIME
PLATFORMS = {
    lambda_.Architecture.ARM_64.name: ["manylinux2014_aarch64", "manylinux_2_28_aarch64"],
    lambda_.Architecture.X86_64.name: ["manylinux2014_x86_64", "manylinux_2_28_x86_64"],
}


def _dependencies_dir(architecture: lambda_.Architecture) -> Path:
    platforms = PLATFORMS[architecture.name]
    key = hashlib.sha256(REQUIREMENTS.read_bytes() + "|".join([PYTHON_VERSION, *platforms]).encode()).hexdigest()[:16]
    target = CACHE_DIR / f"{architecture.name}-{key}"
    if (target / ".complete").exists():
        return target
    staging = target.with_suffix(".partial")
    shutil.rmtree(staging, ignore_errors=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-compile",
        "--disable-pip-version-check",
        "-r",
        str(REQUIREMENTS),
        "--target",
        str(staging),
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        PYTHON_VERSION,
    ]
    for platform in platforms:
        command += ["--platform", platform]
    subprocess.run(command, check=True)
    (staging / ".complete").touch()
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


@jsii.implements(cdk.ILocalBundling)
class LocalPipBundler:
    def __init__(self, architecture: lambda_.Architecture) -> None:
        self._architecture = architecture

    # jsii calls this with the BundlingOptions (as one positional struct here); they hold nothing this bundler uses.
    def try_bundle(self, output_dir: str, *options: object, **option_fields: object) -> bool:
        output = Path(output_dir)
        shutil.copytree(
            _dependencies_dir(self._architecture),
            output,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns(".complete"),
        )
        shutil.copytree(
            LAMBDA_SOURCE / "batch_pipeline",
            output / "batch_pipeline",
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        return True


def lambda_code(architecture: lambda_.Architecture) -> lambda_.Code:
    """One asset for every function: the runtime package and its dependencies, nothing else."""
    return lambda_.Code.from_asset(
        str(LAMBDA_SOURCE),
        exclude=["**/__pycache__", "**/*.pyc"],
        # Hash what was bundled, so a change of pinned wheels is a new asset too.
        asset_hash_type=cdk.AssetHashType.OUTPUT,
        bundling=cdk.BundlingOptions(
            # Never pulled: the local bundler always succeeds or raises.
            image=cdk.DockerImage.from_registry("public.ecr.aws/sam/build-python3.14"),
            local=LocalPipBundler(architecture),
            command=["false"],
        ),
    )
