"""Object storage: S3-compatible buckets, a local directory, and an in-memory fake, all alike.

The three stores accept the same keys, return the same results and raise the same errors, so code
and tests written against one hold for the others. Keys come from ``domain.storage_keys``; this module
only checks that a key is well formed (no empty, ``.`` or ``..`` segments, no leading ``/``).

Error messages never carry the file-name part of a key: TEMP_AUDIO keys end with the uploaded file
name, which can hold a contact's name or number. The exception's ``key`` attribute keeps it whole.
"""

from __future__ import annotations

import errno
import io
import os
import re
import stat
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import boto3
from boto3.s3.transfer import TransferConfig
from botocore import exceptions as botocore_errors
from botocore.config import Config
from pydantic import SecretStr

from scryon_dagster.settings import Settings, StorageProvider

MAX_KEY_BYTES = 1024
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
DEFAULT_PRESIGN_SECONDS = 300
_MIB = 1024 * 1024
_COPY_CHUNK_BYTES = _MIB
_S3_MAX_DELETE_BATCH = 1000
_LOGGABLE_SEGMENT = re.compile(r"[a-z]+(\.[a-z]+)?|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_S3_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_S3_UNAVAILABLE_CODES = frozenset(
    {
        "NoSuchBucket",
        "AccessDenied",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "403",
        "ServiceUnavailable",
        "SlowDown",
        "InternalError",
        "503",
        "500",
    }
)


# --- errors -----------------------------------------------------------------------------------


class ObjectStoreError(Exception):
    """Base of every object-store failure."""


class InvalidObjectKeyError(ObjectStoreError, ValueError):
    """The key or prefix is malformed or would escape the store."""


class ObjectNotFoundError(ObjectStoreError):
    def __init__(self, key: str) -> None:
        super().__init__(f"object not found: {loggable_key(key)}")
        self.key = key


class ObjectTooLargeError(ObjectStoreError):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"object exceeds the limit of {max_bytes} bytes")
        self.max_bytes = max_bytes


class ObjectStoreUnavailableError(ObjectStoreError):
    """The bucket or directory cannot be reached or used (network, credentials, permissions)."""


def loggable_key(key: str) -> str:
    """``key`` with every segment that is neither a UUID nor a plain lowercase word masked."""
    return "/".join(segment if _LOGGABLE_SEGMENT.fullmatch(segment) else "<name>" for segment in key.split("/"))


# --- the interface ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: datetime
    """Always timezone-aware UTC."""


class ObjectStore(Protocol):
    def put_bytes(self, key: str, data: bytes, content_type: str) -> int:
        """Store ``data`` at ``key`` (replacing any object there); return its size."""
        ...

    def put_stream(self, key: str, stream: BinaryIO, content_type: str, *, max_bytes: int | None = None) -> int:
        """Store a stream without holding it all in memory; return its size.

        Raises ObjectTooLargeError past ``max_bytes``, leaving any previous object at ``key`` untouched.
        """
        ...

    def get_bytes(self, key: str) -> bytes:
        """The object's bytes; raises ObjectNotFoundError."""
        ...

    def exists(self, key: str) -> bool: ...

    def head(self, key: str) -> ObjectInfo | None: ...

    def delete(self, key: str) -> None:
        """Delete the object; deleting a missing key is not an error."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with ``prefix`` (non-empty); return how many."""
        ...

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix``, in key order."""
        ...

    def presigned_get_url(self, key: str, expires_seconds: int = DEFAULT_PRESIGN_SECONDS) -> str | None:
        """A short-lived HTTP GET URL for the object, or None when the store has no URLs."""
        ...

    def check(self) -> None:
        """Raise ObjectStoreUnavailableError unless the bucket or directory is usable."""
        ...


# --- key rules and helpers shared by every store ------------------------------------------------


def validate_key(key: str) -> str:
    """Return ``key`` if it is a well-formed object key, else raise InvalidObjectKeyError."""
    if not key or key.endswith("/"):
        raise InvalidObjectKeyError("object key must be non-empty and must not end with '/'")
    _validate_path_text(key, key.split("/"))
    return key


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` ("" means every object) if well formed, else raise InvalidObjectKeyError."""
    if prefix:
        segments = prefix.split("/")
        _validate_path_text(prefix, segments[:-1] if prefix.endswith("/") else segments)
    return prefix


def _validate_path_text(text: str, segments: list[str]) -> None:
    if len(text.encode()) > MAX_KEY_BYTES:
        raise InvalidObjectKeyError(f"object key is longer than {MAX_KEY_BYTES} bytes")
    if "\\" in text or any(ord(char) < 0x20 or char == "\x7f" for char in text):
        raise InvalidObjectKeyError("object key contains a backslash or a control character")
    # Segments starting with '.' cover '.', '..' and the local store's own temporary files.
    if any(not segment or segment.startswith(".") for segment in segments):
        raise InvalidObjectKeyError("object key has an empty segment or one starting with '.'")


