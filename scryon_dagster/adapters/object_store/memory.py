"""The in-memory fake: the stores' exact semantics, for unit tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from scryon_dagster.adapters.object_store.base import (
    ObjectInfo,
    ObjectStoreBase,
    SizeLimitedReader,
    open_private_file,
    require_non_empty_prefix,
    validate_key,
    validate_prefix,
)
from scryon_dagster.adapters.object_store.errors import ObjectNotFoundError


@dataclass(frozen=True, slots=True)
class _StoredObject:
    data: bytes
    last_modified: datetime


class InMemoryObjectStore(ObjectStoreBase):
    """A thread-safe fake with the stores' exact semantics, for unit tests."""

    def __init__(self) -> None:
        self._objects: dict[str, _StoredObject] = {}
        self._lock = threading.Lock()

    def put_stream(self, key: str, stream: BinaryIO, content_type: str, *, max_bytes: int | None = None) -> int:
        validate_key(key)
        data = b"".join(SizeLimitedReader(stream, max_bytes).chunks())
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

    def download_to(self, key: str, path: Path) -> int:
        data = self.get_bytes(key)
        with open_private_file(path) as file:
            file.write(data)
        return len(data)

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
        require_non_empty_prefix(prefix)
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
