"""The stored-transcript contract: camelCase JSON, and every older version still parses."""

from __future__ import annotations

import json
from typing import Any

import pytest

from scryon_dagster.domain.transcript import (
    NORMALIZATION_VERSION,
    Confidence,
    LabelSource,
    NormalizedTranscript,
    Role,
    TranscriptFormatError,
    VoiceMatchStatus,
)
from tests.unit.transcript.builders import normalized

# As the reference (normalization v3) stored it: categorical alignment confidence, dotted alignment version,
# voiceProfileMatched null, a speaker without voice fields.
REFERENCE_V3: dict[str, Any] = {
    "schemaVersion": 2,
    "callId": "f0a1d2e3-0000-4000-8000-000000000001",
    "language": "en",
    "durationSeconds": 240,
    "cleanText": "[00:00 - 00:04] Asha: Hi Vikram, I'll send the revised pricing today.",
    "speakers": [
        {
            "speakerId": "spk_1",
            "sourceSpeakerId": "SPEAKER_00",
            "label": "Asha",
            "displayName": "Asha",
            "role": "USER",
            "confidence": "HIGH",
            "labelSource": "GREETING_MATCH",
            "voiceMatchScore": None,
            "voiceProfileMatched": None,
        },
        {
            "speakerId": "spk_2",
            "sourceSpeakerId": "SPEAKER_01",
            "label": "Vikram",
            "displayName": "Vikram",
            "role": "CONTACT",
            "confidence": "MEDIUM",
            "labelSource": "BY_ELIMINATION",
        },
    ],
    "segments": [
        {
            "id": "seg_0001",
            "speaker": "Asha",
            "speakerLabel": "Asha",
            "speakerDisplayName": "Asha",
            "speakerId": "spk_1",
            "sourceSpeakerId": "SPEAKER_00",
            "role": "USER",
            "startSeconds": 0.0,
            "endSeconds": 4.2,
            "text": "Hi Vikram, I'll send the revised pricing today.",
            "alignmentConfidence": "HIGH",
        }
    ],
    "speakerResolution": {
        "strategyVersion": 2,
        "usedUserDisplayName": True,
        "usedContactName": True,
        "usedDirection": True,
        "usedPhoneFallback": False,
        "voiceEmbeddingEnabled": False,
        "voiceProfileUsed": False,
        "voiceMatchStatus": "DISABLED",
        "totalSpeakerCount": 2,
        "resolvedSpeakerCount": 2,
        "warnings": [],
    },
    "pipeline": {
        "transcriptionProvider": "lemonfox",
        "transcriptionModel": "whisper-1",
        "diarizationProvider": "pyannote",
        "diarizationModel": "precision-2",
        "alignmentVersion": "1.0",
        "normalizationVersion": 3,
        "status": "COMPLETED",
    },
    "createdAt": "2026-05-29T13:00:42Z",
}

# A first-generation artifact: no speakers block, no resolution, no pipeline, Whisper-style segment keys.
LEGACY_V1: dict[str, Any] = {
    "callId": "f0a1d2e3-0000-4000-8000-000000000002",
    "language": "en",
    "segments": [
        {"id": 0, "speaker": "Speaker 1", "start": 0.0, "end": 2.5, "text": "Hello?"},
        {"id": 1, "speaker": "Speaker 2", "start": 2.8, "end": 5.0, "text": "Hi, it's me."},
        {"id": 2, "speaker": "Speaker 1", "start": 5.2, "end": 6.0, "text": "Oh hi."},
    ],
}


def test_serialises_with_the_camel_case_names_of_the_contract() -> None:
    data = json.loads(normalized([("SPEAKER_00", "Hello there."), ("SPEAKER_01", "Hi, good morning.")]).to_json_bytes())

    assert set(data) == {
        "schemaVersion", "callId", "language", "durationSeconds", "cleanText", "speakers", "segments",
        "speakerResolution", "pipeline", "createdAt",
    }  # fmt: skip
    assert set(data["speakers"][0]) == {
        "speakerId", "sourceSpeakerId", "label", "displayName", "role", "confidence", "labelSource",
        "voiceMatchScore", "voiceProfileMatched",
    }  # fmt: skip
    assert set(data["segments"][0]) == {
        "id", "speaker", "speakerLabel", "speakerDisplayName", "speakerId", "sourceSpeakerId", "role",
        "startSeconds", "endSeconds", "text", "alignmentConfidence", "alignmentScore",
    }  # fmt: skip
    assert data["segments"][0]["alignmentConfidence"] in {"HIGH", "MEDIUM", "LOW"}
    assert isinstance(data["pipeline"]["alignmentVersion"], str)
    assert set(data["speakerResolution"]) == {
        "strategyVersion", "usedUserDisplayName", "usedContactName", "usedDirection", "usedPhoneFallback",
        "voiceEmbeddingEnabled", "voiceProfileUsed", "voiceMatchStatus", "totalSpeakerCount",
        "resolvedSpeakerCount", "warnings",
    }  # fmt: skip
    assert set(data["pipeline"]) == {
        "transcriptionProvider", "transcriptionModel", "diarizationProvider", "diarizationModel",
        "alignmentVersion", "normalizationVersion", "status",
    }  # fmt: skip
    assert data["pipeline"]["normalizationVersion"] == NORMALIZATION_VERSION
    assert data["createdAt"] == "2026-05-29T13:00:42Z"


