"""Provider spend: what one paid provider request cost (a row of the per-call ledger) and the daily spend an
operator reads. Estimates from the configured prices; the per-unit arithmetic is ``analysis.cost``'s, the
same the reprocess dry runs use. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from scryon_dagster.domain.analysis.cost import billed_diarization_seconds, estimate_provider_cost_usd

_SECONDS_PER_HOUR = 3600.0


class SpendProvider(StrEnum):
    LEMONFOX = "lemonfox"
    PYANNOTE = "pyannote"
    LLM = "llm"


class SpendStage(StrEnum):
    TRANSCRIPTION = "transcription"
    DIARIZATION = "diarization"
    VOICE_IDENTIFICATION = "voice_identification"
    """One pyannote job that diarizes and matches the user's voiceprint (billed as one job)."""
    ANALYSIS = "analysis"
    SPEAKER_NAMING = "speaker_naming"


@dataclass(frozen=True)
class AudioPrices:
    """The configured per-audio-hour prices (LEMONFOX_/PYANNOTE_PRICE_PER_AUDIO_HOUR_USD) and pyannote's
    minimum billed seconds per job (PYANNOTE_MIN_BILLED_SECONDS)."""

    lemonfox_per_audio_hour_usd: float
    pyannote_per_audio_hour_usd: float
    pyannote_min_billed_seconds: float


@dataclass(frozen=True)
class ProviderCharge:
    """One paid provider request: one row of the ledger."""

    provider: SpendProvider
    stage: SpendStage
    estimated_cost_usd: float
    audio_seconds: float | None = None
    """The audio sent; None when its length is unknown (then billed as none, or as pyannote's minimum)."""
    billed_audio_seconds: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


def transcription_charge(audio_seconds: float | None, prices: AudioPrices) -> ProviderCharge:
    """A Lemonfox transcription: billed per audio second."""
    billed = audio_seconds or 0.0
    estimate = estimate_provider_cost_usd(
        billed,
        transcription_price_per_audio_hour=prices.lemonfox_per_audio_hour_usd,
        diarization_price_per_audio_hour=prices.pyannote_per_audio_hour_usd,
        diarization_jobs=0,
    )
    return ProviderCharge(
        SpendProvider.LEMONFOX,
        SpendStage.TRANSCRIPTION,
        estimate.transcription_usd,
        audio_seconds=audio_seconds,
        billed_audio_seconds=billed,
    )


def diarization_charge(
    audio_seconds: float | None, prices: AudioPrices, *, voice_identification: bool
) -> ProviderCharge:
    """One pyannote job (diarize, or identify against a voiceprint): per audio second, with a minimum."""
    seconds = audio_seconds or 0.0
    estimate = estimate_provider_cost_usd(
        seconds,
        transcription_price_per_audio_hour=prices.lemonfox_per_audio_hour_usd,
        diarization_price_per_audio_hour=prices.pyannote_per_audio_hour_usd,
        transcribe=False,
        diarization_jobs=1,
        diarization_min_billed_seconds=prices.pyannote_min_billed_seconds,
    )
    return ProviderCharge(
        SpendProvider.PYANNOTE,
        SpendStage.VOICE_IDENTIFICATION if voice_identification else SpendStage.DIARIZATION,
        estimate.diarization_usd,
        audio_seconds=audio_seconds,
        billed_audio_seconds=billed_diarization_seconds(seconds, prices.pyannote_min_billed_seconds),
    )


def llm_charge(
    stage: SpendStage, *, prompt_tokens: int, completion_tokens: int, estimated_cost_usd: float
) -> ProviderCharge:
    """An LLM completion, at the cost its usage was estimated at (``analysis.cost.estimate_llm_cost_usd``)."""
    return ProviderCharge(
        SpendProvider.LLM,
        stage,
        estimated_cost_usd,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
    )


@dataclass(frozen=True)
class DailySpend:
    """One provider's spend on one UTC day, summed over the ledger."""

    day: date
    provider: str
    calls: int
    requests: int
    billed_audio_seconds: float
    estimated_cost_usd: float

    @property
    def billed_audio_hours(self) -> float:
        return self.billed_audio_seconds / _SECONDS_PER_HOUR


def total_cost_usd(days: list[DailySpend]) -> float:
    return sum(day.estimated_cost_usd for day in days)
