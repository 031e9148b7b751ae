"""Options several commands share."""

from __future__ import annotations

import argparse
from typing import TypeAlias

# What each command's register() adds its parser to (`parser.add_subparsers()`); argparse's class is generic only in
# its type information, so the alias is a string.
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

CONFIG_HELP = "the project's cdk.json (default: cdk.json in the current folder, or in the nearest folder above it)"


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """`--config CDK_JSON`: which project a command reads its configuration (and app, examples ...) from."""
    parser.add_argument("--config", metavar="CDK_JSON", default=None, help=CONFIG_HELP)
