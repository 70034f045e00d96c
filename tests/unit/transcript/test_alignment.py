"""Alignment: word-level speaker assignment, smoothing, borrowed times and every fallback."""

from __future__ import annotations

import math

import pytest

from scryon_dagster.domain.provider_outputs import Diarization, RawTranscript
from scryon_dagster.domain.transcript import AlignmentError, align
from scryon_dagster.domain.transcript.aligned import AlignedTranscript, AlignmentMethod, WordTiming
from tests.unit.transcript.builders import diarization, raw_segment, raw_transcript


def turns(*spans: tuple[str, float, float], exclusive: list[tuple[str, float, float]] | None = None) -> Diarization:
    data: dict[str, object] = {"diarization": [{"speaker": s, "start": a, "end": b} for s, a, b in spans]}
    if exclusive is not None:
        data["exclusiveDiarization"] = [{"speaker": s, "start": a, "end": b} for s, a, b in exclusive]
    return Diarization.model_validate(data)


def words_of(aligned: AlignedTranscript) -> list[tuple[str, str | None]]:
    return [(word.text, word.speaker) for segment in aligned.segments for word in segment.words]


def test_a_segment_straddling_a_speaker_change_is_split_word_by_word() -> None:
    # Whisper put the question and the answer in one segment; diarization knows who said what.
    raw = RawTranscript.model_validate({"segments": [raw_segment("Can you send it today? Yes, I will.", 0.0)]})
    aligned = align(raw, turns(("SPEAKER_00", 0.0, 1.5), ("SPEAKER_01", 1.5, 2.4)))

    assert words_of(aligned) == [
        ("Can", "SPEAKER_00"),
        ("you", "SPEAKER_00"),
        ("send", "SPEAKER_00"),
        ("it", "SPEAKER_00"),
        ("today?", "SPEAKER_00"),
        ("Yes,", "SPEAKER_01"),
        ("I", "SPEAKER_01"),
        ("will.", "SPEAKER_01"),
    ]
    assert aligned.segments[0].method is AlignmentMethod.WORD_OVERLAP
    assert aligned.used_diarization


def test_a_late_diarization_boundary_is_smoothed_to_the_sentence_majority() -> None:
    # The turn change is detected 0.5 s late: "Yes," would go to the first speaker without smoothing.
    raw = RawTranscript.model_validate({"segments": [raw_segment("Can you send it today? Yes, I will send it.", 0.0)]})
    aligned = align(raw, turns(("SPEAKER_00", 0.0, 1.9), ("SPEAKER_01", 1.9, 3.0)))

    yes = aligned.segments[0].words[5]
    assert (yes.text, yes.speaker, yes.smoothed) == ("Yes,", "SPEAKER_01", True)
    assert yes.confidence is not None
    assert yes.confidence < 1.0
    assert aligned.stats.smoothed_word_count == 1


def test_word_confidence_is_the_share_covered_by_the_winning_speaker() -> None:
    raw = RawTranscript.model_validate(
        {
            "segments": [
                {"start": 0.0, "end": 1.0, "text": "Okay.", "words": [{"word": "Okay.", "start": 0.0, "end": 1.0}]}
            ]
        }
    )
    aligned = align(raw, turns(("SPEAKER_00", 0.0, 0.75), ("SPEAKER_01", 0.75, 1.0)))

    word = aligned.segments[0].words[0]
    assert (word.speaker, word.confidence) == ("SPEAKER_00", 0.75)


def test_exclusive_turns_are_preferred_when_present() -> None:
    raw = RawTranscript.model_validate({"segments": [raw_segment("Right.", 0.0)]})
    aligned = align(
        raw,
        turns(("SPEAKER_00", 0.0, 0.3), ("SPEAKER_01", 0.0, 0.3), exclusive=[("SPEAKER_01", 0.0, 0.3)]),
    )

    assert words_of(aligned) == [("Right.", "SPEAKER_01")]


