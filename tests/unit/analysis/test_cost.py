"""Token and cost arithmetic."""

from __future__ import annotations

import json
import math

import pytest

from scryon_dagster.domain.analysis import (
    analysis_response_format,
    build_analysis_prompt,
    estimate_analysis_prompt_tokens,
    estimate_llm_cost_usd,
    estimate_provider_cost_usd,
    estimate_tokens,
)

from .builders import two_party_transcript


def test_llm_cost_at_per_million_token_prices() -> None:
    # gpt-4o-mini list prices: $0.15 in, $0.60 out per million tokens.
    cost = estimate_llm_cost_usd(10_000, 2_000, input_price_per_mtok=0.15, output_price_per_mtok=0.60)

    assert cost == pytest.approx(0.0015 + 0.0012)


def test_llm_cost_of_nothing_is_zero() -> None:
    assert estimate_llm_cost_usd(0, 0, input_price_per_mtok=2.5, output_price_per_mtok=10) == 0


@pytest.mark.parametrize(
    "arguments",
    [
        {"prompt_tokens": -1, "completion_tokens": 0, "input_price_per_mtok": 1, "output_price_per_mtok": 1},
        {"prompt_tokens": 1, "completion_tokens": 0, "input_price_per_mtok": -0.1, "output_price_per_mtok": 1},
        {"prompt_tokens": 1, "completion_tokens": 0, "input_price_per_mtok": 1, "output_price_per_mtok": math.nan},
    ],
)
def test_llm_cost_rejects_negative_or_non_finite_input(arguments: dict[str, float]) -> None:
    prompt_tokens = int(arguments.pop("prompt_tokens"))
    completion_tokens = int(arguments.pop("completion_tokens"))
    with pytest.raises(ValueError, match="must be a finite non-negative number"):
        estimate_llm_cost_usd(prompt_tokens, completion_tokens, **arguments)


def test_five_minute_call_transcription_and_diarization() -> None:
    estimate = estimate_provider_cost_usd(
        300, transcription_price_per_audio_hour=0.17, diarization_price_per_audio_hour=0.12
    )

    assert estimate.transcription_usd == pytest.approx(0.17 / 12)
    assert estimate.diarization_usd == pytest.approx(0.12 / 12)
    assert estimate.total_usd == pytest.approx(0.29 / 12)


def test_diarization_bills_at_least_twenty_seconds_per_job() -> None:
    estimate = estimate_provider_cost_usd(
        5, transcription_price_per_audio_hour=0.17, diarization_price_per_audio_hour=0.36, diarization_jobs=2
    )

    assert estimate.transcription_usd == pytest.approx(5 / 3600 * 0.17)
    assert estimate.diarization_usd == pytest.approx(2 * 20 / 3600 * 0.36)


def test_skipped_stages_cost_nothing() -> None:
    estimate = estimate_provider_cost_usd(
        600,
        transcription_price_per_audio_hour=0.17,
        diarization_price_per_audio_hour=0.12,
        transcribe=False,
        diarization_jobs=0,
    )

    assert estimate.total_usd == 0


def test_provider_cost_rejects_negative_audio() -> None:
    with pytest.raises(ValueError, match="audio_seconds"):
        estimate_provider_cost_usd(-1, transcription_price_per_audio_hour=0.17, diarization_price_per_audio_hour=0.12)


@pytest.mark.parametrize(("text", "tokens"), [("", 0), ("abc", 1), ("abcd", 1), ("abcde", 2), ("x" * 400, 100)])
def test_token_estimate_is_chars_over_four_rounded_up(text: str, tokens: int) -> None:
    assert estimate_tokens(text) == tokens


def test_analysis_prompt_estimate_counts_system_user_and_schema() -> None:
    transcript = two_party_transcript()
    prompt = build_analysis_prompt(
        transcript,
        call_id=transcript.call_id,
        recorded_at=None,
        duration_seconds=transcript.duration_seconds,
        title=None,
    )
    schema_chars = len(json.dumps(analysis_response_format(), separators=(",", ":")))
    text_only = (len(prompt.system) + len(prompt.user) + schema_chars) / 4

    estimate = estimate_analysis_prompt_tokens(transcript)

    assert text_only <= estimate <= text_only + 20


def test_analysis_prompt_estimate_grows_with_the_transcript() -> None:
    short = two_party_transcript()
    long = two_party_transcript([("spk_1", "A sentence of about forty characters here.")] * 200)

    assert estimate_analysis_prompt_tokens(long) - estimate_analysis_prompt_tokens(short) > 200 * 40 / 4
