"""The transcript domain: alignment, normalization, speaker naming and voice-match bucketing.

Pipeline entry point: ``build_transcript`` (align → normalize → resolve_speakers). Readers of stored
artifacts use ``NormalizedTranscript.parse``; re-deriving a stored transcript uses ``renormalize``.
"""

from scryon_dagster.domain.transcript.aligned import AlignedTranscript
from scryon_dagster.domain.transcript.alignment import AlignmentError, align
from scryon_dagster.domain.transcript.build import build_transcript
from scryon_dagster.domain.transcript.models import (
    Confidence,
    LabelSource,
    NormalizedTranscript,
    PipelineInfo,
    Role,
    SpeakerResolution,
    TranscriptFormatError,
    TranscriptSegment,
    TranscriptSpeaker,
    VoiceMatchStatus,
)
from scryon_dagster.domain.transcript.naming import ResolutionWarning, SpeakerContext, resolve_speakers
from scryon_dagster.domain.transcript.normalization import NormalizationError, Provenance, normalize, renormalize
from scryon_dagster.domain.transcript.versions import (
    ALIGNMENT_VERSION,
    NAMING_STRATEGY_VERSION,
    NORMALIZATION_VERSION,
    SCHEMA_VERSION,
)
from scryon_dagster.domain.transcript.voice_match import VoiceMatchResult, bucket_voice_match

__all__ = [
    "ALIGNMENT_VERSION",
    "NAMING_STRATEGY_VERSION",
    "NORMALIZATION_VERSION",
    "SCHEMA_VERSION",
    "AlignedTranscript",
    "AlignmentError",
    "Confidence",
    "LabelSource",
    "NormalizationError",
    "NormalizedTranscript",
    "PipelineInfo",
    "Provenance",
    "ResolutionWarning",
    "Role",
    "SpeakerContext",
    "SpeakerResolution",
    "TranscriptFormatError",
    "TranscriptSegment",
    "TranscriptSpeaker",
    "VoiceMatchResult",
    "VoiceMatchStatus",
    "align",
    "bucket_voice_match",
    "build_transcript",
    "normalize",
    "renormalize",
    "resolve_speakers",
]