def test_words_without_timestamps_borrow_their_neighbours() -> None:
    raw = RawTranscript.model_validate(
        {
            "segments": [
                {
                    "start": 0.0,
                    "end": 2.0,
                    "text": "We will ship tomorrow morning.",
                    "words": [
                        {"word": "We", "start": 0.0, "end": 0.2},
                        {"word": "will", "start": 0.2, "end": 0.4},
                        {"word": "ship"},
                        {"word": "tomorrow"},
                        {"word": "morning", "start": 1.2, "end": 1.6},
                    ],
                }
            ]
        }
    )
    aligned = align(raw, turns(("SPEAKER_00", 0.0, 2.0)))

    ship, tomorrow = aligned.segments[0].words[2:4]
    assert (ship.start, ship.end) == pytest.approx((0.4, 0.8))
    assert (tomorrow.start, tomorrow.end) == pytest.approx((0.8, 1.2))
    assert ship.timing is WordTiming.BORROWED
    assert aligned.segments[0].words[0].timing is WordTiming.PROVIDER
    assert aligned.stats.borrowed_timing_count == 2


def test_unpunctuated_provider_words_keep_the_segment_text_and_its_punctuation() -> None:
    raw = RawTranscript.model_validate(
        {
            "segments": [
                {
                    "start": 0.0,
                    "end": 1.5,
                    "text": " Don't worry, it's fine.",
                    "words": [
                        {"word": "don", "start": 0.0, "end": 0.2},
                        {"word": "'t", "start": 0.2, "end": 0.3},
                        {"word": "worry", "start": 0.3, "end": 0.7},
                        {"word": "it's", "start": 0.8, "end": 1.0},
                        {"word": "fine", "start": 1.0, "end": 1.5},
                    ],
                }
            ]
        }
    )
    aligned = align(raw, turns(("SPEAKER_00", 0.0, 1.5)))

    words = aligned.segments[0].words
    assert [w.text for w in words] == ["Don't", "worry,", "it's", "fine."]
    assert [(w.start, w.end) for w in words] == [(0.0, 0.3), (0.3, 0.7), (0.8, 1.0), (1.0, 1.5)]
    assert all(w.timing is WordTiming.PROVIDER for w in words)


def test_a_segment_without_any_word_timestamps_is_attributed_as_a_whole() -> None:
    raw = raw_transcript([("SPEAKER_00", "Hello there, this is a long line."), ("SPEAKER_01", "Yes.")], words=False)
    aligned = align(raw, diarization([("SPEAKER_00", "Hello there, this is a long line."), ("SPEAKER_01", "Yes.")]))

    assert [segment.method for segment in aligned.segments] == [AlignmentMethod.SEGMENT_OVERLAP] * 2
    assert {word.speaker for word in aligned.segments[0].words} == {"SPEAKER_00"}
    assert aligned.segments[1].words[0].speaker == "SPEAKER_01"
    assert all(word.timing is WordTiming.INTERPOLATED for word in aligned.segments[0].words)
    first, last = aligned.segments[0].words[0], aligned.segments[0].words[-1]
    assert (first.start, last.end) == pytest.approx((aligned.segments[0].start, aligned.segments[0].end))


def test_top_level_words_fill_segments_that_have_none_and_are_never_counted_twice() -> None:
    first = raw_segment("Good morning.", 0.0)  # carries its own words
    second = raw_segment("How are you?", 1.0, words=False)
    top_level = [*first["words"], *raw_segment("How are you?", 1.0)["words"]]
    raw = RawTranscript.model_validate({"segments": [first, second], "words": top_level})

    aligned = align(raw, turns(("SPEAKER_00", 0.0, 0.6), ("SPEAKER_01", 1.0, 1.9)))

    assert words_of(aligned) == [
        ("Good", "SPEAKER_00"),
        ("morning.", "SPEAKER_00"),
        ("How", "SPEAKER_01"),
        ("are", "SPEAKER_01"),
        ("you?", "SPEAKER_01"),
    ]
    assert all(word.timing is WordTiming.PROVIDER for segment in aligned.segments for word in segment.words)


def test_only_top_level_words_and_text_still_align() -> None:
    raw = RawTranscript.model_validate(
        {
            "text": "Hello? Hi there.",
            "words": [
                {"word": "Hello?", "start": 0.0, "end": 0.4},
                {"word": "Hi", "start": 0.8, "end": 1.0},
                {"word": "there.", "start": 1.0, "end": 1.3},
            ],
        }
    )
    aligned = align(raw, turns(("SPEAKER_00", 0.0, 0.5), ("SPEAKER_01", 0.7, 1.4)))

    assert words_of(aligned) == [("Hello?", "SPEAKER_00"), ("Hi", "SPEAKER_01"), ("there.", "SPEAKER_01")]


