"""The pipeline's decisions that more than one part of the system needs, each made here once.

Which failures are worth another try, and when (the transient-vs-permanent rule):

A transient failure (a provider rate limit, outage, timeout or a garbled answer; storage or the
database out of reach; a run that died under the call) sends the call back to the queue with a
growing wait, up to a bounded number of retries per processing cycle. Everything else (a provider's
4xx, undecodable or missing audio, an empty transcript, a bug) fails the call at once: trying again
would only spend money on the same answer.

Whether a call is diarized: the pickup plans the asset by it, the pipeline runs or skips the stage by it,
and the reprocess estimate prices it by it.

Which audio Lemonfox is sent, and whether a call can be transcribed at all within its upload limit: decided
before any provider is started, so that a call certain to fail for size pays for nothing.

Which calls a run launched by hand may take (idle calls), and when a call may be processed again: the
API's reprocess, the runbook's reprocess and the call database's ``begin_processing`` all ask here.

How far apart a provider's paced requests go (one process's pacer and the pacer all processes share).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

from scryon_dagster.domain.calls import TERMINAL_STATUSES, ArtifactType, CallStatus, ErrorCode

TRANSIENT_ERROR_CODES: frozenset[str] = frozenset(
    {
        ErrorCode.TRANSCRIPTION_TIMEOUT,
        ErrorCode.TRANSCRIPTION_UNAVAILABLE,
        ErrorCode.TRANSCRIPTION_RATE_LIMITED,
        ErrorCode.TRANSCRIPTION_INVALID_OUTPUT,
        ErrorCode.DIARIZATION_TIMEOUT,
        ErrorCode.DIARIZATION_UNAVAILABLE,
        ErrorCode.DIARIZATION_RATE_LIMITED,
        ErrorCode.DIARIZATION_INVALID_OUTPUT,
        ErrorCode.ANALYSIS_TIMEOUT,
        ErrorCode.ANALYSIS_UNAVAILABLE,
        ErrorCode.ANALYSIS_RATE_LIMITED,
        ErrorCode.ANALYSIS_INVALID_OUTPUT,
        ErrorCode.STORAGE_UNAVAILABLE,
        ErrorCode.DATABASE_UNAVAILABLE,
        ErrorCode.CALLBACK_TIMEOUT,
        ErrorCode.STALE_JOB,
        ErrorCode.RUN_CRASHED,
    }
)


def is_transient(error_code: str) -> bool:
    return error_code in TRANSIENT_ERROR_CODES


# A paced request leaves up to about this long after its turn (a thread waking up, a connection from the
# pool, the network); a provider counts arrivals.
REQUEST_DEPARTURE_SLACK_SECONDS = 1.0


def request_interval_seconds(per_minute: int) -> float:
    """The spacing of a provider's paced requests under a budget of ``per_minute`` in any 60 s: ``per_minute``
    intervals span a minute and the departure slack, so that however late each request leaves within the
    slack, no ``per_minute + 1`` of them arrive within 60 s (spacing 60 / ``per_minute`` went 0.7 % over
    pyannote's budget across three hosts: bench/README.md, issue 20)."""
    if per_minute < 1:
        raise ValueError("requests per minute must be at least 1")
    return (60.0 + REQUEST_DEPARTURE_SLACK_SECONDS) / per_minute


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff for transient failures of one processing cycle."""

    max_retries: int
    base_delay_seconds: float
    max_delay_seconds: float

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.base_delay_seconds < 0 or self.max_delay_seconds < self.base_delay_seconds:
            raise ValueError("retries must be >= 0 and 0 <= base delay <= max delay")

    def delay_before_retry(self, error_code: str, retries_so_far: int) -> float | None:
        """Seconds to wait before the next try, or None when the call must fail now."""
        if not is_transient(error_code) or retries_so_far >= self.max_retries:
            return None
        return min(self.max_delay_seconds, self.base_delay_seconds * 2**retries_so_far)

    def delays(self, error_code: str) -> list[float]:
        """The wait before each retry a failure with ``error_code`` gets (empty: it fails at once)."""
        return [
            delay
            for retries_so_far in range(self.max_retries)
            if (delay := self.delay_before_retry(error_code, retries_so_far)) is not None
        ]


def diarization_skip_reason(
    *, enabled: bool, configured: bool, audio_seconds: float | None, max_audio_minutes: float
) -> str | None:
    """Why a call is not diarized (``disabled``, ``not_configured``, ``audio_too_long``), or None when it is.
    An unknown duration passes the guard (the pipeline checks again once it has decoded the audio)."""
    if not enabled:
        return "disabled"
    if not configured:
        return "not_configured"
    if audio_seconds is not None and audio_seconds > max_audio_minutes * 60:
        return "audio_too_long"
    return None


class TranscriptionInput(StrEnum):
    """The audio Lemonfox is sent: the preprocessed 16-kHz WAV or the recording as uploaded."""

    PREPROCESSED = "preprocessed"
    ORIGINAL = "original"


def transcription_input(
    *, preprocessed_bytes: int | None, original_bytes: int, max_upload_bytes: int
) -> TranscriptionInput | None:
    """The preprocessed WAV (``preprocessed_bytes``; None when there is none) when it is within Lemonfox's upload
    limit, else the recording as uploaded when that is (a long call's WAV passes 100 MB at about 52 minutes where
    its compressed recording does not); None when neither is: the call can only fail
    ``audio_too_large_for_provider``, and must fail before any provider, diarization included, is paid."""
    if preprocessed_bytes is not None and preprocessed_bytes <= max_upload_bytes:
        return TranscriptionInput.PREPROCESSED
    if original_bytes <= max_upload_bytes:
        return TranscriptionInput.ORIGINAL
    return None


IN_FLIGHT_STATUSES: frozenset[CallStatus] = frozenset({CallStatus.TRANSCRIBING, CallStatus.ANALYZING})
"""Statuses of a call a run is working on: a failure there is retried or failed by ``RetryPolicy``."""
RESTING_STATUSES: frozenset[CallStatus] = TERMINAL_STATUSES
"""Statuses of calls no run holds any more: a run launched by hand (a reprocess) may take them."""

CALL_BUSY = "call_busy"


def is_idle(status: CallStatus, *, claimed: bool) -> bool:
    """Whether a run launched by hand may take the call: it rests, or waits in the queue unclaimed."""
    return status in RESTING_STATUSES or (status is CallStatus.QUEUED and not claimed)


def reprocess_refusal(
    status: CallStatus, *, claimed: bool, needed: Collection[ArtifactType], stored: Collection[ArtifactType]
) -> str | None:
    """Why a call cannot be processed again now, or None when it can: ``call_busy`` (a run holds it),
    ``audio_missing`` (the selection needs TEMP_AUDIO and it is gone), ``artifact_missing`` (a stored
    transcript to re-derive from is gone). ``needed``: the stored inputs the selected stages read;
    ``stored``: those of them that exist."""
    if not is_idle(status, claimed=claimed):
        return CALL_BUSY
    missing = set(needed) - set(stored)
    if ArtifactType.TEMP_AUDIO in missing:
        return ErrorCode.AUDIO_MISSING.value
    if missing:
        return ErrorCode.ARTIFACT_MISSING.value
    return None
