"""Audio over a provider's documented upload limit is refused before anything is sent, permanently."""

from __future__ import annotations

import pytest

from scryon_dagster.adapters import lemonfox, pyannote
from scryon_dagster.adapters.errors import PermanentProviderError
from scryon_dagster.domain.calls import ErrorCode
from scryon_dagster.domain.policy import is_transient
from scryon_dagster.settings import Settings
from scryon_dagster.simulator import SimulatorServer
from tests.adapters.providers.conftest import silent_wav
from tests.adapters.providers.test_lemonfox import make_client as make_lemonfox
from tests.adapters.providers.test_pyannote import make_client as make_pyannote


def test_the_documented_limits_are_the_defaults() -> None:
    assert lemonfox.MAX_UPLOAD_BYTES == 100_000_000
    assert pyannote.MAX_UPLOAD_BYTES == 1024**3
    assert lemonfox.LemonfoxClient(api_key="test-key").max_upload_bytes == lemonfox.MAX_UPLOAD_BYTES
    assert pyannote.PyannoteClient(api_key="test-key").max_upload_bytes == pyannote.MAX_UPLOAD_BYTES
    fields = Settings.model_fields
    assert fields["lemonfox_max_upload_bytes"].default == lemonfox.MAX_UPLOAD_BYTES
    assert fields["pyannote_max_upload_bytes"].default == pyannote.MAX_UPLOAD_BYTES


def test_lemonfox_refuses_audio_over_its_limit_without_a_request(simulator: SimulatorServer) -> None:
    audio = silent_wav(2.0)
    with make_lemonfox(simulator, max_upload_bytes=len(audio) - 1) as client:
        with pytest.raises(PermanentProviderError) as refused:
            client.transcribe(audio, filename="call.wav", content_type="audio/wav")
        with pytest.raises(PermanentProviderError):
            client.submit_with_callback(
                audio, filename="call.wav", content_type="audio/wav", callback_url="https://example.test/cb"
            )

    assert refused.value.code == ErrorCode.AUDIO_TOO_LARGE_FOR_PROVIDER
    assert not is_transient(refused.value.code)
    assert "lemonfox" not in simulator.admin.stats()["requests_total"]


def test_lemonfox_sends_audio_at_its_limit(simulator: SimulatorServer) -> None:
    audio = silent_wav(2.0)
    with make_lemonfox(simulator, max_upload_bytes=len(audio)) as client:
        client.transcribe(audio, filename="call.wav", content_type="audio/wav")

    assert simulator.admin.stats()["requests_total"]["lemonfox"] == 1


def test_pyannote_refuses_media_over_its_limit_without_a_request(simulator: SimulatorServer) -> None:
    audio = silent_wav(2.0)
    with (
        make_pyannote(simulator, max_upload_bytes=len(audio) - 1) as client,
        pytest.raises(PermanentProviderError) as refused,
    ):
        client.upload_media(audio, "users/u1/calls/c1")

    assert refused.value.code == ErrorCode.AUDIO_TOO_LARGE_FOR_PROVIDER
    assert "pyannote" not in simulator.admin.stats()["requests_total"]
