"""What only the S3 store does: multipart uploads, presigned URLs, reachability, outages, settings wiring."""

from __future__ import annotations

import io
import time
import uuid
from typing import Any

import httpx
import pytest
from botocore.stub import Stubber
from pydantic import SecretStr

from scryon_dagster.adapters.object_store import (
    ObjectNotFoundError,
    ObjectStoreUnavailableError,
    ObjectTooLargeError,
    S3ObjectStore,
    build_object_store,
)
from scryon_dagster.settings import StorageProvider, load_settings
from tests.fixtures.s3 import (
    S3_TEST_ACCESS_KEY,
    S3_TEST_REGION,
    S3_TEST_SECRET_KEY,
    RestartableS3Server,
    free_port,
)

MIB = 1024 * 1024
KEY = f"users/{uuid.uuid4()}/calls/{uuid.uuid4()}/temp/audio-call.m4a"


def make_store(endpoint_url: str, bucket: str, **options: Any) -> S3ObjectStore:
    return S3ObjectStore(
        bucket,
        endpoint_url=endpoint_url,
        region=S3_TEST_REGION,
        access_key_id=S3_TEST_ACCESS_KEY,
        secret_access_key=S3_TEST_SECRET_KEY,
        **options,
    )


@pytest.fixture
def store(s3_endpoint_url: str, s3_bucket: str) -> S3ObjectStore:
    return make_store(s3_endpoint_url, s3_bucket, multipart_chunk_bytes=5 * MIB)


@pytest.fixture
def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


