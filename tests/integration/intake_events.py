"""Events in the shapes S3 really sends, for the intake handler tests."""

from __future__ import annotations

import uuid
from urllib.parse import quote_plus

ACCOUNT = "123456789012"
REGION = "us-east-1"


def s3_notification(bucket: str, key: str, head: dict, event_name: str = "ObjectCreated:Put") -> dict:
    """An S3 event notification as delivered to Lambda: the key URL-encoded, '+' for a space."""
    obj = {
        "key": quote_plus(key, safe="/"),
        "size": head["ContentLength"],
        "eTag": head["ETag"].strip('"'),
        "sequencer": uuid.uuid4().hex[:18].upper(),
    }
    if head.get("VersionId"):
        obj["versionId"] = head["VersionId"]
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": REGION,
                "eventTime": "2026-01-01T00:00:00.000Z",
                "eventName": event_name,
                "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
                "requestParameters": {"sourceIPAddress": "203.0.113.10"},
                "responseElements": {
                    "x-amz-request-id": "C3D13FE58DE4C810",
                    "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD",
                },
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "intake",
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    "object": obj,
                },
            }
        ]
    }


def eventbridge_object_created(bucket: str, key: str, head: dict) -> dict:
    """The EventBridge "Object Created" event S3 sends when the bucket has EventBridge notifications on."""
    obj = {
        "key": quote_plus(key, safe="/"),
        "size": head["ContentLength"],
        "etag": head["ETag"].strip('"'),
        "sequencer": uuid.uuid4().hex[:18].upper(),
    }
    if head.get("VersionId"):
        obj["version-id"] = head["VersionId"]
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": ACCOUNT,
        "time": "2026-01-01T00:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": obj,
            "request-id": "57H08PA84AB1JZW0",
            "requester": ACCOUNT,
            "source-ip-address": "203.0.113.10",
            "reason": "PutObject",
        },
    }


class LambdaContext:
    function_name = "intake"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:intake"
    aws_request_id = "4f5e1d2c-0000-4000-8000-000000000000"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 900_000
