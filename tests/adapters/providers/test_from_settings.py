"""Clients built from Settings reach the configured host with the configured key."""

from __future__ import annotations

import pytest

from scryon_dagster.adapters.lemonfox import LemonfoxClient
from scryon_dagster.adapters.llm import LlmClient
from scryon_dagster.adapters.pyannote import PyannoteClient
from scryon_dagster.settings import load_settings
from scryon_dagster.simulator import SimulatorServer
from tests.adapters.providers.conftest import silent_wav


def test_clients_from_settings_work_against_the_simulator(simulator: SimulatorServer) -> None:
    settings = load_settings(
        lemonfox_api_key="lf-key",
        lemonfox_base_url=simulator.lemonfox_base_url,
        pyannote_api_key="pa-key",
        pyannote_base_url=simulator.pyannote_base_url,
        scryon_diarization_poll_interval_seconds=0.02,
        llm_api_key="llm-key",
        llm_base_url=simulator.llm_base_url,
    )
    audio = silent_wav(8.0)

    with (
        LemonfoxClient.from_settings(settings) as lemonfox,
        PyannoteClient.from_settings(settings) as pyannote,
        LlmClient.from_settings(settings) as llm,
    ):
        transcript = lemonfox.transcribe(audio, filename="a.wav", content_type="audio/wav").transcript
        diarization = pyannote.diarize(pyannote.upload_media(audio, "settings")).diarization
        completion = llm.complete_json(system="s", user="u", schema_name="probe", schema={"type": "object"})

    assert transcript.text
    assert diarization.diarization
    assert completion.content == "{}"
    assert completion.model == settings.llm_model


@pytest.mark.parametrize(
    ("client_class", "variable"),
    [(LemonfoxClient, "LEMONFOX_API_KEY"), (PyannoteClient, "PYANNOTE_API_KEY"), (LlmClient, "LLM_API_KEY")],
)
def test_missing_key_is_named(client_class: type[LemonfoxClient | PyannoteClient | LlmClient], variable: str) -> None:
    with pytest.raises(ValueError, match=variable):
        client_class.from_settings(load_settings(lemonfox_api_key=None, pyannote_api_key=None, llm_api_key=None))
