"""Recorded provider responses (the documented shapes and their variants) parse into the typed models."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from scryon_dagster.adapters.errors import PermanentProviderError, RateLimitedError
from scryon_dagster.adapters.http import ANALYSIS_CODES, DIARIZATION_CODES, error_for_response
from scryon_dagster.adapters.lemonfox import parse_transcription
from scryon_dagster.adapters.llm import parse_chat_completion
from scryon_dagster.adapters.pyannote import parse_job
from scryon_dagster.domain.calls import ErrorCode
from scryon_dagster.domain.provider_outputs import Diarization, Identification

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_lemonfox_words_per_segment_with_speaker_labels() -> None:
    transcript = parse_transcription(fixture_bytes("lemonfox_words_per_segment.json"))

    assert [segment.speaker for segment in transcript.segments] == ["SPEAKER_00", "SPEAKER_01"]
    assert [len(segment.words) for segment in transcript.segments] == [7, 6]
    assert transcript.words == []
    assert transcript.duration == pytest.approx(9.42)


def test_lemonfox_top_level_words_and_null_speakers() -> None:
    transcript = parse_transcription(fixture_bytes("lemonfox_top_level_words_speaker_null.json"))

    assert all(segment.speaker is None for segment in transcript.segments)
    assert all(segment.words == [] for segment in transcript.segments)
    assert [word.word for word in transcript.words] == ["Hello", "Yes", "speaking", "Great"]


def test_lemonfox_words_in_both_places_and_missing_timestamps() -> None:
    transcript = parse_transcription(fixture_bytes("lemonfox_both_word_lists_missing_timestamps.json"))

    untimed_in_segment = [w for w in transcript.segments[0].words if w.start is None]
    untimed_top_level = [w for w in transcript.words if w.start is None and w.end is None]
    assert [w.word for w in untimed_in_segment] == ["4,200"]
    assert [w.word for w in untimed_top_level] == ["4,200"]


def test_lemonfox_empty_transcript_is_a_permanent_empty_error() -> None:
    with pytest.raises(PermanentProviderError) as caught:
        parse_transcription(fixture_bytes("lemonfox_empty.json"))
    assert caught.value.code is ErrorCode.TRANSCRIPTION_EMPTY


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b'{"segments": [{"text": "no times"}]}'])
def test_lemonfox_unreadable_output_is_invalid_output(raw: bytes) -> None:
    with pytest.raises(PermanentProviderError) as caught:
        parse_transcription(raw)
    assert caught.value.code is ErrorCode.TRANSCRIPTION_INVALID_OUTPUT


def test_pyannote_running_job_has_no_output() -> None:
    snapshot = parse_job(fixture_bytes("pyannote_job_running.json"))

    assert (snapshot.status, snapshot.output_bytes, snapshot.is_terminal) == ("running", None, False)


def test_pyannote_diarization_output_is_kept_verbatim_and_parses() -> None:
    raw = fixture_bytes("pyannote_job_diarization_succeeded.json")
    snapshot = parse_job(raw)

    assert snapshot.output_bytes is not None
    assert snapshot.output_bytes in raw  # the exact bytes, not a re-serialisation
    assert json.loads(snapshot.output_bytes) == json.loads(raw)["output"]
    diarization = Diarization.parse(snapshot.output_bytes)
    assert diarization.speaker_count == 3
    assert diarization.exclusive_diarization is not None
    assert diarization.turns_for_alignment == diarization.exclusive_diarization


def test_pyannote_identify_output_parses() -> None:
    snapshot = parse_job(fixture_bytes("pyannote_job_identify_succeeded.json"))

    assert snapshot.output_bytes is not None
    identification = Identification.parse(snapshot.output_bytes)
    assert [(v.speaker, v.match, v.confidence) for v in identification.voiceprints] == [
        ("SPEAKER_00", "user", {"user": 84}),
        ("SPEAKER_01", None, {"user": 12}),
    ]
    assert identification.identification[0].diarization_speaker == "SPEAKER_00"


def test_pyannote_voiceprint_output_is_an_opaque_string() -> None:
    snapshot = parse_job(fixture_bytes("pyannote_job_voiceprint_succeeded.json"))

    assert snapshot.output_bytes is not None
    assert isinstance(json.loads(snapshot.output_bytes)["voiceprint"], str)


def test_pyannote_failed_job_and_webhook_body() -> None:
    failed = parse_job(fixture_bytes("pyannote_job_failed.json"))
    delivered = parse_job(fixture_bytes("pyannote_webhook_diarization.json"))

    assert (failed.status, failed.is_terminal, failed.output_bytes) == ("failed", True, None)
    assert delivered.output_bytes == b'{"diarization":[{"speaker":"SPEAKER_00","start":6.665,"end":7.165}]}'


@pytest.mark.parametrize(
    "raw",
    [
        b'{"jobId": "x"}',
        b'{"status": "running"}',
        b'{"jobId": "a b", "status": "running"}',
        b'{"jobId": "x", "status": 1}',
    ],
)
def test_pyannote_job_document_without_valid_id_or_status_is_invalid_output(raw: bytes) -> None:
    with pytest.raises(PermanentProviderError) as caught:
        parse_job(raw)
    assert caught.value.code is ErrorCode.DIARIZATION_INVALID_OUTPUT


def test_pyannote_400_body_is_a_permanent_client_error_without_its_text() -> None:
    response = httpx.Response(400, content=fixture_bytes("pyannote_error_400.json"))

    error = error_for_response(response, provider="pyannote", codes=DIARIZATION_CODES)

    assert isinstance(error, PermanentProviderError)
    assert error.code is ErrorCode.DIARIZATION_4XX
    assert "valid URL" not in str(error)


def test_openai_completion_with_cached_tokens() -> None:
    result = parse_chat_completion(fixture_bytes("openai_chat_completion.json"), request_id="req_1")

    assert result.content == '{"names":[]}'
    assert (result.refusal, result.finish_reason) == (None, "stop")
    assert (result.prompt_tokens, result.completion_tokens, result.cached_tokens) == (1917, 6, 1792)
    assert (result.request_id, result.model) == ("req_1", "gpt-4o-mini-2024-07-18")


def test_openai_refusal_and_truncation_are_returned_not_raised() -> None:
    refusal = parse_chat_completion(fixture_bytes("openai_chat_refusal.json"))
    truncated = parse_chat_completion(fixture_bytes("openai_chat_length.json"))

    assert (refusal.content, refusal.refusal is not None, refusal.cached_tokens) == (None, True, 0)
    assert truncated.finish_reason == "length"


def test_openai_error_bodies_classify_by_code() -> None:
    quota = httpx.Response(429, content=fixture_bytes("openai_error_insufficient_quota.json"))
    limited = httpx.Response(
        429, content=fixture_bytes("openai_error_rate_limit.json"), headers={"retry-after-ms": "1500"}
    )

    quota_error = error_for_response(quota, provider="llm", codes=ANALYSIS_CODES)
    limit_error = error_for_response(limited, provider="llm", codes=ANALYSIS_CODES)

    assert isinstance(quota_error, PermanentProviderError)
    assert quota_error.code is ErrorCode.ANALYSIS_4XX
    assert str(quota_error) == "llm returned HTTP 429 (insufficient_quota)"
    assert isinstance(limit_error, RateLimitedError)
    assert limit_error.retry_after == pytest.approx(1.5)
    assert "RPM" not in str(limit_error)


@pytest.mark.parametrize(
    "raw",
    [b"{}", b'{"choices": []}', b'{"choices": [{"message": "x"}]}', b'{"choices": [{"message": {"content": 3}}]}'],
)
def test_openai_unreadable_envelope_is_invalid_output(raw: bytes) -> None:
    with pytest.raises(PermanentProviderError) as caught:
        parse_chat_completion(raw)
    assert caught.value.code is ErrorCode.ANALYSIS_INVALID_OUTPUT
