"""Small S3 adapters for intake: stream an object in chunks, and a run-folder sink that uploads local files.

Callers pass the boto3 S3 client, so tests hand in a moto-backed one. Big files go up as multipart uploads whose
parts are read from the local file by each worker (os.pread), so memory stays at max_workers * part_size.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

MIB = 1024 * 1024
# S3 parts must be >= 5 MiB (except the last); 16 MiB keeps a 10 GB shard well under the 10,000-part limit.
DEFAULT_PART_SIZE = 16 * MIB
DEFAULT_UPLOAD_WORKERS = 4


def iter_object_chunks(client: Any, bucket: str, key: str, version_id: str | None = None,
                       chunk_size: int = MIB) -> Iterator[bytes]:
    """The object's bytes in chunks, read once from a single GetObject stream."""
    request = {"Bucket": bucket, "Key": key}
    if version_id:
        request["VersionId"] = version_id
    body = client.get_object(**request)["Body"]
    try:
        yield from body.iter_chunks(chunk_size)
    finally:
        body.close()


def describe_object(client: Any, bucket: str, key: str, version_id: str | None = None) -> dict[str, Any] | None:
    """{bucket, key, version_id, etag, size} from HeadObject, or None when the object (version) no longer exists."""
    request = {"Bucket": bucket, "Key": key}
    if version_id:
        request["VersionId"] = version_id
    try:
        head = client.head_object(**request)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound", "NoSuchVersion"):
            return None
        raise
    return {
        "bucket": bucket,
        "key": key,
        "version_id": head.get("VersionId"),
        "etag": head.get("ETag", "").strip('"'),
        "size": head["ContentLength"],
    }


def object_exists(client: Any, bucket: str, key: str) -> bool:
    try:
        client.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def copy_object(client: Any, source: dict[str, Any], bucket: str, key: str) -> None:
    """Server-side copy of `source` {bucket, key, version_id}; the managed copy switches to multipart above 5 GB."""
    copy_source = {"Bucket": source["bucket"], "Key": source["key"]}
    if source.get("version_id"):
        copy_source["VersionId"] = source["version_id"]
    client.copy(copy_source, bucket, key)


class S3RunSink:
    """A run folder in S3: `s3://bucket/prefix<key>`."""

    def __init__(self, client: Any, bucket: str, prefix: str, *, part_size: int = DEFAULT_PART_SIZE,
                 max_workers: int = DEFAULT_UPLOAD_WORKERS, intermediate_tagging: str | None = None):
        if part_size < 5 * MIB:
            raise ValueError("S3 multipart parts must be at least 5 MiB")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.part_size = part_size
        self.max_workers = max_workers
        # Tags objects put with intermediate=True (shards), so a lifecycle rule can expire them.
        self.intermediate_tagging = intermediate_tagging

    def location(self, key: str) -> str:
        return self.prefix + key

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/json") -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data, ContentType=content_type)

    def put_file(self, key: str, path: str, start: int = 0, end: int | None = None, *, consume: bool = False,
                 intermediate: bool = False) -> None:
        end = os.path.getsize(path) if end is None else end
        extra = {"ContentType": "application/jsonlines"}
        if intermediate and self.intermediate_tagging:
            extra["Tagging"] = self.intermediate_tagging
        with open(path, "rb") as source:
            fd = source.fileno()
            if end - start <= self.part_size:
                body = os.pread(fd, end - start, start)
                self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=body, **extra)
            else:
                self._multipart(self.prefix + key, fd, start, end, extra)
        if consume:
            os.remove(path)

    def _multipart(self, full_key: str, fd: int, start: int, end: int, extra: dict[str, str]) -> None:
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=full_key, **extra)["UploadId"]

        def upload(number: int, offset: int) -> dict[str, Any]:
            body = os.pread(fd, min(self.part_size, end - offset), offset)
            response = self.client.upload_part(Bucket=self.bucket, Key=full_key, UploadId=upload_id,
                                               PartNumber=number, Body=body)
            return {"PartNumber": number, "ETag": response["ETag"]}

        offsets = range(start, end, self.part_size)
        try:
            with ThreadPoolExecutor(max_workers=self.max_workers) as pool:
                parts = list(pool.map(upload, range(1, len(offsets) + 1), offsets))
            self.client.complete_multipart_upload(Bucket=self.bucket, Key=full_key, UploadId=upload_id,
                                                  MultipartUpload={"Parts": parts})
        except BaseException:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=full_key, UploadId=upload_id)
            raise
