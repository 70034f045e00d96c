"""Bucketing pyannote's identify output into a voice-match result."""

from __future__ import annotations

import pytest

from scryon_dagster.domain.provider_outputs import Identification
from scryon_dagster.domain.transcript import Confidence, VoiceMatchResult, VoiceMatchStatus, bucket_voice_match


def identification(scores: dict[str, float], *, label: str = "user") -> Identification:
    return Identification.model_validate(
        {
            "diarization": [{"speaker": s, "start": i * 5.0, "end": i * 5.0 + 4} for i, s in enumerate(scores)],
            "identification": [],
            "voiceprints": [{"speaker": s, "match": None, "confidence": {label: c}} for s, c in scores.items()],
        }
    )


def bucket(scores: dict[str, float]) -> VoiceMatchResult:
    return bucket_voice_match(identification(scores), high_threshold=0.85, medium_threshold=0.75)


def test_one_speaker_over_the_high_threshold_is_a_high_match() -> None:
    result = bucket({"SPEAKER_00": 91, "SPEAKER_01": 12})

    assert (result.status, result.matched_speaker, result.confidence) == (
        VoiceMatchStatus.MATCHED,
        "SPEAKER_00",
        Confidence.HIGH,
    )
    assert result.scores == {"SPEAKER_00": 0.91, "SPEAKER_01": 0.12}
    assert result.profile_used


def test_one_speaker_between_the_thresholds_is_a_medium_match() -> None:
    result = bucket({"SPEAKER_00": 20, "SPEAKER_01": 78})

    assert (result.status, result.matched_speaker, result.confidence) == (
        VoiceMatchStatus.MATCHED,
        "SPEAKER_01",
        Confidence.MEDIUM,
    )


def test_thresholds_are_inclusive() -> None:
    assert bucket({"SPEAKER_00": 75}).status is VoiceMatchStatus.MATCHED
    assert bucket({"SPEAKER_00": 85}).confidence is Confidence.HIGH


def test_nobody_over_the_threshold_is_no_match() -> None:
    result = bucket({"SPEAKER_00": 40, "SPEAKER_01": 74.9})

    assert (result.status, result.matched_speaker) == (VoiceMatchStatus.NO_MATCH, None)
    assert result.score_for("SPEAKER_01") == pytest.approx(0.749)


def test_more_than_one_speaker_over_the_threshold_is_ambiguous() -> None:
    result = bucket({"SPEAKER_00": 80, "SPEAKER_01": 90})

    assert (result.status, result.matched_speaker, result.confidence) == (VoiceMatchStatus.AMBIGUOUS, None, None)
    assert result.profile_used


def test_only_the_named_voiceprint_counts_when_asked() -> None:
    data = identification({"SPEAKER_00": 30})
    data = Identification.model_validate(
        {"voiceprints": [{"speaker": "SPEAKER_00", "confidence": {"user": 30, "someone-else": 99}}]}
    )

    assert bucket_voice_match(data, high_threshold=0.85, medium_threshold=0.75).status is VoiceMatchStatus.MATCHED
    scoped = bucket_voice_match(data, high_threshold=0.85, medium_threshold=0.75, voiceprint_label="user")
    assert scoped.status is VoiceMatchStatus.NO_MATCH


def test_an_output_without_scores_for_heard_speakers_is_a_failure() -> None:
    heard = Identification.model_validate({"diarization": [{"speaker": "SPEAKER_00", "start": 0, "end": 3}]})
    silent = Identification.model_validate({})

    assert bucket_voice_match(heard, high_threshold=0.85, medium_threshold=0.75).status is VoiceMatchStatus.FAILED
    assert bucket_voice_match(silent, high_threshold=0.85, medium_threshold=0.75).status is VoiceMatchStatus.NO_MATCH


def test_out_of_range_scores_are_clamped() -> None:
    assert bucket({"SPEAKER_00": 140}).scores == {"SPEAKER_00": 1.0}


@pytest.mark.parametrize(("high", "medium"), [(0.7, 0.8), (1.2, 0.5), (0.8, -0.1)])
def test_inconsistent_thresholds_are_refused(high: float, medium: float) -> None:
    with pytest.raises(ValueError, match="thresholds"):
        bucket_voice_match(identification({"SPEAKER_00": 90}), high_threshold=high, medium_threshold=medium)


def test_results_for_runs_that_did_not_happen() -> None:
    assert [
        r.status for r in (VoiceMatchResult.disabled(), VoiceMatchResult.no_profile(), VoiceMatchResult.failed())
    ] == [
        VoiceMatchStatus.DISABLED,
        VoiceMatchStatus.NO_PROFILE,
        VoiceMatchStatus.FAILED,
    ]
    assert not any(r.profile_used for r in (VoiceMatchResult.disabled(), VoiceMatchResult.failed()))
    assert VoiceMatchResult.disabled().score_for("SPEAKER_00") is None