def test_reads_our_earlier_artifacts_with_a_numeric_confidence_and_an_integer_alignment_version() -> None:
    data = json.loads(normalized([("SPEAKER_00", "Hello there.")]).to_json_bytes())
    for segment in data["segments"]:
        segment["alignmentConfidence"] = 0.7
        del segment["alignmentScore"]
    data["pipeline"]["alignmentVersion"] = 2

    transcript = NormalizedTranscript.parse(json.dumps(data))

    assert transcript.segments[0].alignment_score == pytest.approx(0.7)
    assert transcript.segments[0].alignment_confidence is Confidence.MEDIUM
    assert transcript.pipeline.alignment_version == "2.0"


def test_round_trips_through_json() -> None:
    transcript = normalized([("SPEAKER_00", "Hello there."), ("SPEAKER_01", "Hi, good morning.")])

    assert NormalizedTranscript.parse(transcript.to_json_bytes()) == transcript
    assert NormalizedTranscript.parse(transcript.to_json_bytes().decode()) == transcript


def test_reads_the_reference_normalization_v3_artifact() -> None:
    transcript = NormalizedTranscript.parse(json.dumps(REFERENCE_V3))

    assert transcript.pipeline.normalization_version == 3
    assert transcript.pipeline.alignment_version == "1.0"
    assert transcript.segments[0].alignment_confidence is Confidence.HIGH
    assert transcript.segments[0].alignment_score == pytest.approx(0.9)  # the category's midpoint
    assert transcript.speakers[0].voice_profile_matched is None  # as the reference wrote it: no profile used
    assert transcript.speakers[1].voice_match_score is None
    assert transcript.speakers[0].label_source is LabelSource.GREETING_MATCH
    assert transcript.speakers[1].confidence is Confidence.MEDIUM
    assert transcript.speaker_resolution.voice_match_status is VoiceMatchStatus.DISABLED


def test_reads_a_first_generation_transcript_without_resolution_or_pipeline() -> None:
    transcript = NormalizedTranscript.parse(json.dumps(LEGACY_V1))

    assert [s.id for s in transcript.segments] == ["seg_0001", "seg_0002", "seg_0003"]
    assert [s.speaker_id for s in transcript.segments] == ["spk_1", "spk_2", "spk_1"]
    assert (transcript.segments[0].start_seconds, transcript.segments[0].end_seconds) == (0.0, 2.5)
    assert transcript.speaker_resolution.total_speaker_count == 2
    assert [(s.speaker_id, s.label, s.role) for s in transcript.speakers] == [
        ("spk_1", "Speaker 1", Role.UNKNOWN),
        ("spk_2", "Speaker 2", Role.UNKNOWN),
    ]
    assert transcript.schema_version == 2
    assert transcript.speaker_resolution.warnings == []
    assert transcript.pipeline.normalization_version == 0
    assert transcript.created_at == ""


def test_enum_values_are_read_case_insensitively() -> None:
    data = json.loads(json.dumps(REFERENCE_V3))
    data["speakers"][0]["role"] = "user"
    data["speakers"][0]["labelSource"] = "greeting-match"

    transcript = NormalizedTranscript.parse(json.dumps(data))

    assert transcript.speakers[0].role is Role.USER
    assert transcript.speakers[0].label_source is LabelSource.GREETING_MATCH


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe not utf-8",
        "{not json",
        "[1, 2, 3]",
        json.dumps({"segments": [{"text": "Call me on 555 123 4567, Jonathan"}]}),
        json.dumps({**REFERENCE_V3, "segments": [{**REFERENCE_V3["segments"][0], "startSeconds": "Jonathan"}]}),
        json.dumps({**REFERENCE_V3, "speakers": [{**REFERENCE_V3["speakers"][0], "role": "Jonathan"}]}),
    ],
)
def test_garbage_raises_a_domain_error_that_quotes_no_content(raw: bytes | str) -> None:
    with pytest.raises(TranscriptFormatError) as caught:
        NormalizedTranscript.parse(raw)

    message = str(caught.value)
    assert "Jonathan" not in message
    assert "555" not in message
    assert caught.value.__cause__ is None


def test_speaker_by_id() -> None:
    transcript = NormalizedTranscript.parse(json.dumps(REFERENCE_V3))

    speaker = transcript.speaker_by_id("spk_2")
    assert speaker is not None
    assert speaker.label == "Vikram"
    assert transcript.speaker_by_id("spk_9") is None
