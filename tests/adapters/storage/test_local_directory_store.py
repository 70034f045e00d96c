"""What only the local directory store does: files on disk, atomic writes, confinement to the root."""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path

import pytest

from scryon_dagster.adapters.object_store import (
    InvalidObjectKeyError,
    LocalDirectoryStore,
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
    store.put_bytes("users/x.json", b"{}", "application/json")
    assert (tmp_path / "objects" / "users" / "x.json").read_bytes() == b"{}"
