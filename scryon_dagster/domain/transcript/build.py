"""The one call the pipeline makes: raw provider outputs + call metadata → the named, normalized transcript."""

from __future__ import annotations

from datetime import datetime

from scryon_dagster.domain.provider_outputs import Diarization, RawTranscript
from scryon_dagster.domain.transcript.alignment import align
from scryon_dagster.domain.transcript.models import NormalizedTranscript
from scryon_dagster.domain.transcript.naming import SpeakerContext, resolve_speakers
from scryon_dagster.domain.transcript.normalization import Provenance, normalize
from scryon_dagster.domain.transcript.voice_match import VoiceMatchResult


def build_transcript(
    call_id: str,
    raw: RawTranscript,
    diarization: Diarization | None,
    context: SpeakerContext,
    voice_match: VoiceMatchResult | None,
    *,
    provenance: Provenance,
    created_at: datetime,
) -> NormalizedTranscript:
    """align → normalize → resolve_speakers. Language and duration come from the raw transcript.

    Raises ``AlignmentError`` / ``NormalizationError`` (both ``ValueError``) on unusable input; their
    messages never quote transcript content."""
    aligned = align(raw, diarization)
    transcript = normalize(call_id, aligned, provenance=provenance, created_at=created_at)
    return resolve_speakers(transcript, context, voice_match)
