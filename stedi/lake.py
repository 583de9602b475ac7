"""Where a lake lives: a local folder or ``s3://bucket/prefix``, with one interface for both.

Keys are always relative, ``/``-separated paths inside the lake (``customer/landing/x.json``);
the layout of folders is the same in both kinds of lake (see ``stedi.contract``).
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from stedi.tools import PARTIAL_PREFIX, write_atomically


class LakeError(Exception):
    """A lake could not be opened or an object could not be read or written."""


@dataclass(frozen=True)
class LakeObject:
    key: str
    size: int
    etag: str  # content fingerprint: S3 ETag, or md5 hex for a folder lake


class Lake(Protocol):
    url: str

    def put(self, key: str, data: bytes, *, sse: str | None = None, kms_key_id: str | None = None) -> LakeObject:
        """Store ``data`` under ``key`` whole or not at all, verified against its MD5."""
        ...

    def get(self, key: str) -> bytes: ...

    def list(self, prefix: str = "") -> list[LakeObject]: ...

    def delete(self, key: str) -> None: ...

    def exists(self, key: str) -> bool: ...


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class FolderLake:
    """A lake in a local folder.  Writes go to a temporary file that is renamed into place."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).expanduser().resolve()
        self.url = str(self.root)

    def path(self, key: str) -> Path:
        return self.root / key

    def put(self, key: str, data: bytes, *, sse: str | None = None, kms_key_id: str | None = None) -> LakeObject:
        write_atomically(self.path(key), data)
        return LakeObject(key, len(data), _md5(data))

    def get(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError as exc:
            raise LakeError(f"no object {key!r} in lake {self.url}") from exc

    def _walk(self, prefix: str) -> Iterator[Path]:
        base = self.root / prefix
        start = base if base.is_dir() else base.parent
        if not start.is_dir():
            return
        for dirpath, _dirs, files in os.walk(start):
            for name in files:
                if name.startswith(PARTIAL_PREFIX):
                    continue  # a write in progress, or one a killed process left behind
                p = Path(dirpath) / name
                if p.relative_to(self.root).as_posix().startswith(prefix):
                    yield p

    def list(self, prefix: str = "") -> list[LakeObject]:
        out = []
        for p in self._walk(prefix):
            st = p.stat()
            # mtime+size stand in for an ETag: cheap, and changes whenever the file is rewritten.
            out.append(LakeObject(p.relative_to(self.root).as_posix(), st.st_size, f"{st.st_mtime_ns:x}-{st.st_size:x}"))
        return sorted(out, key=lambda o: o.key)

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()


class S3Lake:
    """A lake under ``s3://bucket/prefix``.  boto3's standard credential chain and
    ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3`` apply."""

    def __init__(self, bucket: str, prefix: str = "", client: Any = None):
        if not bucket:
            raise LakeError("an S3 lake needs a bucket: s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        if client is None:
            import boto3

            client = boto3.client("s3")
        self.client = client

    def _key(self, key: str) -> str:
        return self.prefix + key

    def put(self, key: str, data: bytes, *, sse: str | None = None, kms_key_id: str | None = None) -> LakeObject:
        md5 = hashlib.md5(data, usedforsecurity=False)
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self._key(key),
            "Body": data,
            # S3 rejects the put if the body it received does not match: a verified upload.
            "ContentMD5": base64.b64encode(md5.digest()).decode(),
        }
        if sse:
            kwargs["ServerSideEncryption"] = sse
            if kms_key_id:
                kwargs["SSEKMSKeyId"] = kms_key_id
        resp = self.client.put_object(**kwargs)
        etag = resp.get("ETag", "").strip('"')
        if sse != "aws:kms" and etag and etag != md5.hexdigest():
            raise LakeError(f"S3 stored {key!r} with ETag {etag}, expected {md5.hexdigest()}")
        return LakeObject(key, len(data), etag or md5.hexdigest())

    def get(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except self.client.exceptions.NoSuchKey as exc:
            raise LakeError(f"no object {key!r} in lake {self.url}") from exc

    def list(self, prefix: str = "") -> list[LakeObject]:
        out = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            for item in page.get("Contents", []):
                out.append(LakeObject(item["Key"][len(self.prefix):], item["Size"], item["ETag"].strip('"')))
        return sorted(out, key=lambda o: o.key)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise


def _top_folders() -> tuple[str, ...]:
    from stedi.contract import TABLES

    # What only a lake holds at its top: an entity's folder or the pipeline's own.
    return tuple(sorted({t.folder.split("/", 1)[0] for t in TABLES} | {"_pipeline"}))


def lake_exists(lake: FolderLake | S3Lake) -> bool:
    """Whether ``lake`` holds a lake: an entity folder (landing data) or the pipeline's ``_pipeline/``.

    A folder that exists but holds neither (a mistyped path to some other folder) is no lake, nor
    is an S3 prefix with no object under it.  When S3 cannot say, raises
    :class:`~stedi.errors.PermanentError` (no credentials, no such bucket, access denied: retrying
    will not help) or :class:`LakeError` (S3 unreachable); the message names what to fix.
    """
    if isinstance(lake, FolderLake):
        return lake.root.is_dir() and any((lake.root / name).is_dir() for name in _top_folders())
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    from stedi.errors import PermanentError

    try:
        resp = lake.client.list_objects_v2(Bucket=lake.bucket, Prefix=lake.prefix, MaxKeys=1)
    except NoCredentialsError as exc:
        raise PermanentError(f"no AWS credentials to read {lake.url}",
                             hint="set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                                  "(`aws configure` writes a profile)") from exc
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "NoSuchBucket":
            raise PermanentError(f"no bucket {lake.bucket!r} for the lake {lake.url}",
                                 hint=f"check the name, or create the bucket (aws s3 mb s3://{lake.bucket})") from exc
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
            raise PermanentError(f"S3 refused to list {lake.url}: {code}",
                                 hint="check the credentials and that they may list and read this bucket") from exc
        raise LakeError(f"cannot list {lake.url}: {code or exc}") from exc
    except BotoCoreError as exc:
        raise LakeError(f"cannot reach S3 for {lake.url}: {exc}") from exc
    return int(resp.get("KeyCount", 0)) > 0


def open_lake(url: str | os.PathLike[str]) -> FolderLake | S3Lake:
    """Open the lake at ``url``: ``s3://bucket/prefix`` or a folder path (``file://`` allowed)."""
    text = os.fspath(url)
    parsed = urlparse(text)
    if parsed.scheme == "s3":
        return S3Lake(parsed.netloc, parsed.path)
    if parsed.scheme == "file":
        return FolderLake(parsed.path)
    if parsed.scheme and len(parsed.scheme) > 1:
        raise LakeError(f"unsupported lake URL {text!r}: use a folder path or s3://bucket/prefix")
    return FolderLake(text)
