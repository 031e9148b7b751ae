"""One module per CLI subcommand. Each defines `register(subparsers)`; cli.py discovers them all."""
