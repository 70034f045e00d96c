"""The S3-compatible store (AWS S3, R2, MinIO, B2, Wasabi) and the translation of botocore errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from boto3.s3.transfer import TransferConfig
from botocore import exceptions as botocore_errors
from botocore.config import Config

from scryon_dagster.adapters.object_store.base import (
    DEFAULT_PRESIGN_SECONDS,
    MIB,
    ObjectInfo,
    ObjectStoreBase,
    SizeLimitedReader,
    open_private_file,
    require_non_empty_prefix,
    validate_expiry,
    validate_key,
    validate_prefix,
)
from scryon_dagster.adapters.object_store.errors import (
    ObjectNotFoundError,
    ObjectStoreError,
    ObjectStoreUnavailableError,
)
from scryon_dagster.adapters.object_store.retry import retried_method

_S3_MAX_DELETE_BATCH = 1000
_S3_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
# Unavailable until someone fixes the configuration: waiting does not help.
_S3_MISCONFIGURED_CODES = frozenset(
    {"NoSuchBucket", "AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"}
)
# Unavailable for now: any 5xx or 429 too, whatever its code.
_S3_TRANSIENT_CODES = frozenset(
    {
        "ServiceUnavailable",
        "SlowDown",
        "InternalError",
        "RequestTimeout",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequests",
    }
)


class S3ObjectStore(ObjectStoreBase):
    """A bucket on AWS S3 or any S3-compatible service (R2, MinIO, B2, Wasabi).

    One boto3 client, shared by every thread (boto3 clients are thread-safe; sessions are not), with a
    connection pool sized for the pipeline's concurrent calls plus multipart upload threads. botocore
    retries each request a few times within a second or two; ``retry_seconds`` rides out longer
    outages on top of that (an endpoint down for seconds, a restart).
    """

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        path_style: bool = True,
        max_pool_connections: int = 64,
        max_attempts: int = 4,
        connect_timeout_seconds: float = 5,
        read_timeout_seconds: float = 60,
        list_page_size: int = 1000,
        multipart_chunk_bytes: int = 8 * MIB,
        multipart_concurrency: int = 4,
        retry_seconds: float = 0.0,
    ) -> None:
        if not bucket:
            raise ValueError("bucket must not be empty")
        if not 1 <= list_page_size <= 1000:
            raise ValueError("list_page_size must be between 1 and 1000")
        if multipart_chunk_bytes < 5 * MIB:
            raise ValueError("multipart_chunk_bytes must be at least 5 MiB (the S3 minimum part size)")
        self.bucket = bucket
        self.retry_seconds = retry_seconds
        self._list_page_size = list_page_size
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path" if path_style else "auto"},
            retries={"mode": "standard", "max_attempts": max_attempts},
            max_pool_connections=max_pool_connections,
            connect_timeout=connect_timeout_seconds,
            read_timeout=read_timeout_seconds,
            # Several S3-compatible services reject the CRC checksums boto3 now sends by default.
            request_checksum_calculation="when_required" if endpoint_url else "when_supported",
            response_checksum_validation="when_required" if endpoint_url else "when_supported",
        )
        self._client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=config,
        )
        self._transfer_config = TransferConfig(
            multipart_threshold=multipart_chunk_bytes,
            multipart_chunksize=multipart_chunk_bytes,
            max_concurrency=multipart_concurrency,
        )

    @retried_method
    def put_bytes(self, key: str, data: bytes, content_type: str) -> int:
        validate_key(key)
        with _s3_errors("put", key):
            self._client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        return len(data)

    def put_stream(self, key: str, stream: BinaryIO, content_type: str, *, max_bytes: int | None = None) -> int:
        validate_key(key)
        return self._put_replayable(stream, max_bytes, lambda reader: self._upload(key, reader, content_type))

    def _upload(self, key: str, reader: SizeLimitedReader, content_type: str) -> None:
        # upload_fileobj switches to multipart past one chunk and aborts the upload if reading fails,
        # so an oversized stream leaves neither an object nor orphaned parts.
        with _s3_errors("put", key):
            self._client.upload_fileobj(
                reader,
                self.bucket,
                key,
                ExtraArgs={"ContentType": content_type},
                Config=self._transfer_config,
            )

    @retried_method
    def get_bytes(self, key: str) -> bytes:
        validate_key(key)
        with _s3_errors("get", key):
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
            try:
                return bytes(body.read())
            finally:
                body.close()

    @retried_method
    def download_to(self, key: str, path: Path) -> int:
        validate_key(key)
        # Each attempt (retried_method) starts a new file: a failed download leaves no partial prefix behind.
        with _s3_errors("get", key), open_private_file(path) as target:
            self._client.download_fileobj(self.bucket, key, target, Config=self._transfer_config)
            return target.tell()

    @retried_method
    def head(self, key: str) -> ObjectInfo | None:
        validate_key(key)
        try:
            with _s3_errors("head", key):
                response = self._client.head_object(Bucket=self.bucket, Key=key)
        except ObjectNotFoundError:
            return None
        return ObjectInfo(key, int(response["ContentLength"]), response["LastModified"].astimezone(UTC))

    @retried_method
    def delete(self, key: str) -> None:
        validate_key(key)
        with _s3_errors("delete", key):
            self._client.delete_object(Bucket=self.bucket, Key=key)

    def delete_prefix(self, prefix: str) -> int:
        require_non_empty_prefix(prefix)
        deleted = 0
        batch: list[str] = []
        for info in self.list_objects(prefix):
            batch.append(info.key)
            if len(batch) == _S3_MAX_DELETE_BATCH:
                deleted += self._delete_batch(batch)
                batch = []
        if batch:
            deleted += self._delete_batch(batch)
        return deleted

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        continuation: dict[str, str] = {}
        while True:
            # Page by page, each retried on its own: a retry never repeats what was already yielded.
            page = self._list_page(prefix, continuation)
            for entry in page.get("Contents", []):
                yield ObjectInfo(entry["Key"], int(entry["Size"]), entry["LastModified"].astimezone(UTC))
            if not page.get("IsTruncated"):
                return
            continuation = {"ContinuationToken": page["NextContinuationToken"]}

    @retried_method
    def _list_page(self, prefix: str, continuation: dict[str, str]) -> dict[str, Any]:
        with _s3_errors("list", None):
            page: dict[str, Any] = self._client.list_objects_v2(
                Bucket=self.bucket, Prefix=prefix, MaxKeys=self._list_page_size, **continuation
            )
        return page

    def presigned_get_url(self, key: str, expires_seconds: int = DEFAULT_PRESIGN_SECONDS) -> str:
        validate_key(key)
        validate_expiry(expires_seconds)
        with _s3_errors("presign", key):
            return str(
                self._client.generate_presigned_url(
                    "get_object",
                    Params={"Bucket": self.bucket, "Key": key},
                    ExpiresIn=expires_seconds,
                )
            )

    def check(self) -> None:
        try:
            with _s3_errors("check", None):
                self._client.head_bucket(Bucket=self.bucket)
        except ObjectStoreUnavailableError:
            raise
        except ObjectStoreError as exc:
            raise ObjectStoreUnavailableError(str(exc)) from None

    @retried_method
    def _delete_batch(self, keys: list[str]) -> int:
        with _s3_errors("delete", None):
            response = self._client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True},
            )
        failures = response.get("Errors", [])
        if failures:
            codes = sorted({failure.get("Code", "Unknown") for failure in failures})
            raise ObjectStoreError(f"S3 delete failed for {len(failures)} objects ({', '.join(codes)})")
        return len(keys)


# Network failures that outlived botocore's own retries (connection refused or reset, timeouts, a
# body cut short), and missing credentials (only a configuration fix helps).
_BOTOCORE_NETWORK_ERRORS = (
    botocore_errors.ConnectionError,
    botocore_errors.HTTPClientError,
    botocore_errors.IncompleteReadError,
)
_BOTOCORE_CREDENTIAL_ERRORS = (botocore_errors.NoCredentialsError, botocore_errors.PartialCredentialsError)


@contextmanager
def _s3_errors(operation: str, key: str | None) -> Iterator[None]:
    """Translate botocore errors into store errors (code and status only: no URLs, no key names)."""
    try:
        yield
    except botocore_errors.ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in _S3_NOT_FOUND_CODES and key is not None:
            raise ObjectNotFoundError(key) from None
        message = f"S3 {operation} failed: {code} (HTTP {status})"
        if code in _S3_MISCONFIGURED_CODES:
            raise ObjectStoreUnavailableError(message, transient=False) from None
        if code in _S3_TRANSIENT_CODES or (isinstance(status, int) and (status >= 500 or status == 429)):
            raise ObjectStoreUnavailableError(message) from None
        raise ObjectStoreError(message) from None
    except _BOTOCORE_NETWORK_ERRORS as exc:
        raise ObjectStoreUnavailableError(f"S3 {operation} failed: {type(exc).__name__}") from None
    except _BOTOCORE_CREDENTIAL_ERRORS as exc:
        raise ObjectStoreUnavailableError(f"S3 {operation} failed: {type(exc).__name__}", transient=False) from None
    except botocore_errors.BotoCoreError as exc:
        raise ObjectStoreError(f"S3 {operation} failed: {type(exc).__name__}") from None
