"""The pipeline's shared decisions: the retry rule, whether a call is diarized, what Lemonfox is sent and how
far apart paced provider requests go."""

from __future__ import annotations

import bisect
import random

import pytest

from scryon_dagster.domain.calls import ErrorCode
from scryon_dagster.domain.policy import (
    REQUEST_DEPARTURE_SLACK_SECONDS,
    TRANSIENT_ERROR_CODES,
    RetryPolicy,
    TranscriptionInput,
    diarization_skip_reason,
    is_transient,
    request_interval_seconds,
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


def _most_arrivals_in_a_minute(interval: float, delays: list[float]) -> int:
    arrivals = sorted(slot * interval + delay for slot, delay in enumerate(delays))
    return max(bisect.bisect_left(arrivals, arrival + 60.0) - first for first, arrival in enumerate(arrivals))


@pytest.mark.parametrize("per_minute", [1, 6, 95, 600])
def test_paced_requests_stay_within_the_budget_however_late_each_leaves_within_the_slack(per_minute: int) -> None:
    rng = random.Random(per_minute)
    requests = 4 * per_minute + 5
    worst_cases = [
        [0.0] * requests,
        [REQUEST_DEPARTURE_SLACK_SECONDS * (slot % 2) for slot in range(requests)],
        [rng.uniform(0.0, REQUEST_DEPARTURE_SLACK_SECONDS) for _ in range(requests)],
    ]
    for delays in worst_cases:
        assert _most_arrivals_in_a_minute(request_interval_seconds(per_minute), delays) <= per_minute


def test_spacing_a_budget_evenly_over_the_minute_alone_lets_late_departures_exceed_it() -> None:
    # what the slack is for: an early request leaving late and the next on time crowd a minute
    per_minute = 95
    delays = [REQUEST_DEPARTURE_SLACK_SECONDS if slot == 0 else 0.0 for slot in range(2 * per_minute)]
    assert _most_arrivals_in_a_minute(60.0 / per_minute, delays) > per_minute


def test_a_budget_below_one_request_per_minute_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        request_interval_seconds(0)
