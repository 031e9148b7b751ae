"""The storage module: every S3 read, write and "not found" decision the Lambdas make, in one place.

Callers pass the boto3 S3 client, so tests hand in a moto-backed one. Reads stream (one GetObject, read in chunks
and split into lines as they arrive), so memory does not grow with an object's size. Big files go up as multipart
uploads whose parts are read from the local file by each worker (os.pread), so memory stays at
max_workers * part_size.

"Not found" is one set of error codes (NOT_FOUND): S3 answers a missing key with NoSuchKey to GetObject and with
a bare 404 to HeadObject, and a missing version with NoSuchVersion. S3 says NoSuchKey only to a caller that may
list the bucket; without s3:ListBucket a missing key reads as AccessDenied (GetObject API reference), which is why
the roles that read objects that may be missing hold s3:ListBucket.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any

from batch_pipeline.storage.jsonl import body_lines

MIB = 1024 * 1024
# S3 parts must be >= 5 MiB (except the last); 16 MiB keeps a 10 GB shard well under the 10,000-part limit.
DEFAULT_PART_SIZE = 16 * MIB
DEFAULT_UPLOAD_WORKERS = 4
# A line writer's parts: 8 MiB parts reach 80 GB within the 10,000-part limit.
LINE_WRITER_PART_BYTES = 8 * MIB
NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchVersion"})
JSONL = "application/x-ndjson"
JSON = "application/json"


def error_code(error: BaseException) -> str:
    """A botocore ClientError's code ("" for anything else); matched on the code so botocore stays a lazy import."""
    return str(getattr(error, "response", {}).get("Error", {}).get("Code", ""))


def is_not_found(error: BaseException) -> bool:
    return error_code(error) in NOT_FOUND


# ---------------------------------------------------------------- reading


def _versioned(bucket: str, key: str, version_id: str | None) -> dict[str, str]:
    request = {"Bucket": bucket, "Key": key}
    if version_id:
        request["VersionId"] = version_id
    return request


def get_object(client: Any, bucket: str, key: str) -> dict[str, Any] | None:
    """The GetObject response (its Body not read yet), or None when the object does not exist."""
    try:
        return dict(client.get_object(Bucket=bucket, Key=key))
    except Exception as error:
        if is_not_found(error):
            return None
        raise


def read_bytes(client: Any, bucket: str, key: str) -> bytes:
    return bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())


def read_json(client: Any, bucket: str, key: str) -> Any:
    return json.loads(read_bytes(client, bucket, key))


def read_json_if_exists(client: Any, bucket: str, key: str) -> Any | None:
    response = get_object(client, bucket, key)
    return None if response is None else json.loads(response["Body"].read())


def iter_object_chunks(
    client: Any, bucket: str, key: str, version_id: str | None = None, chunk_size: int = MIB
) -> Iterator[bytes]:
    """The object's bytes in chunks, read once from a single GetObject stream."""
    body = client.get_object(**_versioned(bucket, key, version_id))["Body"]
    try:
        yield from body.iter_chunks(chunk_size)
    finally:
        body.close()


def _non_blank(body: Any, chunk_size: int) -> Iterator[bytes]:
    try:
        for line in body_lines(body, chunk_size):
            if line.strip():
                yield line
    finally:
        body.close()


def lines(client: Any, bucket: str, key: str, chunk_size: int = MIB) -> Iterator[bytes]:
    """The object's non-blank lines as they stream; GetObject runs now, so a missing object raises here."""
    return _non_blank(client.get_object(Bucket=bucket, Key=key)["Body"], chunk_size)


def lines_if_exists(client: Any, bucket: str, key: str, chunk_size: int = MIB) -> Iterator[bytes] | None:
    """The object's non-blank lines as they stream; None when the object does not exist."""
    response = get_object(client, bucket, key)
    return None if response is None else _non_blank(response["Body"], chunk_size)


def list_keys(client: Any, bucket: str, prefix: str) -> Iterator[str]:
    """Every key under `prefix`, in S3's (lexicographic) order."""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            yield str(item["Key"])


def describe_object(client: Any, bucket: str, key: str, version_id: str | None = None) -> dict[str, Any] | None:
    """{bucket, key, version_id, etag, size} from HeadObject, or None when the object (version) no longer exists."""
    try:
        head = client.head_object(**_versioned(bucket, key, version_id))
    except Exception as error:
        if is_not_found(error):
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
    return describe_object(client, bucket, key) is not None


# ---------------------------------------------------------------- writing


