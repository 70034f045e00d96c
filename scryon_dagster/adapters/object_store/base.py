"""The store interface and what every store shares: key rules, the size-limited reader, the base class."""

from __future__ import annotations

import io
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from scryon_dagster.adapters.object_store.errors import InvalidObjectKeyError, ObjectTooLargeError
from scryon_dagster.adapters.object_store.retry import retry_transient

MAX_KEY_BYTES = 1024
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
DEFAULT_PRESIGN_SECONDS = 300
MIB = 1024 * 1024
COPY_CHUNK_BYTES = MIB


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

    def download_to(self, key: str, path: Path) -> int:
        """Stream the object into a new file at ``path`` (mode 0600, replacing any file there) without holding
        it in memory; return its size. Raises ObjectNotFoundError."""
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


def validate_expiry(expires_seconds: int) -> None:
    if not 1 <= expires_seconds <= MAX_PRESIGN_SECONDS:
        raise ValueError(f"expires_seconds must be between 1 and {MAX_PRESIGN_SECONDS}")


def open_private_file(path: Path) -> BinaryIO:
    """``path`` opened for writing from empty, readable by its owner only: downloads can be raw audio."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # the mode above applies only to a new file
    return open(fd, "wb")


class SizeLimitedReader(io.RawIOBase):
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
        while chunk := self.read(COPY_CHUNK_BYTES):
            yield chunk


class ObjectStoreBase(ABC):
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
        self, stream: BinaryIO, max_bytes: int | None, write: Callable[[SizeLimitedReader], None]
    ) -> int:
        """``write`` the stream through a size-limited reader; return the bytes stored.

        A seekable stream is rewound for each retry. Any other stream cannot be replayed: its first
        failure is final (ObjectStoreUnavailableError when the store was unavailable).
        """
        start = stream.tell() if stream.seekable() else None

        def attempt() -> int:
            if start is not None:
                stream.seek(start)
            reader = SizeLimitedReader(stream, max_bytes)
            write(reader)
            return reader.bytes_read

        return retry_transient("put_stream", self.retry_seconds if start is not None else 0, attempt)

    def exists(self, key: str) -> bool:
        return self.head(key) is not None

    def presigned_get_url(self, key: str, expires_seconds: int = DEFAULT_PRESIGN_SECONDS) -> str | None:
        validate_key(key)
        validate_expiry(expires_seconds)
        return None


def require_non_empty_prefix(prefix: str) -> None:
    # An empty prefix would wipe the whole store: never what a caller of delete_prefix means.
    if not prefix:
        raise InvalidObjectKeyError("delete_prefix needs a non-empty prefix")
    validate_prefix(prefix)
