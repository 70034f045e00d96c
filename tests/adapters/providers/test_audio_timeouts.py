"""Provider time limits sized by the audio: a long call's transcription or diarization job may take longer
than the floor and still completes within its limit; past the limit it fails with the transient timeout code."""

from __future__ import annotations

import pytest

from scryon_dagster.adapters.errors import RetryableProviderError
from scryon_dagster.adapters.http import AudioTimeout
from scryon_dagster.adapters.lemonfox import LemonfoxClient
from scryon_dagster.adapters.pyannote import PyannoteClient
from scryon_dagster.domain.calls import ErrorCode
from scryon_dagster.domain.policy import is_transient
from scryon_dagster.simulator import SimulatorServer
from tests.adapters.providers.conftest import FAST_BACKOFF, silent_wav

AUDIO_SECONDS = 12.0
FLOOR_SECONDS = 0.4
SECONDS_PER_AUDIO_MINUTE = 8.0  # 12 s of audio: a 1.6-s limit


def test_the_limit_grows_with_the_audio_above_its_floor() -> None:
    timeout = AudioTimeout(floor_seconds=180, seconds_per_audio_minute=4)
    assert timeout.for_audio(None) == 180
    assert timeout.for_audio(30 * 60) == 180  # the floor covers short calls
    assert timeout.for_audio(2 * 3600) == 480
    with pytest.raises(ValueError, match="floor"):
        AudioTimeout(floor_seconds=0)


@pytest.mark.parametrize(
    ("audio_seconds", "completes"),
    [(AUDIO_SECONDS, True), (None, False)],
    ids=["sized-by-the-audio", "floor-only"],
)
def test_a_transcription_slower_than_the_floor_completes_within_its_audio_sized_limit(
    simulator: SimulatorServer, audio_seconds: float | None, completes: bool
) -> None:
    simulator.admin.set_latency("lemonfox", 0.9)  # longer than the floor, shorter than the sized limit
    with LemonfoxClient(
        api_key="test-key",
        base_url=simulator.lemonfox_base_url,
        timeout_seconds=FLOOR_SECONDS,
        timeout_seconds_per_audio_minute=SECONDS_PER_AUDIO_MINUTE,
        max_retries=0,
        backoff=FAST_BACKOFF,
    ) as client:
        audio = silent_wav(AUDIO_SECONDS)
        if completes:
            result = client.transcribe(audio, filename="a.wav", content_type="audio/wav", audio_seconds=audio_seconds)
            assert result.request_ms >= 900
            return
        with pytest.raises(RetryableProviderError) as caught:
            client.transcribe(audio, filename="a.wav", content_type="audio/wav", audio_seconds=audio_seconds)
    assert caught.value.code is ErrorCode.TRANSCRIPTION_TIMEOUT
    assert is_transient(caught.value.code)


@pytest.mark.parametrize(
    ("audio_seconds", "completes"),
    [(AUDIO_SECONDS, True), (None, False)],
    ids=["sized-by-the-audio", "floor-only"],
)
def test_a_diarization_job_slower_than_the_floor_completes_within_its_audio_sized_deadline(
    simulator: SimulatorServer, audio_seconds: float | None, completes: bool
) -> None:
    with PyannoteClient(
        api_key="test-key",
        base_url=simulator.pyannote_base_url,
        timeout_seconds=FLOOR_SECONDS,
        timeout_seconds_per_audio_minute=SECONDS_PER_AUDIO_MINUTE,
        poll_interval_seconds=0.02,
        max_retries=0,
        backoff=FAST_BACKOFF,
    ) as client:
        media_url = client.upload_media(silent_wav(AUDIO_SECONDS), "long-call")
        simulator.admin.set_latency("pyannote", 0.3)  # job creation and its poll: past the floor together
        if completes:
            result = client.diarize(media_url, audio_seconds=audio_seconds)
            assert result.elapsed_ms >= 600
            return
        with pytest.raises(RetryableProviderError) as caught:
            client.diarize(media_url, audio_seconds=audio_seconds)
    assert caught.value.code is ErrorCode.DIARIZATION_TIMEOUT
    assert is_transient(caught.value.code)
