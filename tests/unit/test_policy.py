"""The pipeline's shared decisions: the retry rule, whether a call is diarized and what Lemonfox is sent."""

from __future__ import annotations

import pytest

from scryon_dagster.domain.calls import ErrorCode
from scryon_dagster.domain.policy import (
    TRANSIENT_ERROR_CODES,
    RetryPolicy,
    TranscriptionInput,
    diarization_skip_reason,
    is_transient,
    transcription_input,
)

POLICY = RetryPolicy(max_retries=4, base_delay_seconds=5, max_delay_seconds=30)


@pytest.mark.parametrize(
    "code",
    [
        ErrorCode.ANALYSIS_RATE_LIMITED,
        ErrorCode.TRANSCRIPTION_UNAVAILABLE,
        ErrorCode.TRANSCRIPTION_INVALID_OUTPUT,
        ErrorCode.STORAGE_UNAVAILABLE,
        ErrorCode.DATABASE_UNAVAILABLE,
        ErrorCode.RUN_CRASHED,
        ErrorCode.STALE_JOB,
    ],
)
def test_transient_failures_are_retried_with_a_growing_capped_wait(code: ErrorCode) -> None:
    assert is_transient(code)
    assert [POLICY.delay_before_retry(code, n) for n in range(5)] == [5, 10, 20, 30, None]
    assert POLICY.delays(code) == [5, 10, 20, 30]


@pytest.mark.parametrize(
    "code",
    [
        ErrorCode.TRANSCRIPTION_4XX,
        ErrorCode.ANALYSIS_4XX,
        ErrorCode.TRANSCRIPTION_EMPTY,
        ErrorCode.AUDIO_MISSING,
        ErrorCode.INTERNAL_ERROR,
        ErrorCode.MANUAL_SWEEP,
        ErrorCode.LAUNCH_FAILED,
        "superseded",
    ],
)
def test_permanent_failures_fail_at_once(code: str) -> None:
    assert not is_transient(code)
    assert POLICY.delay_before_retry(code, 0) is None
    assert POLICY.delays(code) == []


def test_every_transient_code_is_a_known_error_code() -> None:
    assert {code.value for code in ErrorCode} >= TRANSIENT_ERROR_CODES


def test_no_retries_configured_means_none() -> None:
    assert RetryPolicy(max_retries=0, base_delay_seconds=5, max_delay_seconds=5).delays(ErrorCode.RUN_CRASHED) == []


def test_a_policy_with_a_cap_below_its_base_is_refused() -> None:
    with pytest.raises(ValueError, match="delay"):
        RetryPolicy(max_retries=1, base_delay_seconds=10, max_delay_seconds=5)


@pytest.mark.parametrize(
    ("enabled", "configured", "audio_seconds", "reason"),
    [
        (False, True, 60.0, "disabled"),
        (True, False, 60.0, "not_configured"),
        (True, True, 31 * 60.0, "audio_too_long"),
        (True, True, 30 * 60.0, None),
        (True, True, None, None),
    ],
)
def test_diarization_is_skipped_for_one_reason_or_runs(
    enabled: bool, configured: bool, audio_seconds: float | None, reason: str | None
) -> None:
    assert (
        diarization_skip_reason(
            enabled=enabled, configured=configured, audio_seconds=audio_seconds, max_audio_minutes=30
        )
        == reason
    )


@pytest.mark.parametrize(
    ("preprocessed_bytes", "original_bytes", "expected"),
    [
        (90, 20, TranscriptionInput.PREPROCESSED),  # the WAV fits
        (100, 120, TranscriptionInput.PREPROCESSED),  # exactly at the limit fits; a larger recording is not sent
        (230, 15, TranscriptionInput.ORIGINAL),  # a long call: its WAV is over, its compressed recording is not
        (None, 60, TranscriptionInput.ORIGINAL),  # preprocessing off or fell back
        (230, 150, None),  # neither fits: the call fails before any provider is paid
        (None, 150, None),
    ],
)
def test_lemonfox_is_sent_the_first_audio_within_its_upload_limit_or_nothing(
    preprocessed_bytes: int | None, original_bytes: int, expected: TranscriptionInput | None
) -> None:
    assert (
        transcription_input(preprocessed_bytes=preprocessed_bytes, original_bytes=original_bytes, max_upload_bytes=100)
        is expected
    )
