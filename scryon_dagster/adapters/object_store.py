"""Object storage: S3-compatible buckets, a local directory, and an in-memory fake, all alike.

The three stores accept the same keys, return the same results and raise the same errors, so code
and tests written against one hold for the others. Keys come from ``domain.storage_keys``; this module
only checks that a key is well formed (no empty, ``.`` or ``..`` segments, no leading ``/``).

Error messages never carry the file-name part of a key: TEMP_AUDIO keys end with the uploaded file
name, which can hold a contact's name or number. The exception's ``key`` attribute keeps it whole.

Transient trouble (a network outage, 5xx, throttling, a storage volume that is briefly gone) is retried
with bounded exponential backoff for up to ``retry_seconds`` (``OBJECT_STORAGE_RETRY_SECONDS``), then
raised as ObjectStoreUnavailableError. ObjectNotFoundError means the object is truly absent, never
that the bucket or directory could not be reached.
"""

from __future__ import annotations

import errno
import functools
import io
import logging
import os
import re
import stat
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Concatenate, ParamSpec, Protocol, TypeVar

import boto3
from boto3.s3.transfer import TransferConfig
from botocore import exceptions as botocore_errors
from botocore.config import Config
from pydantic import SecretStr
from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception,
    stop_before_delay,
    wait_exponential_jitter,
)

from scryon_dagster.settings import Settings, StorageProvider

logger = logging.getLogger(__name__)

