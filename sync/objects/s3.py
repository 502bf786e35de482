"""S3ObjectStore: the remote object backend, boto3 against S3 or R2 (``endpoint_url``, region ``auto``).

``url`` is ``s3://<bucket>/<prefix><key>``: stable, and readable by any S3 tool given the endpoint.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from sync.errors import NotFound, RemoteError
from sync.objects.base import normalize_storage_class, validate_key, validate_object_key, validate_prefix

MIB = 1024 * 1024
MAX_OPEN_BYTES = 64 * MIB
_NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}
_RETRYABLE = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
}


def _remote(exc: Exception, operation: str, key: str) -> Exception:
    """Translate a botocore failure into NotFound or RemoteError."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0) or None
        if code in _NOT_FOUND and code != "NoSuchBucket":
            return NotFound(f"no object {key!r}")
        retryable = code in _RETRYABLE or (status is not None and (status >= 500 or status == 429))
        hint = "check the bucket name and credentials" if status in (401, 403) or code == "NoSuchBucket" else None
        return RemoteError(
            f"{code or status}: {err.get('Message', '')}".strip(),
            operation=operation,
            retryable=retryable,
            status=status,
            hint=hint,
        )
    return RemoteError(f"{type(exc).__name__}: {exc}", operation=operation, retryable=True)


class S3ObjectStore:
    """Objects in one bucket (under an optional key prefix); large files go up in multipart chunks."""

    name = "s3"

    def __init__(
        self,
        bucket: str,
        endpoint_url: str | None = None,
        region: str = "auto",
        access_key: str | None = None,
        secret_key: str | None = None,
        prefix: str = "",
        *,
        multipart_threshold: int = 64 * MIB,
        multipart_chunksize: int = 16 * MIB,
        max_attempts: int = 3,
        timeout_s: float = 60.0,
    ) -> None:
        if not isinstance(bucket, str) or not bucket:
            raise ValueError("S3ObjectStore needs a bucket name")
        if prefix:
            validate_key(prefix.rstrip("/"))
            prefix = prefix.rstrip("/") + "/"
        self.bucket = bucket
        self.prefix = prefix
        config = Config(
            region_name=region,
            # boto3 >= 1.36 adds CRC32 checksums by default, which R2 rejects on some calls.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"mode": "standard", "max_attempts": max_attempts},
            connect_timeout=min(timeout_s, 10.0),
            read_timeout=timeout_s,
            s3={"addressing_style": "path"},
        )
        self._client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=config,
        )
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold, multipart_chunksize=multipart_chunksize, use_threads=True
        )

    def __repr__(self) -> str:  # never show the secret
        return f"S3ObjectStore(bucket={self.bucket!r}, prefix={self.prefix!r})"

    def _full(self, key: str) -> str:
        return self.prefix + validate_object_key(key)

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> None:
        """Upload ``path``, multipart above the threshold (S3 shows the object only once complete)."""
        full = self._full(key)
        src = Path(path)
        if not src.is_file():
            raise FileNotFoundError(f"no such file to upload: {src}")
        extra = {"ContentType": content_type} if content_type else None
        try:
            self._client.upload_file(str(src), self.bucket, full, ExtraArgs=extra, Config=self._transfer)
        except (ClientError, BotoCoreError) as exc:
            raise _remote(exc, "s3 put", key) from exc
        except Exception as exc:  # S3Transfer wraps failures in its own exception types
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, ClientError | BotoCoreError):
                raise _remote(cause, "s3 put", key) from exc
            raise RemoteError(f"{type(exc).__name__}: {exc}", operation="s3 put", retryable=True) from exc

    def get_file(self, key: str, dest: Path) -> None:
        """Download to a temp file beside ``dest``, then rename."""
        full = self._full(key)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
        try:
            self._client.download_file(self.bucket, full, str(tmp), Config=self._transfer)
            os.replace(tmp, dest)
        except (ClientError, BotoCoreError) as exc:
            raise _remote(exc, "s3 get", key) from exc
        finally:
            tmp.unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        """HEAD the object."""
        full = self._full(key)
        try:
            self._client.head_object(Bucket=self.bucket, Key=full)
        except (ClientError, BotoCoreError) as exc:
            err = _remote(exc, "s3 head", key)
            if isinstance(err, NotFound):
                return False
            raise err from exc
        return True

    def delete(self, key: str) -> None:
        """Delete the object (S3 answers 204 for a missing key too)."""
        full = self._full(key)
        try:
            self._client.delete_object(Bucket=self.bucket, Key=full)
        except (ClientError, BotoCoreError) as exc:
            err = _remote(exc, "s3 delete", key)
            if not isinstance(err, NotFound):
                raise err from exc

    def list(self, prefix: str = "") -> list[str]:
        """All keys under ``prefix`` (paginated), without the store's own prefix."""
        validate_prefix(prefix)
        keys: list[str] = []
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix
            ):
                keys.extend(item["Key"][len(self.prefix) :] for item in page.get("Contents", []))
        except (ClientError, BotoCoreError) as exc:
            raise _remote(exc, "s3 list", prefix) from exc
        return sorted(keys)

    def url(self, key: str) -> str:
        """``s3://bucket/prefix/key``."""
        return f"s3://{self.bucket}/{self._full(key)}"

    def set_storage_class(self, key: str, cls: str) -> None:
        """Copy the object onto itself with the new class, keeping its metadata."""
        full = self._full(key)
        target = normalize_storage_class(cls)
        try:
            self._client.copy_object(
                Bucket=self.bucket,
                Key=full,
                CopySource={"Bucket": self.bucket, "Key": full},
                StorageClass=target,
                MetadataDirective="COPY",
            )
        except (ClientError, BotoCoreError) as exc:
            raise _remote(exc, "s3 set storage class", key) from exc

    def storage_class(self, key: str) -> str:
        """The object's class as S3 reports it (STANDARD when the header is absent)."""
        full = self._full(key)
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=full)
        except (ClientError, BotoCoreError) as exc:
            raise _remote(exc, "s3 head", key) from exc
        return str(head.get("StorageClass") or "STANDARD")

    def open_bytes(self, key: str) -> bytes:
        """GET a small object whole (refuses objects over 64 MiB)."""
        full = self._full(key)
        try:
            resp = self._client.get_object(Bucket=self.bucket, Key=full)
            if int(resp.get("ContentLength") or 0) > MAX_OPEN_BYTES:
                resp["Body"].close()
                raise ValueError(f"object {key!r} is larger than {MAX_OPEN_BYTES} bytes; use get_file")
            return bytes(resp["Body"].read())
        except (ClientError, BotoCoreError) as exc:
            raise _remote(exc, "s3 get", key) from exc
