"""Intake: an uploaded object becomes a validated, sharded, planned run (or a rejection with a report).

`service` is the S3-facing step (read, reject or publish, start the execution); `stream` is the one pass over the
records (validate, spill, shard, write the id index); `validation`, `formats` and `bedrock_schemas` decide what a
valid record is; `sharding` cuts the shards.
"""
