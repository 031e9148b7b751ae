"""The only code that talks to S3: the run folder's layout (every key), JSONL reading, writes, job records."""
