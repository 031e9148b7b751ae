"""The `batch-pipeline` CLI and local mode: beside the runtime package (batch_pipeline), never in the Lambda asset.

cli/ (the commands), emulator/ (the app run on moto), engines/ (the model stand-ins), authorization/ (the IAM
checks); project.py (which project: its cdk.json), template.py (its synthesized template), realtime.py (the real-time
endpoint client).
"""
