"""Provider uploads streamed from a file: whole on every attempt of a retried request."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from scryon_dagster.adapters.audio_upload import audio_size, request_body
from scryon_dagster.adapters.errors import PermanentProviderError
from scryon_dagster.domain.calls import ErrorCode
from scryon_dagster.simulator import SimulatorServer
from tests.adapters.providers.conftest import silent_wav
from tests.adapters.providers.test_lemonfox import make_client as make_lemonfox
from tests.adapters.providers.test_pyannote import make_client as make_pyannote

ROUTE = "POST /v1/audio/transcriptions"


@pytest.fixture
def wav_file(tmp_path: Path) -> Path:
    path = tmp_path / "audio.wav"
    path.write_bytes(silent_wav(6.0))
    return path


def test_a_file_body_is_sent_whole_and_sized_on_every_send(wav_file: Path) -> None:
    received: list[tuple[str | None, bytes]] = []

    def record(request: httpx.Request) -> httpx.Response:
        received.append((request.headers.get("Content-Length"), request.read()))
        return httpx.Response(500 if len(received) == 1 else 200)

    with httpx.Client(transport=httpx.MockTransport(record)) as client, request_body(wav_file) as body:
        for _ in range(2):  # what a retry does: the same request options again
            client.put("https://store.test/upload", content=body)

    expected = wav_file.read_bytes()
    assert received == [(str(len(expected)), expected)] * 2
    assert audio_size(wav_file) == len(expected)


def test_lemonfox_retries_a_file_upload_whole(simulator: SimulatorServer, wav_file: Path) -> None:
    simulator.admin.set_fault("lemonfox", "http_500")

    with make_lemonfox(simulator) as client:
        result = client.transcribe(wav_file, filename="call.wav", content_type="audio/wav")

    assert simulator.admin.stats()["requests"]["lemonfox"][ROUTE] == 2
    assert result.attempts == 2
    assert result.transcript.duration == pytest.approx(6.0, abs=0.1)


def test_pyannote_uploads_media_from_a_file(simulator: SimulatorServer, wav_file: Path) -> None:
    with make_pyannote(simulator) as client:
        result = client.diarize(client.upload_media(wav_file, "from-file"))

    assert result.diarization.diarization


def test_an_empty_or_oversized_file_is_refused_before_sending(simulator: SimulatorServer, tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    large = tmp_path / "large.wav"
    large.write_bytes(silent_wav(2.0))

    with make_lemonfox(simulator, max_upload_bytes=large.stat().st_size - 1) as client:
        with pytest.raises(ValueError, match="empty"):
            client.transcribe(empty, filename="a.wav", content_type="audio/wav")
        with pytest.raises(PermanentProviderError) as refused:
            client.transcribe(large, filename="a.wav", content_type="audio/wav")
    with make_pyannote(simulator) as client, pytest.raises(ValueError, match="empty"):
        client.upload_media(empty, "empty")

    assert refused.value.code == ErrorCode.AUDIO_TOO_LARGE_FOR_PROVIDER
    assert "lemonfox" not in simulator.admin.stats()["requests_total"]
