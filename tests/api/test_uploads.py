"""The streaming multipart reader: a large upload never sits whole in memory, an oversized one is
refused while it streams in, and the parts come out intact. Then the upload endpoint: audio with
nothing decodable, or too little, is refused before anything is written."""

from __future__ import annotations

import asyncio
import random
import tracemalloc
from collections.abc import AsyncIterator, Iterator

import pytest

from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import ObjectStore
from scryon_dagster.api.errors import ApiError
from scryon_dagster.api.uploads import AudioUpload, receive_upload
from scryon_dagster.domain.calls import ArtifactType
from tests.api.conftest import Api, error, wav_bytes

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


# --- the upload endpoint refuses broken audio ----------------------------------------------------


def cut_to(seconds: float, wav: bytes) -> bytes:
    """``wav`` (mono 16-kHz 16-bit) cut off after ``seconds`` of audio; its header still claims the whole length."""
    return wav[: WAV_HEADER_BYTES + round(seconds * 16_000 * 2)]


WAV_HEADER_BYTES = 44
RIFF_NOISE = b"RIFF\x24\x80\x00\x00WAVE" + random.Random(14).randbytes(32_000)


@pytest.mark.parametrize(
    ("audio", "code"),
    [
        (wav_bytes(0), "audio_too_short"),
        (cut_to(0.09, wav_bytes(2.0)), "audio_too_short"),
        (RIFF_NOISE, "audio_undecodable"),
    ],
    ids=["a 0-second WAV", "a WAV cut to 0.09 s", "random bytes behind a RIFF header"],
)
def test_broken_audio_is_422_and_stores_nothing(
    api: Api, db: CallDatabase, store: ObjectStore, audio: bytes, code: str
) -> None:
    response = api.upload(audio, metadata={"title": "t"})

    assert error(response) == (422, code)
    assert list(store.list_objects()) == []
    assert db.query("SELECT count(*) AS n FROM call_records") == [{"n": 0}]


def test_a_recording_cut_short_is_queued_with_its_measured_duration(
    api: Api, db: CallDatabase, store: ObjectStore
) -> None:
    audio = cut_to(1.5, wav_bytes(4.0))

    call_id = api.queue_call(audio=audio, metadata={"durationSeconds": 4})

    call = db.get_call(call_id)
    assert call is not None
    assert call.duration_seconds == pytest.approx(1.5)  # what decodes, not what the header or the app claimed
    assert store.get_bytes(db.get_artifacts(call_id)[ArtifactType.TEMP_AUDIO].storage_key) == audio


def test_an_upload_spooled_to_disk_is_measured_in_place(api: Api, db: CallDatabase) -> None:
    audio = wav_bytes(40.0)  # 1.3 MB: past the spool's in-memory part

    call = db.get_call(api.queue_call(audio=audio))

    assert call is not None
    assert call.duration_seconds == pytest.approx(40.0)
