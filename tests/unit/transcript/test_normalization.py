"""Normalization: each step of system.md §5 on realistic inputs."""

from __future__ import annotations

import itertools
import json
from datetime import datetime
from typing import Any

import pytest

from scryon_dagster.domain.provider_outputs import Diarization, RawTranscript
from scryon_dagster.domain.transcript import (
    NORMALIZATION_VERSION,
    LabelSource,
    NormalizationError,
    NormalizedTranscript,
    Role,
    align,
    normalize,
    renormalize,
)
from scryon_dagster.domain.transcript.bubbles import BUBBLE_MAX_CHARS
from scryon_dagster.domain.transcript.models import Confidence
from tests.unit.transcript.builders import CALL_ID, CREATED_AT, PROVENANCE, diarization, normalized, raw_segment


def from_segments(segments: list[dict[str, Any]], turns: list[tuple[str, float, float]] | None) -> NormalizedTranscript:
    raw = RawTranscript.model_validate({"language": "en", "segments": segments})
    diarized = (
        Diarization.model_validate({"diarization": [{"speaker": s, "start": a, "end": b} for s, a, b in turns]})
        if turns is not None
        else None
    )
    return normalize(CALL_ID, align(raw, diarized), provenance=PROVENANCE, created_at=CREATED_AT)


def lines(transcript: NormalizedTranscript) -> list[tuple[str, str]]:
    return [(segment.speaker_id, segment.text) for segment in transcript.segments]


def test_empty_and_non_speech_only_segments_are_dropped() -> None:
    transcript = from_segments(
        [
            raw_segment("Hello?", 0.0),
            {"start": 1.0, "end": 2.0, "text": "   "},
            raw_segment("[MUSIC]", 2.0),
            raw_segment("...", 3.0),
            raw_segment("Hi, it's Asha.", 4.0),
        ],
        [("SPEAKER_00", 0.0, 0.3), ("SPEAKER_01", 4.0, 5.0)],
    )

    assert lines(transcript) == [("spk_1", "Hello?"), ("spk_2", "Hi, it's Asha.")]


def test_stutters_phrase_loops_and_tags_are_cleaned_inside_segments() -> None:
    transcript = normalized(
        [
            ("SPEAKER_00", "So the the the plan is (laughs) simple."),
            ("SPEAKER_01", "Thank you. Thank you. Thank you. Thank you."),
        ]
    )

    assert lines(transcript) == [("spk_1", "So the plan is simple."), ("spk_2", "Thank you.")]


def test_a_loop_spanning_two_whisper_segments_of_one_speaker_is_collapsed() -> None:
    transcript = from_segments(
        [raw_segment("Thank you so much for calling us.", 0.0), raw_segment("Thank you so much for calling us.", 2.2)],
        [("SPEAKER_00", 0.0, 4.4)],
    )

    assert lines(transcript) == [("spk_1", "Thank you so much for calling us.")]


def test_a_tiny_overlap_between_consecutive_segments_is_repaired() -> None:
    transcript = from_segments(
        [
            {"start": 0.0, "end": 2.2, "text": "Can we meet on Friday?"},
            {"start": 2.0, "end": 3.0, "text": "Friday works."},
        ],
        [("SPEAKER_00", 0.0, 2.0), ("SPEAKER_01", 2.0, 3.0)],
    )

    first, second = transcript.segments
    assert first.end_seconds == second.start_seconds == 2.0


def test_a_repeated_whisper_segment_is_dropped_but_an_echoed_reply_is_kept() -> None:
    transcript = from_segments(
        [
            {"start": 0.0, "end": 3.0, "text": "We will send the contract by Monday."},
            {"start": 0.1, "end": 3.0, "text": "We will send the contract by Monday."},
            {"start": 3.5, "end": 4.0, "text": "Okay."},
            {"start": 4.5, "end": 5.0, "text": "Okay."},
        ],
        [("SPEAKER_00", 0.0, 3.2), ("SPEAKER_01", 3.3, 4.2), ("SPEAKER_00", 4.3, 5.0)],
    )

    assert lines(transcript) == [
        ("spk_1", "We will send the contract by Monday."),
        ("spk_2", "Okay."),
        ("spk_1", "Okay."),
    ]


def test_adjacent_turns_of_one_speaker_merge_unless_a_long_pause_separates_them() -> None:
    transcript = from_segments(
        [
            raw_segment("Let me check.", 0.0),
            raw_segment("Okay, found it.", 1.5),
            raw_segment("Are you still there?", 10.0),
        ],
        [("SPEAKER_00", 0.0, 11.5)],
    )

    assert lines(transcript) == [("spk_1", "Let me check. Okay, found it."), ("spk_1", "Are you still there?")]


