"""`batch-pipeline stream`: print the tokens a TGI endpoint generates, as they arrive."""

from __future__ import annotations

import argparse
import sys

from batch_pipeline_local import realtime
from batch_pipeline_local.cli.invoke import parse_params
from batch_pipeline_local.cli.options import Subcommands

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_MAX_NEW_TOKENS = 256

DESCRIPTION = f"""\
Send one prompt to a deployed SageMaker endpoint running the Hugging Face LLM (TGI) container and
print the generated tokens as they arrive (InvokeEndpointWithResponseStream with "stream": true).

The request body is {{"inputs": PROMPT, "parameters": {{"max_new_tokens": N, ...--param}}, "stream": true}}.
Special tokens such as <|endoftext|> or </s> are left out unless --include-special.
Instruct models expect their own prompt template (for example "<s>[INST] ... [/INST]" for Mistral
Instruct); the prompt is sent as given.

Exit status: 0 the stream ended normally, 1 the endpoint failed or sent an error or a malformed
line (the message shows what arrived), 2 bad usage. Default --max-new-tokens: {DEFAULT_MAX_NEW_TOKENS}."""


def register(subparsers: Subcommands) -> None:
    parser = subparsers.add_parser(
        "stream",
        help="stream tokens from a real-time TGI endpoint",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--endpoint", required=True, metavar="NAME", help="SageMaker endpoint name")
    parser.add_argument("--prompt", required=True, metavar="TEXT", help="the prompt ('-' reads it from stdin)")
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=DEFAULT_MAX_NEW_TOKENS,
        metavar="N",
        help=f"tokens to generate at most (default: {DEFAULT_MAX_NEW_TOKENS})",
    )
    parser.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="TGI generation parameter, e.g. temperature=0.7 or stop='[\"</s>\"]' (repeatable; JSON values)",
    )
    parser.add_argument(
        "--include-special", action="store_true", help="also print special tokens (<|endoftext|>, </s>)"
    )
    parser.add_argument("--region", help="AWS region of the endpoint (default: the AWS configuration's)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        params = parse_params(args.param)
    except argparse.ArgumentTypeError as error:
        print(f"batch-pipeline stream: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.max_new_tokens < 1:
        print("batch-pipeline stream: --max-new-tokens must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    params = {"max_new_tokens": args.max_new_tokens, **params}

    # Deferred: botocore loads only when a request is sent (the CLI imports every command at start-up).
    from botocore.exceptions import BotoCoreError, ClientError

    client = realtime.runtime_client(args.region)
    printed_any = False
    try:
        for token in realtime.stream(
            args.endpoint, prompt, client=client, include_special=args.include_special, **params
        ):
            sys.stdout.write(token)
            sys.stdout.flush()
            printed_any = True
    except (ClientError, BotoCoreError, realtime.StreamError) as error:
        if printed_any:
            sys.stdout.write("\n")
            sys.stdout.flush()
        print(f"batch-pipeline stream: {error}", file=sys.stderr)
        return EXIT_FAILED
    sys.stdout.write("\n")
    sys.stdout.flush()
    return EXIT_OK
