"""What only the local directory store does: files on disk, atomic writes, confinement to the root."""

from __future__ import annotations

import io
import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from scryon_dagster.adapters.object_store import (
    InvalidObjectKeyError,
    LocalDirectoryStore,
    ObjectNotFoundError,
    ObjectStoreError,
    ObjectStoreUnavailableError,
    ObjectTooLargeError,
    build_object_store,
)
from scryon_dagster.domain.calls import ArtifactType
from scryon_dagster.domain.storage_keys import artifact_key, call_prefix
from scryon_dagster.settings import StorageProvider, load_settings

USER = uuid.uuid4()
CALL = uuid.uuid4()


def all_paths(root: Path) -> list[str]:
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*"))


def test_objects_are_files_with_the_bucket_layout(tmp_path: Path) -> None:
    store = LocalDirectoryStore(tmp_path)
    key = artifact_key(USER, CALL, ArtifactType.NORMALIZED_TRANSCRIPT_JSON)

    store.put_bytes(key, b"{}", "application/json")

    assert (
        tmp_path / "users" / str(USER) / "calls" / str(CALL) / "transcripts" / "normalized.json"
    ).read_bytes() == b"{}"


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    store = LocalDirectoryStore(tmp_path)
    key = artifact_key(USER, CALL, ArtifactType.TEMP_AUDIO, "m4a")

    with pytest.raises(ObjectTooLargeError):
        store.put_stream(key, io.BytesIO(b"a" * 2_000_000), "audio/mp4", max_bytes=1_000_000)

    assert [path for path in all_paths(tmp_path) if Path(path).name.startswith(".")] == []


def test_written_files_are_private_to_the_service(tmp_path: Path) -> None:
    store = LocalDirectoryStore(tmp_path)
    key = artifact_key(USER, CALL, ArtifactType.TEMP_AUDIO, "m4a")

    store.put_bytes(key, b"audio", "audio/mp4")

    assert (tmp_path / key).stat().st_mode & 0o077 == 0


def test_deleting_a_call_leaves_no_empty_directories(tmp_path: Path) -> None:
    store = LocalDirectoryStore(tmp_path)
    other_call = uuid.uuid4()
    for artifact in (ArtifactType.RAW_TRANSCRIPT_JSON, ArtifactType.ANALYSIS_JSON):
        store.put_bytes(artifact_key(USER, CALL, artifact), b"{}", "application/json")
    store.put_bytes(artifact_key(USER, other_call, ArtifactType.ANALYSIS_JSON), b"{}", "application/json")

    store.delete_prefix(call_prefix(USER, CALL))

    assert not (tmp_path / "users" / str(USER) / "calls" / str(CALL)).exists()
    assert (tmp_path / "users" / str(USER) / "calls" / str(other_call)).is_dir()
    store.delete(artifact_key(USER, other_call, ArtifactType.ANALYSIS_JSON))
    assert all_paths(tmp_path) == []


def test_a_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "storage"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"not yours")
    root.mkdir()
    os.symlink(outside, root / "escape")
    store = LocalDirectoryStore(root)

    with pytest.raises(InvalidObjectKeyError):
        store.get_bytes("escape/secret.txt")
    with pytest.raises(InvalidObjectKeyError):
        store.put_bytes("escape/new.txt", b"x", "text/plain")
    assert list(store.list_objects()) == []
    assert sorted(path.name for path in outside.iterdir()) == ["secret.txt"]


def test_hidden_and_symlinked_files_are_not_listed(tmp_path: Path) -> None:
    store = LocalDirectoryStore(tmp_path)
    store.put_bytes("users/a.json", b"x", "application/json")
    (tmp_path / "users" / ".partial.tmp").write_bytes(b"junk")
    os.symlink(tmp_path / "users" / "a.json", tmp_path / "users" / "link.json")

    assert [info.key for info in store.list_objects()] == ["users/a.json"]


def test_a_key_under_an_existing_object_is_a_clear_error(tmp_path: Path) -> None:
    store = LocalDirectoryStore(tmp_path)
    store.put_bytes("users/a", b"x", "text/plain")

    with pytest.raises(ObjectStoreError, match="collides"):
        store.put_bytes("users/a/b", b"y", "text/plain")
    assert store.get_bytes("users/a") == b"x"


def test_check_creates_a_missing_root(tmp_path: Path) -> None:
    store = LocalDirectoryStore(tmp_path / "var" / "storage")

    store.check()

    assert (tmp_path / "var" / "storage").is_dir()


