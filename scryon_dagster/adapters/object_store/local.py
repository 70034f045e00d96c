"""The local-directory store: objects as files, written atomically."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from scryon_dagster.adapters.object_store.base import (
    COPY_CHUNK_BYTES,
    ObjectInfo,
    ObjectStoreBase,
    SizeLimitedReader,
    open_private_file,
    require_non_empty_prefix,
    validate_key,
    validate_prefix,
)
from scryon_dagster.adapters.object_store.errors import (
    InvalidObjectKeyError,
    ObjectNotFoundError,
    ObjectStoreError,
    ObjectStoreUnavailableError,
)
from scryon_dagster.adapters.object_store.retry import retried_method


class LocalDirectoryStore(ObjectStoreBase):
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

    def _write_file(self, path: Path, reader: SizeLimitedReader) -> None:
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

    @retried_method
    def get_bytes(self, key: str) -> bytes:
        path = self._path_of(key)
        try:
            return path.read_bytes()
        except (*_MISSING_PATH_ERRORS, IsADirectoryError):
            self._require_root("read")
            raise ObjectNotFoundError(key) from None
        except OSError as exc:
            raise _os_error("read", exc) from None

    @retried_method
    def download_to(self, key: str, path: Path) -> int:
        source_path = self._path_of(key)
        try:
            with source_path.open("rb") as source, open_private_file(path) as target:
                shutil.copyfileobj(source, target, COPY_CHUNK_BYTES)
                return target.tell()
        except (*_MISSING_PATH_ERRORS, IsADirectoryError):
            self._require_root("read")
            raise ObjectNotFoundError(key) from None
        except OSError as exc:
            raise _os_error("read", exc) from None

    @retried_method
    def head(self, key: str) -> ObjectInfo | None:
        return self._regular_file_info(key, self._path_of(key))

    @retried_method
    def delete(self, key: str) -> None:
        self._delete_file(self._path_of(key))

    def delete_prefix(self, prefix: str) -> int:
        require_non_empty_prefix(prefix)
        return sum(self._delete_file(self._path_of(info.key)) for info in list(self.list_objects(prefix)))

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        yield from self._listing(prefix)

    @retried_method
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
