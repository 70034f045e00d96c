"""The streaming multipart reader: a large upload never sits whole in memory, an oversized one is
refused while it streams in, and the parts come out intact."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import AsyncIterator, Iterator

import pytest

from scryon_dagster.api.errors import ApiError
from scryon_dagster.api.uploads import AudioUpload, receive_upload

BOUNDARY = "scryon-test-boundary"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
MIB = 1024 * 1024
CHUNK = 64 * 1024


def audio_pattern(size: int) -> Iterator[bytes]:
    """``size`` bytes of a WAV-looking stream, produced chunk by chunk (never held whole)."""
    head = b"RIFF\x00\x00\x00\x00WAVEfmt "
    yield head
    remaining = size - len(head)
    while remaining > 0:
        take = min(CHUNK, remaining)
        yield bytes([remaining % 251]) * take
        remaining -= take


def multipart(audio: Iterator[bytes], metadata: str = '{"title": "t"}') -> Iterator[bytes]:
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="metadata"\r\n'
        f"Content-Type: application/json\r\n\r\n{metadata}\r\n"
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="call.wav"\r\n'
        f"Content-Type: audio/wav\r\n\r\n"
    ).encode()
    yield from audio
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


class CountingBody:
    """The request body as the server sees it, counting what the reader consumed."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self.consumed = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            self.consumed += len(chunk)
            yield chunk


def receive(body: CountingBody, max_file_bytes: int, content_length: str | None = None) -> AudioUpload:
    return asyncio.run(receive_upload(CONTENT_TYPE, content_length, body.__aiter__(), max_file_bytes=max_file_bytes))


def test_a_large_upload_is_spooled_not_held_in_memory() -> None:
    size = 48 * MIB
    tracemalloc.start()
    try:
        upload = receive(CountingBody(multipart(audio_pattern(size))), max_file_bytes=50 * MIB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    try:
        assert upload.size == size
        assert upload.fields == {"metadata": '{"title": "t"}'}
        assert upload.filename == "call.wav"
        assert upload.audio.read(12) == b"RIFF\x00\x00\x00\x00WAVE"
        upload.audio.seek(0, 2)
        assert upload.audio.tell() == size
    finally:
        upload.close()
    assert peak < 8 * MIB, f"peak {peak / MIB:.1f} MiB while receiving {size / MIB:.0f} MiB"


def test_an_oversized_upload_is_refused_while_streaming() -> None:
    body = CountingBody(multipart(audio_pattern(20 * MIB)))

    with pytest.raises(ApiError) as refused:
        receive(body, max_file_bytes=MIB)

    assert (refused.value.status, refused.value.code) == (413, "payload_too_large")
    assert body.consumed < 2 * MIB


def test_a_declared_oversized_length_is_refused_unread() -> None:
    body = CountingBody(multipart(audio_pattern(MIB)))

    with pytest.raises(ApiError) as refused:
        receive(body, max_file_bytes=1024, content_length=str(10 * MIB))

    assert refused.value.status == 413
    assert body.consumed == 0


@pytest.mark.parametrize(
    ("content_type", "status"),
    [("application/json", 415), ("text/plain", 415), (None, 415), ("multipart/form-data", 400)],
)
def test_bodies_that_are_not_multipart_uploads(content_type: str | None, status: int) -> None:
    with pytest.raises(ApiError) as refused:
        asyncio.run(receive_upload(content_type, None, CountingBody(iter([b"x"])).__aiter__(), max_file_bytes=MIB))

    assert refused.value.status == status


def test_an_oversized_text_part_is_refused() -> None:
    with pytest.raises(ApiError) as refused:
        receive(CountingBody(multipart(audio_pattern(1024), metadata="x" * (65 * 1024))), max_file_bytes=MIB)

    assert (refused.value.status, refused.value.code) == (400, "validation_failed")