def test_check_fails_when_the_root_cannot_exist(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")

    with pytest.raises(ObjectStoreUnavailableError):
        LocalDirectoryStore(blocker / "storage").check()
    with pytest.raises(ObjectStoreUnavailableError):
        LocalDirectoryStore(blocker).check()


def test_build_object_store_makes_a_local_store(tmp_path: Path) -> None:
    settings = load_settings(
        object_storage_provider=StorageProvider.LOCAL, object_storage_local_path=tmp_path / "objects"
    )

    store = build_object_store(settings)

    assert isinstance(store, LocalDirectoryStore)
    assert store.root == (tmp_path / "objects").absolute()
    assert store.retry_seconds == settings.object_storage_retry_seconds
    store.put_bytes("users/x.json", b"{}", "application/json")
    assert (tmp_path / "objects" / "users" / "x.json").read_bytes() == b"{}"


AUDIO_KEY = artifact_key(USER, CALL, ArtifactType.TEMP_AUDIO, "m4a")
OTHER_KEY = artifact_key(USER, CALL, ArtifactType.RAW_TRANSCRIPT_JSON)
EVERY_OPERATION: dict[str, Callable[[LocalDirectoryStore], object]] = {
    "get": lambda store: store.get_bytes(AUDIO_KEY),
    "get a missing key": lambda store: store.get_bytes(OTHER_KEY),
    "head": lambda store: store.head(AUDIO_KEY),
    "exists": lambda store: store.exists(OTHER_KEY),
    "delete": lambda store: store.delete(OTHER_KEY),
    "list": lambda store: list(store.list_objects()),
    "put": lambda store: store.put_bytes(OTHER_KEY, b"{}", "application/json"),
}


def stored_then(tmp_path: Path, outage: Callable[[Path], None]) -> tuple[LocalDirectoryStore, Path]:
    """A store holding TEMP_AUDIO whose root then suffers ``outage``."""
    root = tmp_path / "storage"
    store = LocalDirectoryStore(root)
    store.put_bytes(AUDIO_KEY, b"audio", "audio/mp4")
    outage(root)
    return store, root


def volume_gone(root: Path) -> None:
    root.rename(root.with_name("storage.away"))


def volume_replaced_by_a_file(root: Path) -> None:
    volume_gone(root)
    root.write_bytes(b"")


@pytest.mark.parametrize("outage", [volume_gone, volume_replaced_by_a_file])
@pytest.mark.parametrize("operation", EVERY_OPERATION.values(), ids=EVERY_OPERATION.keys())
def test_a_missing_root_is_unavailable_not_an_empty_store(
    tmp_path: Path, outage: Callable[[Path], None], operation: Callable[[LocalDirectoryStore], object]
) -> None:
    store, root = stored_then(tmp_path, outage)

    with pytest.raises(ObjectStoreUnavailableError):
        operation(store)
    assert not root.is_dir()  # a write never recreates the root in place of the volume


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads through any permission")
@pytest.mark.parametrize("operation", EVERY_OPERATION.values(), ids=EVERY_OPERATION.keys())
def test_an_unreadable_root_is_unavailable(tmp_path: Path, operation: Callable[[LocalDirectoryStore], object]) -> None:
    store, root = stored_then(tmp_path, lambda root: root.chmod(0))
    try:
        with pytest.raises(ObjectStoreUnavailableError):
            operation(store)
    finally:
        root.chmod(0o700)


def test_a_missing_key_under_a_present_root_is_not_found(tmp_path: Path) -> None:
    store, _ = stored_then(tmp_path, lambda root: None)

    with pytest.raises(ObjectNotFoundError):
        store.get_bytes(OTHER_KEY)
    assert store.head(OTHER_KEY) is None
    store.delete(OTHER_KEY)


def test_reads_and_writes_ride_out_a_volume_that_comes_back_within_the_window(tmp_path: Path) -> None:
    store, root = stored_then(tmp_path, volume_gone)
    store.retry_seconds = 20

    threading.Timer(1.0, root.with_name("storage.away").rename, args=(root,)).start()
    assert store.get_bytes(AUDIO_KEY) == b"audio"

    volume_gone(root)
    threading.Timer(1.0, root.with_name("storage.away").rename, args=(root,)).start()
    store.put_bytes(OTHER_KEY, b"{}", "application/json")
    assert (root / OTHER_KEY).read_bytes() == b"{}"


def test_a_volume_gone_longer_than_the_window_is_unavailable(tmp_path: Path) -> None:
    store, _ = stored_then(tmp_path, volume_gone)
    store.retry_seconds = 0.5

    with pytest.raises(ObjectStoreUnavailableError, match=r"still failing after 0\.5 s"):
        store.get_bytes(AUDIO_KEY)
