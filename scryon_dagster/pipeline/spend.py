"""Appending each paid provider request that answered to the per-call cost ledger, where the pipeline
takes the provider's answer (a retry or reprocess that pays again appends again).

Recording is bookkeeping: a ledger row that cannot be written is logged (ids and the error's type only)
and never fails the call or the delivery.
"""

from __future__ import annotations

import logging
from uuid import UUID

from scryon_dagster.adapters.db.cost_queries import CostQueries
from scryon_dagster.adapters.db.records import LlmUsage
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.domain.provider_outputs import RawTranscript
from scryon_dagster.domain.provider_spend import (
    AudioPrices,
    ProviderCharge,
    SpendStage,
    diarization_charge,
    llm_charge,
    transcription_charge,
)
from scryon_dagster.pipeline.call_context import CallPorts, CallWork
from scryon_dagster.settings import Settings

logger = logging.getLogger(__name__)


def audio_prices(settings: Settings) -> AudioPrices:
    return AudioPrices(
        lemonfox_per_audio_hour_usd=settings.lemonfox_price_per_audio_hour_usd,
        pyannote_per_audio_hour_usd=settings.pyannote_price_per_audio_hour_usd,
        pyannote_min_billed_seconds=settings.pyannote_min_billed_seconds,
    )


def record_transcription_cost(ports: CallPorts, work: CallWork) -> None:
    """A synchronous Lemonfox transcription of the call's audio."""
    charge = transcription_charge(work.audio_seconds, audio_prices(ports.settings))
    _append(ports.db, work.call_id, work.call.user_id, charge)


def record_diarization_cost(ports: CallPorts, work: CallWork) -> None:
    """The pyannote job whose answer the call keeps (identify when a voiceprint was matched)."""
    charge = diarization_charge(
        work.audio_seconds,
        audio_prices(ports.settings),
        voice_identification=work.identification is not None,
    )
    _append(ports.db, work.call_id, work.call.user_id, charge)


def record_llm_cost(ports: CallPorts, work: CallWork, usage: LlmUsage, stage: SpendStage) -> None:
    """One LLM completion, at its usage's estimated cost."""
    charge = llm_charge(
        stage,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        estimated_cost_usd=usage.estimated_cost_usd,
    )
    _append(ports.db, work.call_id, work.call.user_id, charge)


def record_delivered_transcription_cost(
    db: CallDatabase, prices: AudioPrices, call_id: UUID, user_id: UUID, transcript: RawTranscript
) -> None:
    """A Lemonfox transcription delivered by callback: the audio sent was the call's, measured at intake."""
    try:
        call = db.get_call(call_id)
    except Exception as exc:
        logger.warning("call %s: transcription cost not recorded (%s)", call_id, type(exc).__name__)
        return
    audio_seconds = (call.duration_seconds if call is not None else None) or transcript.duration
    _append(db, call_id, user_id, transcription_charge(audio_seconds, prices))


def _append(db: CallDatabase, call_id: UUID, user_id: UUID, charge: ProviderCharge) -> None:
    try:
        CostQueries(db).record(call_id, user_id, charge)
    except Exception as exc:  # only the type: a message may quote the statement's values
        logger.warning("call %s: %s cost not recorded (%s)", call_id, charge.stage.value, type(exc).__name__)
