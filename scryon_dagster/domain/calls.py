"""Call lifecycle: statuses, the guarded transition table, stages, artifact types and error codes."""

from __future__ import annotations

from enum import StrEnum


class CallStatus(StrEnum):
    QUEUED = "QUEUED"
    TRANSCRIBING = "TRANSCRIBING"
    ANALYZING = "ANALYZING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


ACTIVE_STATUSES = frozenset({CallStatus.QUEUED, CallStatus.TRANSCRIBING, CallStatus.ANALYZING})
TERMINAL_STATUSES = frozenset({CallStatus.COMPLETED, CallStatus.FAILED})

# Every legal move; anything else is refused by the guarded transition.
# COMPLETED/FAILED -> QUEUED is the runbook's "reprocess".
ALLOWED_TRANSITIONS: frozenset[tuple[CallStatus, CallStatus]] = frozenset(
    {
        (CallStatus.QUEUED, CallStatus.TRANSCRIBING),
        (CallStatus.TRANSCRIBING, CallStatus.ANALYZING),
        (CallStatus.TRANSCRIBING, CallStatus.COMPLETED),  # analysis switched off
        (CallStatus.ANALYZING, CallStatus.COMPLETED),
        (CallStatus.QUEUED, CallStatus.FAILED),
        (CallStatus.TRANSCRIBING, CallStatus.FAILED),
        (CallStatus.ANALYZING, CallStatus.FAILED),
        # a transient failure or a dead run: back to the queue for an automatic retry
        (CallStatus.TRANSCRIBING, CallStatus.QUEUED),
        (CallStatus.ANALYZING, CallStatus.QUEUED),
        (CallStatus.COMPLETED, CallStatus.QUEUED),
        (CallStatus.FAILED, CallStatus.QUEUED),
        # a run launched by hand (UI materialization, reprocess job) takes an idle call directly
        (CallStatus.COMPLETED, CallStatus.TRANSCRIBING),
        (CallStatus.FAILED, CallStatus.TRANSCRIBING),
    }
)


def is_allowed_transition(current: CallStatus, target: CallStatus) -> bool:
    return (current, target) in ALLOWED_TRANSITIONS


class Direction(StrEnum):
    INCOMING = "INCOMING"
    OUTGOING = "OUTGOING"
    UNKNOWN = "UNKNOWN"


class ArtifactType(StrEnum):
    TEMP_AUDIO = "TEMP_AUDIO"
    DIARIZATION_JSON = "DIARIZATION_JSON"
    RAW_TRANSCRIPT_JSON = "RAW_TRANSCRIPT_JSON"
    NORMALIZED_TRANSCRIPT_JSON = "NORMALIZED_TRANSCRIPT_JSON"
    ANALYSIS_JSON = "ANALYSIS_JSON"


class Stage(StrEnum):
    """Stage names of ``call_processing_events``, as the reference's pipeline writes them; ``STATUS`` and
    ``LLM_SPEAKER_NAMING`` are ours."""

    AUDIO_PREPROCESSED = "AUDIO_PREPROCESSED"
    DIARIZED = "DIARIZED"
    PYANNOTE_FAILED_FALLBACK = "PYANNOTE_FAILED_FALLBACK"
    """Diarization failed softly; the call goes on with Lemonfox's own speaker labels."""
    LEMONFOX_SUBMITTED = "LEMONFOX_SUBMITTED"
    """Callback mode: the audio was submitted; TRANSCRIBED ends when the delivery arrives."""
    TRANSCRIBED = "TRANSCRIBED"
    TRANSCRIPT_ALIGNED = "TRANSCRIPT_ALIGNED"
    TRANSCRIPT_NORMALIZED = "TRANSCRIPT_NORMALIZED"
    VOICE_MATCH = "VOICE_MATCH_STARTED"
    SPEAKER_REFINED = "SPEAKER_REFINED"
    LLM_SPEAKER_NAMING = "LLM_SPEAKER_NAMING"
    ANALYZED = "ANALYZED"
    ACTION_ITEMS_EXTRACTED = "ACTION_ITEMS_EXTRACTED"
    STATUS = "STATUS"


class EventStatus(StrEnum):
    STARTED = "STARTED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"


class ErrorCode(StrEnum):
    """Short, stable, opaque failure codes stored in ``call_records.error_reason``."""

    TRANSCRIPTION_4XX = "transcription_4xx"
    TRANSCRIPTION_TIMEOUT = "transcription_timeout"
    TRANSCRIPTION_EMPTY = "transcription_empty"
    TRANSCRIPTION_UNAVAILABLE = "transcription_unavailable"
    TRANSCRIPTION_INVALID_OUTPUT = "transcription_invalid_output"
    TRANSCRIPTION_RATE_LIMITED = "transcription_rate_limited"
    DIARIZATION_4XX = "diarization_4xx"
    DIARIZATION_TIMEOUT = "diarization_timeout"
    DIARIZATION_UNAVAILABLE = "diarization_unavailable"
    DIARIZATION_RATE_LIMITED = "diarization_rate_limited"
    DIARIZATION_JOB_FAILED = "diarization_job_failed"
    DIARIZATION_INVALID_OUTPUT = "diarization_invalid_output"
    VOICE_MATCH_FAILED = "voice_match_failed"
    AUDIO_PREPROCESSING_FAILED = "audio_preprocessing_failed"
    AUDIO_TOO_LARGE_FOR_PROVIDER = "audio_too_large_for_provider"
    """The audio to send is over the provider's documented upload limit: refused before sending (and paying)."""
    ANALYSIS_4XX = "analysis_4xx"
    ANALYSIS_TIMEOUT = "analysis_timeout"
    ANALYSIS_UNAVAILABLE = "analysis_unavailable"
    ANALYSIS_RATE_LIMITED = "analysis_rate_limited"
    ANALYSIS_INVALID_OUTPUT = "analysis_invalid_output"
    AUDIO_MISSING = "audio_missing"
    STORAGE_UNAVAILABLE = "storage_unavailable"
    DATABASE_UNAVAILABLE = "database_unavailable"
    ARTIFACT_MISSING = "artifact_missing"
    NORMALIZATION_FAILED = "normalization_failed"
    STALE_JOB = "stale_job"
    MANUAL_SWEEP = "manual_sweep"
    CALLBACK_TIMEOUT = "callback_timeout"
    RUN_CRASHED = "run_crashed"
    LAUNCH_FAILED = "launch_failed"
    INTERNAL_ERROR = "internal_error"