def _validate_expiry(expires_seconds: int) -> None:
    if not 1 <= expires_seconds <= MAX_PRESIGN_SECONDS:
        raise ValueError(f"expires_seconds must be between 1 and {MAX_PRESIGN_SECONDS}")


class _SizeLimitedReader(io.RawIOBase):
    """Reads through to ``source``, counting bytes; raises ObjectTooLargeError past ``max_bytes``."""

    def __init__(self, source: BinaryIO, max_bytes: int | None) -> None:
        super().__init__()
        if max_bytes is not None and max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        self._source = source
        self._max_bytes = max_bytes
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        chunk = self._source.read(len(view))
        if not chunk:
            return 0
        self.bytes_read += len(chunk)
        if self._max_bytes is not None and self.bytes_read > self._max_bytes:
            raise ObjectTooLargeError(self._max_bytes)
        view[: len(chunk)] = chunk
        return len(chunk)

    def chunks(self) -> Iterator[bytes]:
        while chunk := self.read(_COPY_CHUNK_BYTES):
            yield chunk


class _ObjectStoreBase(ABC):
    """What every store shares; each subclass supplies the storage operations."""

    @abstractmethod
    def put_stream(self, key: str, stream: BinaryIO, content_type: str, *, max_bytes: int | None = None) -> int: ...

    @abstractmethod
    def head(self, key: str) -> ObjectInfo | None: ...

    def put_bytes(self, key: str, data: bytes, content_type: str) -> int:
        return self.put_stream(key, io.BytesIO(data), content_type)

    def exists(self, key: str) -> bool:
        return self.head(key) is not None

    def presigned_get_url(self, key: str, expires_seconds: int = DEFAULT_PRESIGN_SECONDS) -> str | None:
        validate_key(key)
        _validate_expiry(expires_seconds)
        return None


# --- in memory ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _StoredObject:
    data: bytes
    last_modified: datetime


class InMemoryObjectStore(_ObjectStoreBase):
    """A thread-safe fake with the stores' exact semantics, for unit tests."""

    def __init__(self) -> None:
        self._objects: dict[str, _StoredObject] = {}
        self._lock = threading.Lock()

    def put_stream(self, key: str, stream: BinaryIO, content_type: str, *, max_bytes: int | None = None) -> int:
        validate_key(key)
        data = b"".join(_SizeLimitedReader(stream, max_bytes).chunks())
        with self._lock:
            self._objects[key] = _StoredObject(data, datetime.now(UTC))
        return len(data)

    def get_bytes(self, key: str) -> bytes:
        validate_key(key)
        with self._lock:
            stored = self._objects.get(key)
        if stored is None:
            raise ObjectNotFoundError(key)
        return stored.data

    def head(self, key: str) -> ObjectInfo | None:
        validate_key(key)
        with self._lock:
            stored = self._objects.get(key)
        return None if stored is None else ObjectInfo(key, len(stored.data), stored.last_modified)

    def delete(self, key: str) -> None:
        validate_key(key)
        with self._lock:
            self._objects.pop(key, None)

    def delete_prefix(self, prefix: str) -> int:
        _require_non_empty_prefix(prefix)
        with self._lock:
            doomed = [key for key in self._objects if key.startswith(prefix)]
            for key in doomed:
                del self._objects[key]
        return len(doomed)

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        with self._lock:
            snapshot = [
                ObjectInfo(key, len(stored.data), stored.last_modified)
                for key, stored in sorted(self._objects.items())
                if key.startswith(prefix)
            ]
        yield from snapshot

    def check(self) -> None:
        """Always usable."""


def _require_non_empty_prefix(prefix: str) -> None:
    # An empty prefix would wipe the whole store: never what a caller of delete_prefix means.
    if not prefix:
        raise InvalidObjectKeyError("delete_prefix needs a non-empty prefix")
    validate_prefix(prefix)


# --- local directory ----------------------------------------------------------------------------


