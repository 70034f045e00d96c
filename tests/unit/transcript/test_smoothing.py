"""Smoothing only moves words whose own evidence is weak: it never undoes a word that sits inside its
speaker's turn. Every segment here has words of 0.3 s each, back to back (``raw_segment``), and the call
goes on afterwards with a long turn of each speaker, as calls do (a fragment voice has none)."""

from __future__ import annotations

from scryon_dagster.domain.provider_outputs import Diarization, RawTranscript
from scryon_dagster.domain.transcript import align
from tests.unit.transcript.builders import raw_segment

A, B, C, FRAGMENT = "SPEAKER_00", "SPEAKER_01", "SPEAKER_02", "SPEAKER_09"


CALL_GOES_ON = ((A, 10.0, 14.0), (B, 15.0, 19.0), (C, 20.0, 24.0))


def exclusive_turns(*spans: tuple[str, float, float]) -> Diarization:
    turns = [{"speaker": s, "start": a, "end": b} for s, a, b in (*spans, *CALL_GOES_ON)]
    return Diarization.model_validate({"diarization": turns, "exclusiveDiarization": turns})


def speakers_of(text: str, diarization: Diarization) -> list[str | None]:
    aligned = align(RawTranscript.model_validate({"segments": [raw_segment(text, 0.0)]}), diarization)
    return [word.speaker for segment in aligned.segments for word in segment.words]


def test_an_unpunctuated_back_and_forth_keeps_every_speaker() -> None:
    # Six words of A, three of B, six of A, with no punctuation: one "sentence" of fifteen words, which a
    # majority vote would hand wholly to A.
    text = "can you send the contract today yes i can great then we will sign it"
    diarization = exclusive_turns((A, 0.0, 1.8), (B, 1.8, 2.7), (A, 2.7, 4.5))

    assert speakers_of(text, diarization) == [A] * 6 + [B] * 3 + [A] * 6


def test_an_unpunctuated_segment_with_a_late_boundary_keeps_its_word_level_attribution() -> None:
    # Without punctuation nothing says where the sentence ends, so "sure", straddling a boundary 0.2 s
    # late, stays with the speaker overlapping it most.
    text = "send it today sure i will"
    diarization = exclusive_turns((A, 0.0, 1.1), (B, 1.1, 1.8))

    assert speakers_of(text, diarization) == [A, A, A, A, B, B]


def test_a_backchannel_inside_the_other_speakers_sentence_stays_with_its_speaker() -> None:
    # B's "yeah," sits in a short turn of B's in the middle of A's sentence.
    for backchannel in ("yeah,", "mm-hm,", "right,"):
        text = f"So we need the signed contract, {backchannel} by Friday at the latest."
        diarization = exclusive_turns((A, 0.0, 1.8), (B, 1.8, 2.1), (A, 2.1, 3.6))

        assert speakers_of(text, diarization) == [A] * 6 + [B] + [A] * 5


def test_a_late_boundary_goes_to_the_sentences_speaker_among_three() -> None:
    # C answers A's question; the boundary comes 0.2 s late, so C's "Yes," overlaps A's turn most.
    text = "Can you both make Friday? Yes, I can make it."
    diarization = exclusive_turns((A, 0.0, 1.7), (C, 1.7, 3.0), (B, 3.0, 4.0))

    assert speakers_of(text, diarization) == [A] * 5 + [C] * 5


def test_three_speakers_in_one_unpunctuated_stretch_each_keep_their_words() -> None:
    text = "tom ana can you both make friday yes i can i cannot sorry"
    diarization = exclusive_turns((A, 0.0, 2.1), (B, 2.1, 3.0), (C, 3.0, 3.9))

    assert speakers_of(text, diarization) == [A] * 7 + [B] * 3 + [C] * 3


def test_a_run_at_a_sentence_edge_with_a_word_well_inside_its_speakers_turn_stays() -> None:
    # Whisper ran B's reply into A's sentence. "okay" is close to A's turn, but "sounds good" are well
    # inside B's: the run is B's own turn, not a boundary a little off.
    text = "Send it to me by Friday okay sounds good."
    diarization = exclusive_turns((A, 0.0, 1.8), (B, 1.8, 2.7))

    assert speakers_of(text, diarization) == [A] * 6 + [B] * 3


def test_a_fragment_voice_inside_a_turn_goes_back_to_the_speaker_around_it() -> None:
    # Over-segmentation: a voice heard only for 0.6 s, in the middle of A's long turn, punctuated or not.
    for text in (
        "We will send the contract and the invoice to you by Friday.",
        "we will send the contract and the invoice to you by friday",
    ):
        diarization = exclusive_turns((A, 0.0, 1.5), (FRAGMENT, 1.5, 2.1), (A, 2.1, 3.6))

        assert speakers_of(text, diarization) == [A] * 12


def test_a_speaker_heard_at_length_elsewhere_is_no_fragment() -> None:
    # B's two words inside A's unpunctuated run are B's: B holds a long turn later in the call.
    text = "we will send the contract sure thing to you by friday"
    diarization = exclusive_turns((A, 0.0, 1.5), (B, 1.5, 2.1), (A, 2.1, 3.3))

    assert speakers_of(text, diarization) == [A] * 5 + [B] * 2 + [A] * 4


def test_in_a_call_of_short_turns_only_no_voice_is_a_fragment() -> None:
    text = "we will send the contract sure thing to you by friday"
    turns = [{"speaker": s, "start": a, "end": b} for s, a, b in ((A, 0.0, 1.5), (B, 1.5, 2.1), (A, 2.1, 3.3))]
    diarization = Diarization.model_validate({"exclusiveDiarization": turns})

    assert speakers_of(text, diarization) == [A] * 5 + [B] * 2 + [A] * 4


def test_a_voice_chopped_into_short_turns_is_no_fragment() -> None:
    # Diarization cut B's speech into turns under 2 s with short pauses between them: B is a real voice.
    text = "we will send the contract sure thing to you by friday"
    turns = [
        {"speaker": s, "start": a, "end": b}
        for s, a, b in ((A, 0.0, 1.5), (B, 1.5, 2.1), (A, 2.1, 3.3), (A, 5.0, 9.0), (B, 10.0, 11.5), (B, 11.8, 13.0))
    ]
    diarization = Diarization.model_validate({"exclusiveDiarization": turns})

    assert speakers_of(text, diarization) == [A] * 5 + [B] * 2 + [A] * 4