def test_a_fragment_speaker_is_absorbed_into_the_nearest_main_speaker() -> None:
    transcript = normalized(
        [
            ("SPEAKER_00", "I reviewed the proposal last night and it looks good."),
            ("SPEAKER_02", "Mm hmm."),
            ("SPEAKER_00", "We only need to change the payment terms."),
            ("SPEAKER_01", "That sounds reasonable to me, send it over."),
        ]
    )

    assert [s.source_speaker_id for s in transcript.speakers] == ["SPEAKER_00", "SPEAKER_01"]
    assert lines(transcript)[0] == (
        "spk_1",
        "I reviewed the proposal last night and it looks good. Mm hmm. We only need to change the payment terms.",
    )


def test_a_short_second_party_is_kept_when_it_is_the_only_other_voice() -> None:
    transcript = normalized(
        [("SPEAKER_00", "Hi, I wanted to ask about the invoice from last week."), ("SPEAKER_01", "Sure.")]
    )

    assert [s.source_speaker_id for s in transcript.speakers] == ["SPEAKER_00", "SPEAKER_01"]


def test_an_oversized_turn_is_split_at_sentences_into_contiguous_bubbles() -> None:
    sentences = [f"This is sentence number {n} about the delivery schedule for the project." for n in range(1, 13)]
    transcript = normalized([("SPEAKER_00", " ".join(sentences)), ("SPEAKER_01", "Got it, thanks.")])

    bubbles = [segment for segment in transcript.segments if segment.speaker_id == "spk_1"]
    assert len(bubbles) > 1
    assert all(len(bubble.text) <= BUBBLE_MAX_CHARS for bubble in bubbles)
    assert all(bubble.text.endswith(".") for bubble in bubbles)
    assert " ".join(bubble.text for bubble in bubbles) == " ".join(sentences)
    assert bubbles[0].start_seconds == 0.0
    assert all(a.end_seconds == b.start_seconds for a, b in itertools.pairwise(bubbles))
    assert all(b.start_seconds < b.end_seconds for b in bubbles)
    assert {s.speaker_id for s in transcript.speakers} == {"spk_1", "spk_2"}


def test_a_sentence_longer_than_a_bubble_is_cut_at_clauses_then_words() -> None:
    run_on = ", ".join(f"and then we talked about item {n} in the list of open questions" for n in range(8))
    transcript = normalized([("SPEAKER_00", run_on + ".")])

    assert all(len(segment.text) <= BUBBLE_MAX_CHARS for segment in transcript.segments)
    assert " ".join(segment.text for segment in transcript.segments) == run_on + "."


def test_unspaced_text_longer_than_a_bubble_is_cut_without_inventing_spaces() -> None:
    text = "会" * 450
    transcript = from_segments([{"start": 0.0, "end": 30.0, "text": text}], [("SPEAKER_00", 0.0, 30.0)])

    assert [len(segment.text) for segment in transcript.segments] == [200, 200, 50]
    assert "".join(segment.text for segment in transcript.segments) == text


def test_speakers_are_numbered_by_first_appearance() -> None:
    transcript = normalized([("SPEAKER_01", "Hello?"), ("SPEAKER_00", "Hi, it's me."), ("SPEAKER_01", "Oh hi.")])

    assert [(s.speaker_id, s.source_speaker_id, s.label) for s in transcript.speakers] == [
        ("spk_1", "SPEAKER_01", "Speaker 1"),
        ("spk_2", "SPEAKER_00", "Speaker 2"),
    ]
    assert [s.id for s in transcript.segments] == ["seg_0001", "seg_0002", "seg_0003"]
    assert all(s.label_source is LabelSource.DIARIZATION and s.role is Role.UNKNOWN for s in transcript.speakers)


def test_clean_text_has_one_timed_line_per_segment() -> None:
    transcript = normalized([("SPEAKER_00", "Hello?"), ("SPEAKER_01", "Hi, it's me.")])

    assert transcript.clean_text == "[00:00 - 00:00] Speaker 1: Hello?\n[00:00 - 00:01] Speaker 2: Hi, it's me."


def test_clean_text_switches_to_hours_past_one_hour() -> None:
    transcript = from_segments(
        [raw_segment("Still there?", 3598.5), raw_segment("Yes, still here.", 3605.0)],
        [("SPEAKER_00", 3598.0, 3600.0), ("SPEAKER_01", 3604.0, 3607.0)],
    )

    assert transcript.clean_text.splitlines() == [
        "[59:58 - 59:59] Speaker 1: Still there?",
        "[01:00:05 - 01:00:05] Speaker 2: Yes, still here.",
    ]


def test_phone_numbers_are_masked_in_segments_and_clean_text() -> None:
    transcript = normalized([("SPEAKER_00", "My direct line is 555 123 4567, call anytime.")])

    assert transcript.segments[0].text == "My direct line is •••• 4567, call anytime."
    assert "555" not in transcript.to_json_bytes().decode()