class LocalDirectoryStore(_ObjectStoreBase):
    """Objects as files under ``root`` with the bucket's key layout (``ls -R`` shows what S3 would hold).

    Writes are atomic (a hidden temporary file beside the target, then ``os.replace``), so readers see
    the old object or the new one, never a torn file. Unlike S3, a key cannot be both an object and the
    parent of others ("a" and "a/b"); the storage-key layout never does that.
    """

    _WRITE_ATTEMPTS = 3

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).absolute()

    def put_stream(self, key: str, stream: BinaryIO, content_type: str, *, max_bytes: int | None = None) -> int:
        path = self._path_of(key)
        reader = _SizeLimitedReader(stream, max_bytes)
        try:
            descriptor, temporary = self._create_temporary_beside(path)
            try:
                with os.fdopen(descriptor, "wb") as writer:
                    for chunk in reader.chunks():
                        writer.write(chunk)
                    writer.flush()
                    os.fsync(writer.fileno())
                os.replace(temporary, path)
            except BaseException:
                with suppress(FileNotFoundError):
                    os.unlink(temporary)
                raise
        except OSError as exc:
            raise _os_error("write", exc) from None
        return reader.bytes_read

    def get_bytes(self, key: str) -> bytes:
        path = self._path_of(key)
        try:
            return path.read_bytes()
        except (*_MISSING_PATH_ERRORS, IsADirectoryError):
            raise ObjectNotFoundError(key) from None
        except OSError as exc:
            raise _os_error("read", exc) from None

    def head(self, key: str) -> ObjectInfo | None:
        return self._regular_file_info(key, self._path_of(key))

    def delete(self, key: str) -> None:
        self._delete_file(self._path_of(key))

    def delete_prefix(self, prefix: str) -> int:
        _require_non_empty_prefix(prefix)
        return sum(self._delete_file(self._path_of(info.key)) for info in list(self.list_objects(prefix)))

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        # A prefix is a string prefix, as in S3: "users/u1/ca" matches "users/u1/calls/...".
        start = self.root / prefix.rpartition("/")[0] if "/" in prefix else self.root
        found: list[ObjectInfo] = []
        try:
            for directory, subdirectories, files in os.walk(start, onerror=_raise_unless_missing):
                subdirectories[:] = [name for name in subdirectories if not name.startswith(".")]
                relative = Path(directory).relative_to(self.root).as_posix()
                for name in files:
                    key = name if relative == "." else f"{relative}/{name}"
                    if name.startswith(".") or not key.startswith(prefix):
                        continue
                    info = self._regular_file_info(key, Path(directory, name))
                    if info is not None:
                        found.append(info)
        except OSError as exc:
            raise _os_error("list", exc) from None
        found.sort(key=lambda info: info.key)
        yield from found

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ObjectStoreUnavailableError(f"storage directory cannot be created ({_errno_name(exc)})") from None
        if not self.root.is_dir() or not os.access(self.root, os.W_OK | os.X_OK):
            raise ObjectStoreUnavailableError("storage directory is not a writable directory")

    def _path_of(self, key: str) -> Path:
        validate_key(key)
        path = self.root / key
        # Defence in depth beyond the key rules: a symlink inside the root must not lead outside it.
        if not path.resolve().is_relative_to(self.root.resolve()):
            raise InvalidObjectKeyError("object key resolves outside the storage directory")
        return path

    def _create_temporary_beside(self, path: Path) -> tuple[int, str]:
        # A concurrent delete may prune the freshly made parent directory: make it again and retry.
        for _ in range(self._WRITE_ATTEMPTS):
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            except FileNotFoundError:
                continue
        raise ObjectStoreError("storage directory kept disappearing during a write")

    def _delete_file(self, path: Path) -> int:
        """Delete one object file and the directories it leaves empty; 1 if it existed, else 0."""
        try:
            path.unlink()
        except _MISSING_PATH_ERRORS:
            return 0
        except OSError as exc:
            raise _os_error("delete", exc) from None
        self._prune_empty_parents(path.parent)
        return 1

    def _prune_empty_parents(self, directory: Path) -> None:
        while directory != self.root and directory.is_relative_to(self.root):
            try:
                directory.rmdir()
            except OSError:
                return  # not empty (or already gone): stop pruning
            directory = directory.parent

    @staticmethod
    def _regular_file_info(key: str, path: Path) -> ObjectInfo | None:
        try:
            status = path.lstat()
        except _MISSING_PATH_ERRORS:
            return None
        except OSError as exc:
            raise _os_error("stat", exc) from None
        if not stat.S_ISREG(status.st_mode):
            return None  # directories and symlinks are never objects
        return ObjectInfo(key, status.st_size, datetime.fromtimestamp(status.st_mtime, UTC))


_MISSING_PATH_ERRORS = (FileNotFoundError, NotADirectoryError)


def _raise_unless_missing(error: OSError) -> None:
    if not isinstance(error, _MISSING_PATH_ERRORS):
        raise error


def _os_error(operation: str, exc: OSError) -> ObjectStoreError:
    """A store error for ``exc`` without its path (the path holds the key's file name)."""
    if isinstance(exc, PermissionError):
        return ObjectStoreUnavailableError(f"local storage {operation} denied ({_errno_name(exc)})")
    if isinstance(exc, NotADirectoryError | IsADirectoryError | FileExistsError):
        return ObjectStoreError(f"local storage {operation} failed: the key collides with an existing object path")
    return ObjectStoreError(f"local storage {operation} failed ({_errno_name(exc)})")


