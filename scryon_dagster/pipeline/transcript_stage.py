"""Alignment and normalization (hard), voice match and speaker naming (soft) for one call."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from scryon_dagster.domain.calls import ArtifactType, ErrorCode, Stage
from scryon_dagster.domain.transcript import NORMALIZATION_VERSION
from scryon_dagster.domain.transcript.alignment import align
from scryon_dagster.domain.transcript.models import NormalizedTranscript
from scryon_dagster.domain.transcript.naming import SpeakerContext, resolve_speakers
from scryon_dagster.domain.transcript.normalization import Provenance, normalize
from scryon_dagster.domain.transcript.voice_match import VoiceMatchResult, bucket_voice_match
from scryon_dagster.pipeline.analysis_stage import name_speakers_with_llm
from scryon_dagster.pipeline.outcomes import MetadataValue
from scryon_dagster.pipeline.stages import StageFailure

if TYPE_CHECKING:
    from scryon_dagster.pipeline.runner import CallPipeline, CallWork

USER_VOICEPRINT_LABEL = "user"


def build_normalized_transcript(
    pipeline: CallPipeline, work: CallWork
) -> tuple[NormalizedTranscript, dict[str, MetadataValue]]:
    """Raw transcript (+ diarization) → the named, normalized transcript, stored as an artifact."""
    raw = work.raw_transcript
    assert raw is not None
    settings = pipeline.settings
    started = datetime.now(UTC)
    with work.log.stage(Stage.TRANSCRIPT_ALIGNED):
        try:
            aligned = align(raw, work.diarization)
        except ValueError:
            raise StageFailure(ErrorCode.NORMALIZATION_FAILED) from None
    provenance = Provenance(
        transcription_provider="lemonfox",
        transcription_model=settings.lemonfox_model,
        diarization_provider="pyannote" if work.diarization is not None else None,
        diarization_model=settings.pyannote_model if work.diarization is not None else None,
    )
    with work.log.stage(Stage.TRANSCRIPT_NORMALIZED):
        try:
            transcript = normalize(str(work.call_id), aligned, provenance=provenance, created_at=started)
        except ValueError:
            raise StageFailure(ErrorCode.NORMALIZATION_FAILED) from None
    transcript = _named(pipeline, work, transcript)
    size = pipeline.store_artifact(
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


def _named(pipeline: CallPipeline, work: CallWork, transcript: NormalizedTranscript) -> NormalizedTranscript:
    """Soft: if naming fails, the transcript keeps its generic "Speaker N" labels."""
    settings = pipeline.settings
    context = SpeakerContext(
        user_display_name=work.user.display_name if work.user else None,
        contact_name=work.call.contact_name,
        phone_number=work.call.phone_number,
        direction=work.call.direction,
        voice_embedding_enabled=work.flags.voice_embedding,
        voice_profile_present=work.voiceprint is not None,
    )
    voice_match = _voice_match(
        work, settings.scryon_voice_embedding_high_threshold, settings.scryon_voice_embedding_medium_threshold
    )
    with work.log.stage(Stage.SPEAKER_REFINED) as stage:
        try:
            transcript = resolve_speakers(transcript, context, voice_match)
        except ValueError:
            stage.soft_failure("speaker_naming_failed")
    if work.flags.llm_speaker_naming:
        transcript = name_speakers_with_llm(pipeline, work, transcript)
    return transcript


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