def test_without_diarization_lemonfox_speaker_labels_are_used() -> None:
    script = [("SPEAKER_00", "Hello?"), ("SPEAKER_01", "Hi, it's me.")]
    raw = raw_transcript(script, lemonfox_labels=True)

    for missing in (None, Diarization.model_validate({"diarization": []})):
        aligned = align(raw, missing)
        assert words_of(aligned) == [
            ("Hello?", "SPEAKER_00"),
            ("Hi,", "SPEAKER_01"),
            ("it's", "SPEAKER_01"),
            ("me.", "SPEAKER_01"),
        ]
        assert not aligned.used_diarization
        assert {segment.method for segment in aligned.segments} == {AlignmentMethod.PROVIDER_LABELS}
        assert all(word.confidence is None for segment in aligned.segments for word in segment.words)


def test_per_word_lemonfox_labels_win_over_the_segment_label() -> None:
    segment = raw_segment("Hello? Hi.", 0.0, speaker="SPEAKER_00")
    segment["words"][1]["speaker"] = "SPEAKER_01"
    aligned = align(RawTranscript.model_validate({"segments": [segment]}), None)

    assert words_of(aligned) == [("Hello?", "SPEAKER_00"), ("Hi.", "SPEAKER_01")]


def test_no_speaker_information_at_all_leaves_words_unattributed() -> None:
    aligned = align(raw_transcript([("x", "Just one voice here.")]), None)

    assert {word.speaker for segment in aligned.segments for word in segment.words} == {None}
    assert aligned.segments[0].method is AlignmentMethod.UNATTRIBUTED


def test_a_word_in_a_gap_between_turns_goes_to_the_nearest_turn_with_lower_confidence() -> None:
    raw = RawTranscript.model_validate({"segments": [raw_segment("Okay.", 2.0)]})  # 2.0 - 2.3
    aligned = align(raw, turns(("SPEAKER_00", 0.0, 1.0), ("SPEAKER_01", 2.8, 4.0)))

    word = aligned.segments[0].words[0]
    assert word.speaker == "SPEAKER_01"  # 0.5 s away versus 1.0 s
    assert word.confidence == pytest.approx(0.5 * (1 - 0.5 / 2.0))


def test_long_overlapping_turns_are_handled_by_the_sweep() -> None:
    # A long non-exclusive turn overlaps many short ones: the word goes to the largest overlap.
    raw = RawTranscript.model_validate({"segments": [raw_segment("one two three four five six", 0.0)]})
    aligned = align(
        raw,
        turns(("SPEAKER_00", 0.0, 10.0), ("SPEAKER_01", 0.3, 0.6), ("SPEAKER_01", 0.6, 0.9), ("SPEAKER_02", 1.2, 1.3)),
    )

    speakers = [word.speaker for word in aligned.segments[0].words]
    assert speakers[0] == "SPEAKER_00"
    assert len(speakers) == 6


def test_language_and_duration_are_carried() -> None:
    raw = raw_transcript([("SPEAKER_00", "Hello there.")])
    aligned = align(raw, None)

    assert aligned.language == "english"
    assert aligned.duration_seconds == raw.duration


def test_non_finite_segment_times_are_a_clear_error() -> None:
    raw = RawTranscript.model_validate({"segments": [{"start": math.nan, "end": 1.0, "text": "Secret words"}]})

    with pytest.raises(AlignmentError, match="segment 0") as caught:
        align(raw, None)
    assert "Secret" not in str(caught.value)


def test_non_finite_word_times_count_as_missing() -> None:
    raw = RawTranscript.model_validate(
        {
            "segments": [
                {
                    "start": 0.0,
                    "end": 1.0,
                    "text": "Hi there.",
                    "words": [
                        {"word": "Hi", "start": math.inf, "end": 0.4},
                        {"word": "there.", "start": 0.5, "end": 1.0},
                    ],
                }
            ]
        }
    )
    aligned = align(raw, turns(("SPEAKER_00", 0.0, 1.0)))

    assert all(math.isfinite(w.start) and math.isfinite(w.end) for w in aligned.segments[0].words)
