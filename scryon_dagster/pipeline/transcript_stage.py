"""Alignment and normalization (hard), voice match and speaker naming (soft) for one call.

The chain itself is the domain's ``build_transcript``; this module only gathers its inputs from the call,
records each step as a stage and stores the result."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial

from scryon_dagster.domain.calls import ArtifactType, ErrorCode, Stage
from scryon_dagster.domain.transcript import NORMALIZATION_VERSION
from scryon_dagster.domain.transcript.build import build_transcript
from scryon_dagster.domain.transcript.models import NormalizedTranscript
from scryon_dagster.domain.transcript.naming import SpeakerContext
from scryon_dagster.domain.transcript.normalization import Provenance
from scryon_dagster.domain.transcript.voice_match import VoiceMatchResult, bucket_voice_match
from scryon_dagster.pipeline.call_context import CallPorts, CallWork
from scryon_dagster.pipeline.outcomes import MetadataValue
from scryon_dagster.pipeline.speaker_naming import name_speakers_with_llm
from scryon_dagster.pipeline.stages import StageFailure, StageHandle, StageLog

USER_VOICEPRINT_LABEL = "user"


def build_normalized_transcript(
    ports: CallPorts, work: CallWork
) -> tuple[NormalizedTranscript, dict[str, MetadataValue]]:
    """Raw transcript (+ diarization) → the named, normalized transcript, stored as an artifact."""
    raw = work.raw_transcript
    assert raw is not None
    settings = ports.settings
    started = datetime.now(UTC)
    provenance = Provenance(
        transcription_provider="lemonfox",
        transcription_model=settings.lemonfox_model,
        diarization_provider="pyannote" if work.diarization is not None else None,
        diarization_model=settings.pyannote_model if work.diarization is not None else None,
    )
    transcript = build_transcript(
        str(work.call_id),
        raw,
        work.diarization,
        _speaker_context(work),
        _voice_match(
            work, settings.scryon_voice_embedding_high_threshold, settings.scryon_voice_embedding_medium_threshold
        ),
        provenance=provenance,
        created_at=started,
        name_with_llm=partial(name_speakers_with_llm, ports, work) if work.flags.llm_speaker_naming else None,
        track=partial(_recorded_step, work.log),
    )
    size = ports.store_artifact(
        work, ArtifactType.NORMALIZED_TRANSCRIPT_JSON, transcript.to_json_bytes(), schema_version=NORMALIZATION_VERSION
    )
    resolution = transcript.speaker_resolution
    return transcript, {
        "normalization_version": NORMALIZATION_VERSION,
        "segments": len(transcript.segments),
        "speakers": resolution.total_speaker_count,
        "resolved_speakers": resolution.resolved_speaker_count,
        "voice_match_status": resolution.voice_match_status.value,
        "warnings": len(resolution.warnings),
        "diarization_used": work.diarization is not None,
        "size_bytes": size,
        "duration_ms": int((datetime.now(UTC) - started).total_seconds() * 1000),
    }


@contextmanager
def _recorded_step(log: StageLog, stage: Stage) -> Iterator[StageHandle]:
    """One stage event per step; input the chain cannot use (a ``ValueError``) fails the call."""
    with log.stage(stage) as handle:
        try:
            yield handle
        except ValueError:
            raise StageFailure(ErrorCode.NORMALIZATION_FAILED) from None


def _speaker_context(work: CallWork) -> SpeakerContext:
    return SpeakerContext(
        user_display_name=work.user.display_name if work.user else None,
        contact_name=work.call.contact_name,
        phone_number=work.call.phone_number,
        direction=work.call.direction,
        voice_embedding_enabled=work.flags.voice_embedding,
        voice_profile_present=work.voiceprint is not None,
    )


def _voice_match(work: CallWork, high_threshold: float, medium_threshold: float) -> VoiceMatchResult:
    if not work.flags.voice_embedding:
        return VoiceMatchResult.disabled()
    if work.voiceprint is None:
        return VoiceMatchResult.no_profile()
    if work.identification is None:
        return VoiceMatchResult.failed()
    return bucket_voice_match(
        work.identification,
        high_threshold=high_threshold,
        medium_threshold=medium_threshold,
        voiceprint_label=USER_VOICEPRINT_LABEL,
    )
