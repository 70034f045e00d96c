"""One behaviour, three stores: every test here runs against the in-memory fake, a local directory
and a real S3-compatible server over HTTP (moto on loopback), and must pass identically."""

from __future__ import annotations

import io
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scryon_dagster.adapters.object_store import (
    InMemoryObjectStore,
    InvalidObjectKeyError,
    LocalDirectoryStore,
    ObjectNotFoundError,
    ObjectStore,
    ObjectTooLargeError,
    S3ObjectStore,
)
from scryon_dagster.domain.calls import ArtifactType
from scryon_dagster.domain.storage_keys import artifact_key, call_prefix
from tests.fixtures.s3 import S3_TEST_ACCESS_KEY, S3_TEST_REGION, S3_TEST_SECRET_KEY

USER = uuid.UUID("11111111-1111-4111-8111-111111111111")
CALL = uuid.UUID("22222222-2222-4222-8222-222222222222")
OTHER_CALL = uuid.UUID("33333333-3333-4333-8333-333333333333")
RAW = artifact_key(USER, CALL, ArtifactType.RAW_TRANSCRIPT_JSON)
NORMALIZED = artifact_key(USER, CALL, ArtifactType.NORMALIZED_TRANSCRIPT_JSON)
TEMP_AUDIO = artifact_key(USER, CALL, ArtifactType.TEMP_AUDIO, "m4a")
OTHER_CALL_RAW = artifact_key(USER, OTHER_CALL, ArtifactType.RAW_TRANSCRIPT_JSON)
JSON = "application/json"