def _errno_name(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, "unknown error")


# --- S3-compatible ------------------------------------------------------------------------------


class S3ObjectStore(_ObjectStoreBase):
    """A bucket on AWS S3 or any S3-compatible service (R2, MinIO, B2, Wasabi).

    One boto3 client, shared by every thread (boto3 clients are thread-safe; sessions are not), with a
    connection pool sized for the pipeline's concurrent calls plus multipart upload threads.
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
        multipart_chunk_bytes: int = 8 * _MIB,
        multipart_concurrency: int = 4,
    ) -> None:
        if not bucket:
            raise ValueError("bucket must not be empty")
        if not 1 <= list_page_size <= 1000:
            raise ValueError("list_page_size must be between 1 and 1000")
        if multipart_chunk_bytes < 5 * _MIB:
            raise ValueError("multipart_chunk_bytes must be at least 5 MiB (the S3 minimum part size)")
        self.bucket = bucket
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

    def put_bytes(self, key: str, data: bytes, content_type: str) -> int:
        validate_key(key)
        with _s3_errors("put", key):
            self._client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        return len(data)

    def put_stream(self, key: str, stream: BinaryIO, content_type: str, *, max_bytes: int | None = None) -> int:
        validate_key(key)
        reader = _SizeLimitedReader(stream, max_bytes)
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
        return reader.bytes_read

    def get_bytes(self, key: str) -> bytes:
        validate_key(key)
        with _s3_errors("get", key):
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
            try:
                return bytes(body.read())
            finally:
                body.close()

    def head(self, key: str) -> ObjectInfo | None:
        validate_key(key)
        try:
            with _s3_errors("head", key):
                response = self._client.head_object(Bucket=self.bucket, Key=key)
        except ObjectNotFoundError:
            return None
        return ObjectInfo(key, int(response["ContentLength"]), response["LastModified"].astimezone(UTC))

    def delete(self, key: str) -> None:
        validate_key(key)
        with _s3_errors("delete", key):
            self._client.delete_object(Bucket=self.bucket, Key=key)

    def delete_prefix(self, prefix: str) -> int:
        _require_non_empty_prefix(prefix)
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
        paginator = self._client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self.bucket, Prefix=prefix, PaginationConfig={"PageSize": self._list_page_size}
        )
        with _s3_errors("list", None):
            for page in pages:
                for entry in page.get("Contents", []):
                    yield ObjectInfo(entry["Key"], int(entry["Size"]), entry["LastModified"].astimezone(UTC))

    def presigned_get_url(self, key: str, expires_seconds: int = DEFAULT_PRESIGN_SECONDS) -> str:
        validate_key(key)
        _validate_expiry(expires_seconds)
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


# Network failures that outlived the retries, and missing credentials.
_BOTOCORE_UNAVAILABLE_ERRORS = (
    botocore_errors.ConnectionError,
    botocore_errors.HTTPClientError,
    botocore_errors.NoCredentialsError,
    botocore_errors.PartialCredentialsError,
)


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
        if code in _S3_UNAVAILABLE_CODES:
            raise ObjectStoreUnavailableError(message) from None
        raise ObjectStoreError(message) from None
    except _BOTOCORE_UNAVAILABLE_ERRORS as exc:
        raise ObjectStoreUnavailableError(f"S3 {operation} failed: {type(exc).__name__}") from None
    except botocore_errors.BotoCoreError as exc:
        raise ObjectStoreError(f"S3 {operation} failed: {type(exc).__name__}") from None


# --- factory ------------------------------------------------------------------------------------


def build_object_store(settings: Settings) -> ObjectStore:
    """The store the settings select: a local directory or an S3-compatible bucket."""
    if settings.object_storage_provider is StorageProvider.LOCAL:
        return LocalDirectoryStore(settings.object_storage_local_path)
    if not settings.object_storage_bucket:
        raise ValueError("OBJECT_STORAGE_BUCKET is required when OBJECT_STORAGE_PROVIDER=s3")
    return S3ObjectStore(
        settings.object_storage_bucket,
        endpoint_url=settings.object_storage_endpoint,
        region=settings.object_storage_region,
        access_key_id=_secret_value(settings.object_storage_access_key),
        secret_access_key=_secret_value(settings.object_storage_secret_key),
        path_style=settings.object_storage_path_style_access,
    )


def _secret_value(secret: SecretStr | None) -> str | None:
    return None if secret is None else secret.get_secret_value()