def put_bytes(
    client: Any,
    bucket: str,
    key: str,
    body: bytes,
    content_type: str,
    *,
    tagging: str | None = None,
    metadata: dict[str, str] | None = None,
) -> None:
    """One PutObject; the bucket's default encryption applies. `tagging` as S3's URL-encoded `key=value` form."""
    extra: dict[str, Any] = {}
    if tagging:
        extra["Tagging"] = tagging
    if metadata is not None:
        extra["Metadata"] = metadata
    client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type, **extra)


def put_json(client: Any, bucket: str, key: str, value: Any, *, indent: int | None = None) -> None:
    """`value` as JSON: indented for people when `indent` is given, else compact."""
    text = json.dumps(value, indent=indent) if indent is not None else json.dumps(value, separators=(",", ":"))
    put_bytes(client, bucket, key, text.encode(), JSON)


def upload_file(
    client: Any, path: str, bucket: str, key: str, content_type: str, *, tagging: str | None = None
) -> None:
    """A local file through the managed transfer (multipart above its threshold)."""
    extra = {"ContentType": content_type}
    if tagging:
        extra["Tagging"] = tagging
    client.upload_file(path, bucket, key, ExtraArgs=extra)


def copy_object(client: Any, source: dict[str, Any], bucket: str, key: str) -> None:
    """Server-side copy of `source` {bucket, key, version_id}; the managed copy switches to multipart above 5 GB."""
    copy_source = {"Bucket": source["bucket"], "Key": source["key"]}
    if source.get("version_id"):
        copy_source["VersionId"] = source["version_id"]
    client.copy(copy_source, bucket, key)


def delete_object(client: Any, bucket: str, key: str) -> None:
    """DeleteObject without a version: in a versioned bucket a delete marker, which the bucket's lifecycle rules
    clean up with the versions it hides. Deleting a key that does not exist succeeds, as in S3."""
    client.delete_object(Bucket=bucket, Key=key)


def tag_object(client: Any, bucket: str, key: str, tag: tuple[str, str]) -> None:
    client.put_object_tagging(Bucket=bucket, Key=key, Tagging={"TagSet": [{"Key": tag[0], "Value": tag[1]}]})


class LineWriter:
    """Lines appended to one S3 object, uploaded in parts as they fill: written once, never held whole.

    A failure inside the block aborts the multipart upload, so no partial object is left behind."""

    def __init__(
        self, client: Any, bucket: str, key: str, part_bytes: int | None = None, content_type: str = JSONL
    ) -> None:
        self.s3, self.bucket, self.key = client, bucket, key
        self.part_bytes = part_bytes or LINE_WRITER_PART_BYTES
        self.content_type = content_type
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []

    def write(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) >= self.part_bytes:
            self._upload_part()

    def _upload_part(self) -> None:
        if self.upload_id is None:
            self.upload_id = self.s3.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, ContentType=self.content_type
            )["UploadId"]
        number = len(self.parts) + 1
        response = self.s3.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=bytes(self.buffer)
        )
        self.parts.append({"PartNumber": number, "ETag": response["ETag"]})
        self.buffer = bytearray()

    def __enter__(self) -> LineWriter:
        return self

    def __exit__(
        self, error_type: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if error_type is not None:
            if self.upload_id is not None:
                self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
            return
        if self.upload_id is None:
            self.s3.put_object(Bucket=self.bucket, Key=self.key, Body=bytes(self.buffer), ContentType=self.content_type)
            return
        if self.buffer:
            self._upload_part()
        self.s3.complete_multipart_upload(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts}
        )


class S3RunSink:
    """A run folder in S3: `s3://bucket/prefix<key>` (intake's RunSink, see batch_pipeline.intake.stream)."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str,
        *,
        part_size: int = DEFAULT_PART_SIZE,
        max_workers: int = DEFAULT_UPLOAD_WORKERS,
        intermediate_tagging: str | None = None,
    ) -> None:
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

    def put_bytes(self, key: str, data: bytes, content_type: str = JSON) -> None:
        put_bytes(self.client, self.bucket, self.prefix + key, data, content_type)

    def put_file(
        self,
        key: str,
        path: str,
        start: int = 0,
        end: int | None = None,
        *,
        consume: bool = False,
        intermediate: bool = False,
    ) -> None:
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
            response = self.client.upload_part(
                Bucket=self.bucket, Key=full_key, UploadId=upload_id, PartNumber=number, Body=body
            )
            return {"PartNumber": number, "ETag": response["ETag"]}

        offsets = range(start, end, self.part_size)
        try:
            with ThreadPoolExecutor(max_workers=self.max_workers) as pool:
                parts = list(pool.map(upload, range(1, len(offsets) + 1), offsets))
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=full_key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=full_key, UploadId=upload_id)
            raise
