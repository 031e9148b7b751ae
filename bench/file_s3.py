"""A file-backed stand-in for the boto3 S3 client, for benchmarks and memory-shape tests at scale.

Why not moto: moto keeps every object in the measuring process's heap, so a step's peak memory would count the
data it uploaded, and steps run in separate processes (to measure each one's RSS) could not share a bucket.
This stand-in keeps objects as files under a root directory, and GetObject returns botocore's real
`StreamingBody` over the file, so the code under test reads exactly as it reads S3. Only the calls the pipeline's
steps make are implemented, with S3's request and response field names; a missing key raises botocore's
ClientError with code NoSuchKey, as S3 does. It is a local stand-in, not S3: no versions, tags are recorded and
not enforced, and requests are counted in `calls` so callers can check how often each object was read.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from botocore.response import StreamingBody


class FileS3:
    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self.calls: Counter = Counter()
        self._uploads: dict[str, dict[int, Path]] = {}

    def _path(self, bucket: str, key: str) -> Path:
        return self.root / bucket / key

    @staticmethod
    def _missing(operation: str, key: str) -> ClientError:
        return ClientError(
            {"Error": {"Code": "NoSuchKey", "Message": f"The specified key does not exist: {key}"}}, operation
        )

    def create_bucket(self, Bucket: str, **_: Any) -> dict:
        (self.root / Bucket).mkdir(parents=True, exist_ok=True)
        return {}

    def put_object(self, Bucket: str, Key: str, Body: bytes | str = b"", **_: Any) -> dict:
        self.calls[("PutObject", Key)] += 1
        path = self._path(Bucket, Key)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = Body.encode() if isinstance(Body, str) else Body if isinstance(Body, bytes) else Body.read()
        path.write_bytes(data)
        return {"ETag": f'"{hashlib.md5(data).hexdigest()}"'}

    def upload_file(self, Filename: str, Bucket: str, Key: str, **_: Any) -> None:
        self.calls[("PutObject", Key)] += 1
        path = self._path(Bucket, Key)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Filename, path)

    def get_object(self, Bucket: str, Key: str, **_: Any) -> dict:
        self.calls[("GetObject", Key)] += 1
        path = self._path(Bucket, Key)
        if not path.is_file():
            raise self._missing("GetObject", Key)
        size = path.stat().st_size
        return {"Body": StreamingBody(open(path, "rb"), size), "ContentLength": size}

    def head_object(self, Bucket: str, Key: str, **_: Any) -> dict:
        self.calls[("HeadObject", Key)] += 1
        path = self._path(Bucket, Key)
        if not path.is_file():
            raise ClientError({"Error": {"Code": "404", "Message": "Not Found"}}, "HeadObject")
        stat = path.stat()
        return {"ContentLength": stat.st_size, "ETag": f'"{stat.st_mtime_ns:x}"', "VersionId": None}

    def put_object_tagging(self, Bucket: str, Key: str, Tagging: dict, **_: Any) -> dict:
        self.calls[("PutObjectTagging", Key)] += 1
        return {}

    def create_multipart_upload(self, Bucket: str, Key: str, **_: Any) -> dict:
        upload_id = uuid.uuid4().hex
        self._uploads[upload_id] = {}
        return {"Bucket": Bucket, "Key": Key, "UploadId": upload_id}

    def upload_part(self, Bucket: str, Key: str, UploadId: str, PartNumber: int, Body: bytes, **_: Any) -> dict:
        part = self.root / ".parts" / f"{UploadId}-{PartNumber:05d}"
        part.parent.mkdir(parents=True, exist_ok=True)
        part.write_bytes(Body)
        self._uploads[UploadId][PartNumber] = part
        return {"ETag": f'"{hashlib.md5(Body).hexdigest()}"'}

    def complete_multipart_upload(self, Bucket: str, Key: str, UploadId: str, MultipartUpload: dict, **_: Any) -> dict:
        self.calls[("PutObject", Key)] += 1
        parts = self._uploads.pop(UploadId)
        path = self._path(Bucket, Key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as out:
            for entry in MultipartUpload["Parts"]:
                with open(parts[entry["PartNumber"]], "rb") as part:
                    shutil.copyfileobj(part, out, 1024 * 1024)
        for part in parts.values():
            part.unlink()
        return {"Bucket": Bucket, "Key": Key}

    def abort_multipart_upload(self, Bucket: str, Key: str, UploadId: str, **_: Any) -> dict:
        for part in self._uploads.pop(UploadId, {}).values():
            part.unlink(missing_ok=True)
        return {}

    def list_objects_v2(self, Bucket: str, Prefix: str = "", **_: Any) -> dict:
        base = self.root / Bucket
        contents = []
        for path in sorted(base.rglob("*")):
            key = path.relative_to(base).as_posix()
            if path.is_file() and key.startswith(Prefix):
                contents.append({"Key": key, "Size": path.stat().st_size})
        return {"Contents": contents, "KeyCount": len(contents), "IsTruncated": False}

    def get_paginator(self, operation: str) -> _Paginator:
        if operation != "list_objects_v2":
            raise NotImplementedError(operation)
        return _Paginator(self)


class _Paginator:
    def __init__(self, client: FileS3):
        self.client = client

    def paginate(self, **request: Any) -> Iterator[dict]:
        yield self.client.list_objects_v2(**request)
