"""The `batch-pipeline` command line: main.py parses it; one module per command, each beside its logic.

demo, doctor, evaluate (with evaluate_join.py and evaluate_scoring.py), invoke, local, plan (with plan_estimate.py),
recollect, stream, summary, validate. Each command module defines `register(subparsers)`, listed in main.COMMANDS.
output.py keeps a command's result alone on stdout; options.py holds the options several commands share.
"""