MAX_KEY_BYTES = 1024
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
DEFAULT_PRESIGN_SECONDS = 300
_MIB = 1024 * 1024
_COPY_CHUNK_BYTES = _MIB
_S3_MAX_DELETE_BATCH = 1000
_LOGGABLE_SEGMENT = re.compile(r"[a-z]+(\.[a-z]+)?|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
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
# Backoff between attempts: 0.2 s doubling (plus up to 0.2 s of jitter), at most 2 s, so a store back
# from an outage is used again within about two seconds.
_RETRY_FIRST_WAIT_SECONDS = 0.2
_RETRY_MAX_WAIT_SECONDS = 2.0


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
    """The bucket or directory cannot be reached or used (network, credentials, permissions).

    ``transient`` is false when only a configuration fix helps (bad credentials, a missing bucket):
    stores retry only transient unavailability.
    """

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


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


_T = TypeVar("_T")
_P = ParamSpec("_P")


def _is_transient(error: BaseException) -> bool:
    return isinstance(error, ObjectStoreUnavailableError) and error.transient


def _log_retry(operation: str, state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    wait = state.next_action.sleep if state.next_action is not None else 0.0
    # One warning per operation, the further retries quieter: an outage would otherwise repeat a line
    # per call and retry. Store errors carry codes and statuses only: no key names, no URLs.
    level = logging.WARNING if state.attempt_number == 1 else logging.INFO
    logger.log(
        level, "object storage %s unavailable (%s); retry %d in %.1f s", operation, error, state.attempt_number, wait
    )


def _retry_transient(operation: str, window_seconds: float, attempt: Callable[[], _T]) -> _T:
    """Run ``attempt``; retry transient unavailability with backoff until ``window_seconds`` have passed."""
    if window_seconds <= 0:
        return attempt()
    retrying = Retrying(
        retry=retry_if_exception(_is_transient),
        # No attempt starts past the window: the whole call lasts at most the window plus one attempt.
        stop=stop_before_delay(window_seconds),
        wait=wait_exponential_jitter(
            multiplier=_RETRY_FIRST_WAIT_SECONDS, max=_RETRY_MAX_WAIT_SECONDS, jitter=_RETRY_FIRST_WAIT_SECONDS
        ),
        before_sleep=functools.partial(_log_retry, operation),
    )
    try:
        return retrying(attempt)
    except RetryError as exhausted:
        raise ObjectStoreUnavailableError(
            f"{exhausted.last_attempt.exception()} (still failing after {window_seconds:g} s of retries)"
        ) from None


class _RetryingStore(Protocol):
    retry_seconds: float


_StoreT = TypeVar("_StoreT", bound=_RetryingStore)


def _retried(method: Callable[Concatenate[_StoreT, _P], _T]) -> Callable[Concatenate[_StoreT, _P], _T]:
    """Retry a store operation on transient unavailability within the store's ``retry_seconds``."""

    @functools.wraps(method)
    def retried(store: _StoreT, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        return _retry_transient(method.__name__, store.retry_seconds, lambda: method(store, *args, **kwargs))

    return retried


class _ObjectStoreBase(ABC):
    """What every store shares; each subclass supplies the storage operations."""

    retry_seconds: float = 0.0
    """How long transient unavailability is retried before ObjectStoreUnavailableError; 0: not at all."""

    @abstractmethod
    def put_stream(self, key: str, stream: BinaryIO, content_type: str, *, max_bytes: int | None = None) -> int: ...

    @abstractmethod
    def head(self, key: str) -> ObjectInfo | None: ...

    def put_bytes(self, key: str, data: bytes, content_type: str) -> int:
        return self.put_stream(key, io.BytesIO(data), content_type)

    def _put_replayable(
        self, stream: BinaryIO, max_bytes: int | None, write: Callable[[_SizeLimitedReader], None]
    ) -> int:
        """``write`` the stream through a size-limited reader; return the bytes stored.

        A seekable stream is rewound for each retry. Any other stream cannot be replayed: its first
        failure is final (ObjectStoreUnavailableError when the store was unavailable).
        """
        start = stream.tell() if stream.seekable() else None

        def attempt() -> int:
            if start is not None:
                stream.seek(start)
            reader = _SizeLimitedReader(stream, max_bytes)
            write(reader)
            return reader.bytes_read

        return _retry_transient("put_stream", self.retry_seconds if start is not None else 0, attempt)

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

    The root is made with the store. Once made, a root that is missing or unreadable is storage that
    is unavailable (an unmounted or moved volume), not a store without objects: reads raise
    ObjectStoreUnavailableError rather than ObjectNotFoundError, and writes never recreate the root.
    """

    _WRITE_ATTEMPTS = 3

    def __init__(self, root: Path | str, *, retry_seconds: float = 0.0) -> None:
        self.root = Path(root).absolute()
        self.retry_seconds = retry_seconds
        # Best effort: a root that cannot be made now shows as unavailable on first use.
        with suppress(OSError):
            self.root.mkdir(parents=True, exist_ok=True)

    def put_stream(self, key: str, stream: BinaryIO, content_type: str, *, max_bytes: int | None = None) -> int:
        path = self._path_of(key)
        return self._put_replayable(stream, max_bytes, lambda reader: self._write_file(path, reader))

    def _write_file(self, path: Path, reader: _SizeLimitedReader) -> None:
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

    @_retried
    def get_bytes(self, key: str) -> bytes:
        path = self._path_of(key)
        try:
            return path.read_bytes()
        except (*_MISSING_PATH_ERRORS, IsADirectoryError):
            self._require_root("read")
            raise ObjectNotFoundError(key) from None
        except OSError as exc:
            raise _os_error("read", exc) from None

    @_retried
    def head(self, key: str) -> ObjectInfo | None:
        return self._regular_file_info(key, self._path_of(key))

    @_retried
    def delete(self, key: str) -> None:
        self._delete_file(self._path_of(key))

    def delete_prefix(self, prefix: str) -> int:
        _require_non_empty_prefix(prefix)
        return sum(self._delete_file(self._path_of(info.key)) for info in list(self.list_objects(prefix)))

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        yield from self._listing(prefix)

    @_retried
    def _listing(self, prefix: str) -> list[ObjectInfo]:
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
        # os.walk reports nothing for a missing root: that is no listing, not an empty one.
        self._require_root("list")
        found.sort(key=lambda info: info.key)
        return found

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

    def _require_root(self, operation: str) -> None:
        """Raise ObjectStoreUnavailableError unless the root is a directory (asked when a path is missing)."""
        try:
            is_directory = stat.S_ISDIR(os.stat(self.root).st_mode)
        except OSError as exc:
            raise ObjectStoreUnavailableError(
                f"local storage {operation} failed: storage directory unreachable ({_errno_name(exc)})"
            ) from None
        if not is_directory:
            raise ObjectStoreUnavailableError(f"local storage {operation} failed: storage directory is missing")

    def _create_temporary_beside(self, path: Path) -> tuple[int, str]:
        # A concurrent delete may prune the freshly made parent directory: make it again and retry.
        for _ in range(self._WRITE_ATTEMPTS):
            self._require_root("write")
            try:
                self._make_directories_below_root(path.parent)
                return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            except FileNotFoundError:
                continue
        self._require_root("write")
        raise ObjectStoreError("storage directory kept disappearing during a write")

    def _make_directories_below_root(self, directory: Path) -> None:
        # One level at a time from the root, never the root itself: if the volume went away meanwhile,
        # this fails instead of writing to whatever now sits at the root's path.
        current = self.root
        for name in directory.relative_to(self.root).parts:
            current = current / name
            with suppress(FileExistsError):
                current.mkdir()

    def _delete_file(self, path: Path) -> int:
        """Delete one object file and the directories it leaves empty; 1 if it existed, else 0."""
        try:
            path.unlink()
        except _MISSING_PATH_ERRORS:
            self._require_root("delete")
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

    def _regular_file_info(self, key: str, path: Path) -> ObjectInfo | None:
        try:
            status = path.lstat()
        except _MISSING_PATH_ERRORS:
            self._require_root("stat")
            return None
        except OSError as exc:
            raise _os_error("stat", exc) from None
        if not stat.S_ISREG(status.st_mode):
            return None  # directories and symlinks are never objects
        return ObjectInfo(key, status.st_size, datetime.fromtimestamp(status.st_mtime, UTC))


_MISSING_PATH_ERRORS = (FileNotFoundError, NotADirectoryError)
# Errors of a volume that is failing or gone for now (I/O, a stale or disconnected network mount, a
# full or read-only file system) rather than of one object.
_UNAVAILABLE_ERRNOS = frozenset(
    {
        errno.EIO,
        errno.ESTALE,
        errno.ENOTCONN,
        errno.ETIMEDOUT,
        errno.EAGAIN,
        errno.EBUSY,
        errno.ENODEV,
        errno.ENXIO,
        errno.EHOSTDOWN,
        errno.EHOSTUNREACH,
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EROFS,
    }
)


def _raise_unless_missing(error: OSError) -> None:
    if not isinstance(error, _MISSING_PATH_ERRORS):
        raise error


def _os_error(operation: str, exc: OSError) -> ObjectStoreError:
    """A store error for ``exc`` without its path (the path holds the key's file name)."""
    if isinstance(exc, PermissionError):
        # Transient as far as we can tell: a volume being remounted or its permissions being fixed.
        return ObjectStoreUnavailableError(f"local storage {operation} denied ({_errno_name(exc)})")
    if exc.errno in _UNAVAILABLE_ERRNOS:
        return ObjectStoreUnavailableError(f"local storage {operation} failed ({_errno_name(exc)})")
    if isinstance(exc, NotADirectoryError | IsADirectoryError | FileExistsError):
        return ObjectStoreError(f"local storage {operation} failed: the key collides with an existing object path")
    return ObjectStoreError(f"local storage {operation} failed ({_errno_name(exc)})")


def _errno_name(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, "unknown error")


# --- S3-compatible ------------------------------------------------------------------------------


class S3ObjectStore(_ObjectStoreBase):
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
        multipart_chunk_bytes: int = 8 * _MIB,
        multipart_concurrency: int = 4,
        retry_seconds: float = 0.0,
    ) -> None:
        if not bucket:
            raise ValueError("bucket must not be empty")
        if not 1 <= list_page_size <= 1000:
            raise ValueError("list_page_size must be between 1 and 1000")
        if multipart_chunk_bytes < 5 * _MIB:
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

    @_retried
    def put_bytes(self, key: str, data: bytes, content_type: str) -> int:
        validate_key(key)
        with _s3_errors("put", key):
            self._client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        return len(data)

    def put_stream(self, key: str, stream: BinaryIO, content_type: str, *, max_bytes: int | None = None) -> int:
        validate_key(key)
        return self._put_replayable(stream, max_bytes, lambda reader: self._upload(key, reader, content_type))

    def _upload(self, key: str, reader: _SizeLimitedReader, content_type: str) -> None:
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

    @_retried
    def get_bytes(self, key: str) -> bytes:
        validate_key(key)
        with _s3_errors("get", key):
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
            try:
                return bytes(body.read())
            finally:
                body.close()

    @_retried
    def head(self, key: str) -> ObjectInfo | None:
        validate_key(key)
        try:
            with _s3_errors("head", key):
                response = self._client.head_object(Bucket=self.bucket, Key=key)
        except ObjectNotFoundError:
            return None
        return ObjectInfo(key, int(response["ContentLength"]), response["LastModified"].astimezone(UTC))

    @_retried
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
        continuation: dict[str, str] = {}
        while True:
            # Page by page, each retried on its own: a retry never repeats what was already yielded.
            page = self._list_page(prefix, continuation)
            for entry in page.get("Contents", []):
                yield ObjectInfo(entry["Key"], int(entry["Size"]), entry["LastModified"].astimezone(UTC))
            if not page.get("IsTruncated"):
                return
            continuation = {"ContinuationToken": page["NextContinuationToken"]}

    @_retried
    def _list_page(self, prefix: str, continuation: dict[str, str]) -> dict[str, Any]:
        with _s3_errors("list", None):
            page: dict[str, Any] = self._client.list_objects_v2(
                Bucket=self.bucket, Prefix=prefix, MaxKeys=self._list_page_size, **continuation
            )
        return page

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

    @_retried
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


# --- factory ------------------------------------------------------------------------------------


def build_object_store(settings: Settings) -> ObjectStore:
    """The store the settings select: a local directory or an S3-compatible bucket."""
    retry_seconds = settings.object_storage_retry_seconds
    if settings.object_storage_provider is StorageProvider.LOCAL:
        return LocalDirectoryStore(settings.object_storage_local_path, retry_seconds=retry_seconds)
    if not settings.object_storage_bucket:
        raise ValueError("OBJECT_STORAGE_BUCKET is required when OBJECT_STORAGE_PROVIDER=s3")
    return S3ObjectStore(
        settings.object_storage_bucket,
        endpoint_url=settings.object_storage_endpoint,
        region=settings.object_storage_region,
        access_key_id=_secret_value(settings.object_storage_access_key),
        secret_access_key=_secret_value(settings.object_storage_secret_key),
        path_style=settings.object_storage_path_style_access,
        retry_seconds=retry_seconds,
    )


def _secret_value(secret: SecretStr | None) -> str | None:
    return None if secret is None else secret.get_secret_value()