@pytest.fixture(params=["memory", "local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "memory":
        return InMemoryObjectStore()
    if request.param == "local":
        return LocalDirectoryStore(tmp_path / "storage")
    # A page size of 2 makes every listing below cross several pages.
    return S3ObjectStore(
        request.getfixturevalue("s3_bucket"),
        endpoint_url=request.getfixturevalue("s3_endpoint_url"),
        region=S3_TEST_REGION,
        access_key_id=S3_TEST_ACCESS_KEY,
        secret_access_key=S3_TEST_SECRET_KEY,
        list_page_size=2,
    )


def test_put_then_get_returns_the_same_bytes_and_size(store: ObjectStore) -> None:
    payload = b'{"text": "hello"}'

    assert store.put_bytes(RAW, payload, JSON) == len(payload)
    assert store.get_bytes(RAW) == payload
    assert store.exists(RAW)


def test_head_reports_size_and_an_aware_utc_time(store: ObjectStore) -> None:
    store.put_bytes(RAW, b"12345", JSON)

    info = store.head(RAW)

    assert info is not None
    assert (info.key, info.size) == (RAW, 5)
    assert info.last_modified.tzinfo is not None
    assert info.last_modified.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - info.last_modified) < timedelta(hours=1)


def test_an_empty_object_is_an_object(store: ObjectStore) -> None:
    assert store.put_bytes(RAW, b"", JSON) == 0

    assert store.get_bytes(RAW) == b""
    info = store.head(RAW)
    assert info is not None
    assert info.size == 0


def test_a_rewrite_replaces_the_object_in_place(store: ObjectStore) -> None:
    store.put_bytes(RAW, b"first version, longer", JSON)
    store.put_bytes(RAW, b"second", JSON)

    assert store.get_bytes(RAW) == b"second"
    assert [info.key for info in store.list_objects(call_prefix(USER, CALL))] == [RAW]


def test_a_missing_key_raises_not_found_without_the_file_name(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFoundError) as raised:
        store.get_bytes(TEMP_AUDIO)

    assert raised.value.key == TEMP_AUDIO
    assert str(CALL) in str(raised.value)
    assert "Jane" not in str(raised.value)
    assert "5551234567" not in str(raised.value)
    assert store.head(TEMP_AUDIO) is None
    assert not store.exists(TEMP_AUDIO)


def test_a_directory_like_prefix_is_not_an_object(store: ObjectStore) -> None:
    store.put_bytes(RAW, b"x", JSON)

    directory_key = call_prefix(USER, CALL).rstrip("/")
    assert store.head(directory_key) is None
    with pytest.raises(ObjectNotFoundError):
        store.get_bytes(directory_key)


def test_delete_is_idempotent(store: ObjectStore) -> None:
    store.put_bytes(RAW, b"x", JSON)

    store.delete(RAW)
    store.delete(RAW)
    store.delete(NORMALIZED)

    assert not store.exists(RAW)


def test_delete_prefix_removes_one_call_and_keeps_the_others(store: ObjectStore) -> None:
    for key in (RAW, NORMALIZED, TEMP_AUDIO, OTHER_CALL_RAW):
        store.put_bytes(key, b"x", JSON)

    assert store.delete_prefix(call_prefix(USER, CALL)) == 3
    assert store.delete_prefix(call_prefix(USER, CALL)) == 0
    assert [info.key for info in store.list_objects()] == [OTHER_CALL_RAW]


def test_delete_prefix_refuses_the_empty_prefix(store: ObjectStore) -> None:
    store.put_bytes(RAW, b"x", JSON)

    with pytest.raises(InvalidObjectKeyError):
        store.delete_prefix("")
    assert store.exists(RAW)


def test_listing_is_sorted_paginated_and_uses_string_prefixes(store: ObjectStore) -> None:
    keys = [f"users/{USER}/calls/{CALL}/part/{index:02d}.json" for index in range(7)]
    for key in reversed(keys):
        store.put_bytes(key, key.encode(), JSON)
    store.put_bytes(OTHER_CALL_RAW, b"x", JSON)
    archive = f"users/{USER}/calls-archive/x.json"
    store.put_bytes(archive, b"x", JSON)

    listed = list(store.list_objects(call_prefix(USER, CALL)))

    assert [info.key for info in listed] == keys
    assert [info.size for info in listed] == [len(key) for key in keys]
    assert len(list(store.list_objects(f"users/{USER}/calls"))) == 9
    assert len(list(store.list_objects(f"users/{USER}/calls/"))) == 8
    assert len(list(store.list_objects(f"users/{USER}/calls/{CALL}/part/0"))) == 7
    assert list(store.list_objects(f"users/{uuid.uuid4()}/")) == []
    assert [info.key for info in store.list_objects()] == sorted([*keys, OTHER_CALL_RAW, archive])


def test_listing_below_an_object_finds_nothing(store: ObjectStore) -> None:
    store.put_bytes("users/a", b"x", JSON)

    assert list(store.list_objects("users/a/")) == []
    assert [info.key for info in store.list_objects("users/a")] == ["users/a"]


def test_put_stream_stores_a_stream_and_returns_its_size(store: ObjectStore) -> None:
    payload = bytes(range(256)) * 12_000  # ~3 MB, several read chunks

    assert store.put_stream(TEMP_AUDIO, io.BytesIO(payload), "audio/mp4", max_bytes=len(payload)) == len(payload)
    assert store.get_bytes(TEMP_AUDIO) == payload


def test_put_stream_over_the_limit_leaves_nothing_behind(store: ObjectStore) -> None:
    with pytest.raises(ObjectTooLargeError):
        store.put_stream(TEMP_AUDIO, io.BytesIO(b"a" * 10_001), "audio/mp4", max_bytes=10_000)

    assert not store.exists(TEMP_AUDIO)
    assert list(store.list_objects()) == []


def test_put_stream_over_the_limit_keeps_the_previous_object(store: ObjectStore) -> None:
    store.put_bytes(TEMP_AUDIO, b"previous", "audio/mp4")

    with pytest.raises(ObjectTooLargeError):
        store.put_stream(TEMP_AUDIO, io.BytesIO(b"a" * 101), "audio/mp4", max_bytes=100)

    assert store.get_bytes(TEMP_AUDIO) == b"previous"
    assert [info.key for info in store.list_objects()] == [TEMP_AUDIO]


@pytest.mark.parametrize(
    "bad_key",
    [
        "",
        "/users/x",
        "users/x/",
        "users//x",
        "users/../x",
        "../x",
        "users/./x",
        "users/.hidden",
        "users\\x",
        "users/x\x00y",
        "users/x\ny",
        "a/" + "b" * 1030,
    ],
)
def test_malformed_keys_are_refused_everywhere(store: ObjectStore, bad_key: str) -> None:
    with pytest.raises(InvalidObjectKeyError):
        store.put_bytes(bad_key, b"x", JSON)
    with pytest.raises(InvalidObjectKeyError):
        store.get_bytes(bad_key)
    with pytest.raises(InvalidObjectKeyError):
        store.head(bad_key)
    with pytest.raises(InvalidObjectKeyError):
        store.delete(bad_key)


@pytest.mark.parametrize("bad_prefix", ["/", "../", "users/../", "users//", "users/.tmp"])
def test_malformed_prefixes_are_refused(store: ObjectStore, bad_prefix: str) -> None:
    with pytest.raises(InvalidObjectKeyError):
        list(store.list_objects(bad_prefix))
    with pytest.raises(InvalidObjectKeyError):
        store.delete_prefix(bad_prefix)


def test_concurrent_writers_of_one_key_never_tear_the_object(store: ObjectStore) -> None:
    versions = [bytes([index]) * 200_000 for index in range(8)]
    barrier = threading.Barrier(len(versions))

    def write(payload: bytes) -> None:
        barrier.wait()
        store.put_stream(RAW, io.BytesIO(payload), JSON)

    threads = [threading.Thread(target=write, args=(payload,)) for payload in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert store.get_bytes(RAW) in versions
    assert [info.key for info in store.list_objects()] == [RAW]


def test_check_passes_on_a_usable_store(store: ObjectStore) -> None:
    store.check()


def test_download_to_streams_the_object_into_a_private_file(store: ObjectStore, tmp_path: Path) -> None:
    payload = bytes(range(256)) * 9_000  # past one multipart chunk of nothing, but several copy chunks
    store.put_bytes(TEMP_AUDIO, payload, "audio/mp4")
    target = tmp_path / "downloaded"
    target.write_bytes(b"an older, longer file " * 200_000)

    assert store.download_to(TEMP_AUDIO, target) == len(payload)

    assert target.read_bytes() == payload
    assert target.stat().st_mode & 0o777 == 0o600


def test_download_to_of_a_missing_key_raises_not_found(store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFoundError):
        store.download_to(TEMP_AUDIO, tmp_path / "downloaded")