class CountingStream(io.RawIOBase):
    """A non-seekable stream of ``size`` bytes that records the largest single read."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.remaining = size
        self.largest_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        count = min(len(buffer), self.remaining)
        buffer[:count] = b"\x5a" * count
        self.remaining -= count
        self.largest_read = max(self.largest_read, count)
        return count


def test_put_stream_uploads_large_streams_in_parts(store: S3ObjectStore, s3_client: Any) -> None:
    stream = CountingStream(12 * MIB)

    assert store.put_stream(KEY, stream, "audio/mp4") == 12 * MIB  # type: ignore[arg-type]

    head = s3_client.head_object(Bucket=store.bucket, Key=KEY)
    assert head["ContentLength"] == 12 * MIB
    assert head["ContentType"] == "audio/mp4"
    assert head["ETag"].strip('"').endswith("-3")  # a multipart ETag: three parts
    assert stream.largest_read <= 5 * MIB  # never the whole stream at once


def test_an_oversized_multipart_upload_leaves_no_object_and_no_parts(store: S3ObjectStore, s3_client: Any) -> None:
    with pytest.raises(ObjectTooLargeError):
        store.put_stream(KEY, CountingStream(12 * MIB), "audio/mp4", max_bytes=11 * MIB)  # type: ignore[arg-type]

    assert s3_client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []
    assert not store.exists(KEY)


def test_put_bytes_records_the_content_type(store: S3ObjectStore, s3_client: Any) -> None:
    store.put_bytes(KEY, b"{}", "application/json")

    head = s3_client.head_object(Bucket=store.bucket, Key=KEY)
    assert head["ContentType"] == "application/json"


def test_a_presigned_url_serves_the_object_over_http(store: S3ObjectStore) -> None:
    store.put_bytes(KEY, b"audio bytes", "audio/mp4")

    url = store.presigned_get_url(KEY, expires_seconds=60)

    assert "X-Amz-Expires=60" in url
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.content == b"audio bytes"


@pytest.mark.parametrize("expires_seconds", [0, -1, 7 * 24 * 3600 + 1])
def test_presigned_url_lifetimes_are_bounded(store: S3ObjectStore, expires_seconds: int) -> None:
    with pytest.raises(ValueError, match="expires_seconds"):
        store.presigned_get_url(KEY, expires_seconds=expires_seconds)


def test_a_listing_crosses_pages(store: S3ObjectStore, s3_endpoint_url: str) -> None:
    paged = make_store(s3_endpoint_url, store.bucket, list_page_size=3)
    keys = [f"users/u/calls/c/{index:02d}" for index in range(10)]
    for key in keys:
        paged.put_bytes(key, b"x", "text/plain")
    list_requests: list[str] = []
    paged._client.meta.events.register("before-call.s3.ListObjectsV2", lambda **_: list_requests.append("list"))

    assert [info.key for info in paged.list_objects("users/u/")] == keys
    assert len(list_requests) == 4


def test_check_fails_for_an_unreachable_endpoint(closed_port_url: str) -> None:
    store = make_store(closed_port_url, "any-bucket", max_attempts=1)

    with pytest.raises(ObjectStoreUnavailableError):
        store.check()
    with pytest.raises(ObjectStoreUnavailableError):
        store.get_bytes(KEY)


def test_check_fails_for_a_missing_bucket(s3_endpoint_url: str) -> None:
    store = make_store(s3_endpoint_url, f"missing-{uuid.uuid4().hex[:12]}", max_attempts=1)

    with pytest.raises(ObjectStoreUnavailableError):
        store.check()


def test_build_object_store_makes_a_working_s3_store(s3_endpoint_url: str, s3_bucket: str, s3_client: Any) -> None:
    settings = load_settings(
        object_storage_provider=StorageProvider.S3,
        object_storage_bucket=s3_bucket,
        object_storage_endpoint=s3_endpoint_url,
        object_storage_region=S3_TEST_REGION,
        object_storage_access_key=SecretStr(S3_TEST_ACCESS_KEY),
        object_storage_secret_key=SecretStr(S3_TEST_SECRET_KEY),
        object_storage_path_style_access=True,
    )

    store = build_object_store(settings)

    assert isinstance(store, S3ObjectStore)
    assert store.retry_seconds == settings.object_storage_retry_seconds
    store.check()
    store.put_bytes(KEY, b"via settings", "text/plain")
    assert store.get_bytes(KEY) == b"via settings"
    assert s3_client.get_object(Bucket=s3_bucket, Key=KEY)["Body"].read() == b"via settings"


def test_reads_and_writes_ride_out_an_outage_within_the_retry_window(
    outage_server: RestartableS3Server, s3_bucket: str, s3_client: Any
) -> None:
    store = make_store(outage_server.url, s3_bucket, retry_seconds=20)
    store.put_bytes(KEY, b"stored before the outage", "audio/mp4")

    outage_server.stop()
    outage_server.restart_after(1.5)
    assert store.get_bytes(KEY) == b"stored before the outage"

    outage_server.stop()
    outage_server.restart_after(1.5)
    assert store.put_stream(KEY, io.BytesIO(b"written across the outage"), "audio/mp4") == 25
    assert s3_client.get_object(Bucket=s3_bucket, Key=KEY)["Body"].read() == b"written across the outage"

    outage_server.stop()
    outage_server.restart_after(1.5)
    assert [info.key for info in store.list_objects("users/")] == [KEY]


def test_an_outage_longer_than_the_window_is_unavailable_not_missing(
    outage_server: RestartableS3Server, s3_bucket: str
) -> None:
    store = make_store(outage_server.url, s3_bucket, retry_seconds=1.5)
    outage_server.stop()
    started = time.monotonic()

    with pytest.raises(ObjectStoreUnavailableError, match=r"still failing after 1\.5 s"):
        store.get_bytes(KEY)
    with pytest.raises(ObjectStoreUnavailableError):
        store.head(KEY)
    with pytest.raises(ObjectStoreUnavailableError):
        store.put_bytes(KEY, b"x", "text/plain")

    assert time.monotonic() - started < 30  # bounded: three windows and their last attempts


def test_a_stream_that_cannot_be_rewound_is_not_retried(outage_server: RestartableS3Server, s3_bucket: str) -> None:
    store = make_store(outage_server.url, s3_bucket, retry_seconds=60, max_attempts=1)
    outage_server.stop()
    started = time.monotonic()

    with pytest.raises(ObjectStoreUnavailableError):
        store.put_stream(KEY, CountingStream(1000), "audio/mp4")  # type: ignore[arg-type]

    assert time.monotonic() - started < 30  # failed at once, not after the 60-s window


def test_throttling_and_server_errors_are_retried(store: S3ObjectStore) -> None:
    store.retry_seconds = 10
    with Stubber(store._client) as stub:
        stub.add_client_error("get_object", service_error_code="SlowDown", http_status_code=503)
        stub.add_client_error("get_object", service_error_code="InternalError", http_status_code=500)
        stub.add_response("get_object", {"Body": io.BytesIO(b"served")}, {"Bucket": store.bucket, "Key": KEY})

        assert store.get_bytes(KEY) == b"served"
        stub.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("code", "status"), [("AccessDenied", 403), ("InvalidAccessKeyId", 403), ("NoSuchBucket", 404)]
)
def test_a_misconfigured_store_fails_at_once(store: S3ObjectStore, code: str, status: int) -> None:
    store.retry_seconds = 60
    with Stubber(store._client) as stub:
        stub.add_client_error("get_object", service_error_code=code, http_status_code=status)

        with pytest.raises(ObjectStoreUnavailableError) as raised:
            store.get_bytes(KEY)
        stub.assert_no_pending_responses()  # one request: waiting does not fix credentials or a bucket name
    assert not raised.value.transient


def test_a_missing_object_is_not_found_even_with_retries(store: S3ObjectStore) -> None:
    store.retry_seconds = 60

    with pytest.raises(ObjectNotFoundError):
        store.get_bytes(KEY)
    assert store.head(KEY) is None
