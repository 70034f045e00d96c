"""The ledger's arithmetic: each paid request at the configured prices."""

from __future__ import annotations

import pytest

from scryon_dagster.domain.provider_spend import (
    AudioPrices,
    SpendProvider,
    SpendStage,
    diarization_charge,
    llm_charge,
    transcription_charge,
)

PRICES = AudioPrices(lemonfox_per_audio_hour_usd=0.17, pyannote_per_audio_hour_usd=0.12, pyannote_min_billed_seconds=20)


def test_transcription_is_billed_per_audio_second() -> None:
    charge = transcription_charge(1800, PRICES)
    assert (charge.provider, charge.stage, charge.billed_audio_seconds) == (
        SpendProvider.LEMONFOX,
        SpendStage.TRANSCRIPTION,
        1800,
    )
    assert charge.estimated_cost_usd == pytest.approx(0.085)


def test_a_pyannote_job_is_billed_at_least_its_minimum() -> None:
    short = diarization_charge(5, PRICES, voice_identification=False)
    assert (short.stage, short.audio_seconds, short.billed_audio_seconds) == (SpendStage.DIARIZATION, 5, 20)
    assert short.estimated_cost_usd == pytest.approx(20 / 3600 * 0.12)
    identified = diarization_charge(3600, PRICES, voice_identification=True)
    assert (identified.stage, identified.estimated_cost_usd) == (SpendStage.VOICE_IDENTIFICATION, pytest.approx(0.12))


def test_unknown_audio_length_is_recorded_as_unknown() -> None:
    assert transcription_charge(None, PRICES).estimated_cost_usd == 0
    assert diarization_charge(None, PRICES, voice_identification=False).billed_audio_seconds == 20


def test_an_llm_completion_keeps_its_tokens_and_cost() -> None:
    charge = llm_charge(
        SpendStage.SPEAKER_NAMING, prompt_tokens=1000, completion_tokens=500, estimated_cost_usd=0.00045
    )
    assert (charge.provider, charge.prompt_tokens, charge.completion_tokens, charge.audio_seconds) == (
        SpendProvider.LLM,
        1000,
        500,
        None,
    )
