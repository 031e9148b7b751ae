"""Local mode's authorization: every call judged against the template's policies by a real IAM evaluator.

evaluator.py (the Node bridge to iam-simulate), policies.py (what the template allows), operations.py (each boto3
operation -> its IAM requests), enforce.py (the check on every handler's call), service_calls.py (the calls AWS
services make for the stack). It is handed what it needs (policies, the evaluator's folder, resource tags) and imports
nothing of the emulator.
"""
