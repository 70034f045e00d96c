"""Derived fields of a normalized transcript: segment speaker fields and ``cleanText``.

Speakers are the source of truth for labels, display names and roles; every change to them goes
through ``with_speakers`` so segments and ``cleanText`` can never disagree with ``speakers[]``.
"""

from __future__ import annotations

import math

from scryon_dagster.domain.transcript.models import (
    LabelSource,
    NormalizedTranscript,
    TranscriptSegment,
    TranscriptSpeaker,
)

_UNRESOLVED_SOURCES = frozenset({LabelSource.DIARIZATION, LabelSource.AMBIGUOUS})


def generic_label(position: int) -> str:
    """ "Speaker N" for the N-th speaker in order of first appearance (1-based)."""
    return f"Speaker {position}"


def canonical_speaker_id(position: int) -> str:
    return f"spk_{position}"


def canonical_segment_id(position: int) -> str:
    return f"seg_{position:04d}"


def is_resolved(speaker: TranscriptSpeaker) -> bool:
    return speaker.label_source not in _UNRESOLVED_SOURCES


def format_timestamp(seconds: float) -> str:
    """mm:ss, or hh:mm:ss from one hour on; seconds are truncated, as a player's clock shows them."""
    whole = math.floor(seconds)
    hours, remainder = divmod(whole, 3600)
    minutes, secs = divmod(remainder, 60)
    if hours:
        return f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{minutes:02d}:{secs:02d}"


def render_clean_text(segments: list[TranscriptSegment]) -> str:
    return "\n".join(
        f"[{format_timestamp(s.start_seconds)} - {format_timestamp(s.end_seconds)}] {s.speaker_label}: {s.text}"
        for s in segments
    )


def with_speakers(transcript: NormalizedTranscript, speakers: list[TranscriptSpeaker]) -> NormalizedTranscript:
    """The transcript with ``speakers`` and every segment field and line of cleanText derived from them."""
    by_id = {speaker.speaker_id: speaker for speaker in speakers}
    segments = [_segment_for(segment, by_id.get(segment.speaker_id)) for segment in transcript.segments]
    resolution = transcript.speaker_resolution.model_copy(
        update={
            "total_speaker_count": len(speakers),
            "resolved_speaker_count": sum(is_resolved(speaker) for speaker in speakers),
        }
    )
    return transcript.model_copy(
        update={
            "speakers": speakers,
            "segments": segments,
            "clean_text": render_clean_text(segments),
            "speaker_resolution": resolution,
        }
    )


def _segment_for(segment: TranscriptSegment, speaker: TranscriptSpeaker | None) -> TranscriptSegment:
    if speaker is None:
        return segment
    return segment.model_copy(
        update={
            "speaker": speaker.label,
            "speaker_label": speaker.label,
            "speaker_display_name": speaker.display_name,
            "source_speaker_id": speaker.source_speaker_id,
            "role": speaker.role,
        }
    )