def test_pipeline_block_records_providers_and_versions() -> None:
    transcript = normalized([("SPEAKER_00", "Hello there.")])

    pipeline = transcript.pipeline
    assert (pipeline.transcription_provider, pipeline.transcription_model) == ("lemonfox", "whisper-1")
    assert (pipeline.diarization_provider, pipeline.diarization_model) == ("pyannote", "precision-2")
    assert pipeline.normalization_version == NORMALIZATION_VERSION
    assert transcript.language == "en"
    assert transcript.created_at == "2026-05-29T13:00:42Z"


def test_without_diarization_the_transcription_provider_is_the_diarization_source() -> None:
    transcript = from_segments([raw_segment("Hello there.", 0.0, speaker="SPEAKER_00")], None)

    assert (transcript.pipeline.diarization_provider, transcript.pipeline.diarization_model) == ("lemonfox", None)
    assert transcript.segments[0].alignment_confidence is None


def test_created_at_must_be_timezone_aware() -> None:
    aligned = align(RawTranscript.model_validate({"segments": [raw_segment("Hi.", 0.0)]}), None)

    with pytest.raises(NormalizationError):
        normalize(CALL_ID, aligned, provenance=PROVENANCE, created_at=datetime(2026, 1, 1))


def test_normalization_is_deterministic_and_renormalizing_changes_nothing() -> None:
    script = [
        ("SPEAKER_00", "Hi Ravi, the the the quote is ready. Call me at 555 123 4567."),
        ("SPEAKER_01", "Great. Thank you. Thank you. Thank you."),
        ("SPEAKER_00", " ".join(["We can ship the first batch next week and the rest in March."] * 5)),
    ]
    first, second = normalized(script), normalized(script)

    assert first == second
    assert renormalize(first) == first
    assert renormalize(renormalize(first)) == first


def test_renormalizing_an_older_version_applies_the_current_steps_and_keeps_speaker_records() -> None:
    older = {
        "schemaVersion": 2,
        "callId": CALL_ID,
        "speakers": [
            {"speakerId": "spk_1", "sourceSpeakerId": "SPEAKER_00", "label": "Asha", "displayName": "Asha",
             "role": "USER", "confidence": "HIGH", "labelSource": "GREETING_MATCH"},
            {"speakerId": "spk_2", "sourceSpeakerId": "SPEAKER_02", "label": "Speaker 2", "role": "UNKNOWN"},
            {"speakerId": "spk_3", "sourceSpeakerId": "SPEAKER_01", "label": "Speaker 3", "role": "UNKNOWN"},
        ],
        "segments": [
            {"id": "seg_0001", "speaker": "Asha", "speakerLabel": "Asha", "speakerId": "spk_1",
             "startSeconds": 0.0, "endSeconds": 4.0, "text": "So so so I sent the revised quote this morning."},
            {"id": "seg_0002", "speaker": "Speaker 2", "speakerLabel": "Speaker 2", "speakerId": "spk_2",
             "startSeconds": 4.0, "endSeconds": 4.5, "text": "Mm."},
            {"id": "seg_0003", "speaker": "Speaker 3", "speakerLabel": "Speaker 3", "speakerId": "spk_3",
             "startSeconds": 5.0, "endSeconds": 8.0, "text": "Thanks, I will review it with the team [MUSIC] today."},
        ],
        "pipeline": {"transcriptionProvider": "lemonfox", "transcriptionModel": "whisper-1", "normalizationVersion": 3},
    }  # fmt: skip

    transcript = renormalize(NormalizedTranscript.parse(json.dumps(older)))

    assert [(s.speaker_id, s.label, s.role) for s in transcript.speakers] == [
        ("spk_1", "Asha", Role.USER),
        ("spk_2", "Speaker 2", Role.UNKNOWN),
    ]
    assert transcript.speakers[1].source_speaker_id == "SPEAKER_01"
    assert lines(transcript) == [
        ("spk_1", "So I sent the revised quote this morning. Mm."),
        ("spk_2", "Thanks, I will review it with the team today."),
    ]
    assert transcript.pipeline.normalization_version == NORMALIZATION_VERSION
    assert transcript.speaker_resolution.total_speaker_count == 2
    assert transcript.clean_text.splitlines()[0].startswith("[00:00 - 00:04] Asha: So I sent")
    assert renormalize(transcript) == transcript


def test_alignment_confidence_is_averaged_per_segment() -> None:
    transcript = normalized([("SPEAKER_00", "Hello there."), ("SPEAKER_01", "Hi, good morning.")])

    assert [segment.alignment_score for segment in transcript.segments] == [1.0, 1.0]
    assert {segment.alignment_confidence for segment in transcript.segments} == {Confidence.HIGH}


def test_an_empty_raw_transcript_normalizes_to_no_segments() -> None:
    transcript = from_segments([], [])

    assert (transcript.segments, transcript.speakers, transcript.clean_text) == ([], [], "")
    assert diarization([]).speaker_count == 0
