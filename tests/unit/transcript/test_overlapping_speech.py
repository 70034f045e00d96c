"""Overlapping speech: where a reply starts over the end of a turn, both voices are heard, the exclusive
turns give the overlap to one of them, and Whisper writes one voice's words after the other's with
monotonic times. The call goes on afterwards with a long turn of each speaker, as calls do."""

from __future__ import annotations

from scryon_dagster.domain.provider_outputs import Diarization, RawTranscript
from scryon_dagster.domain.transcript import align

A, B = "SPEAKER_00", "SPEAKER_01"
Span = tuple[str, float, float]

CALL_GOES_ON: tuple[Span, ...] = ((A, 10.0, 14.0), (B, 15.0, 19.0))


def diarization(voices: tuple[Span, ...], exclusive: tuple[Span, ...]) -> Diarization:
    def turns(spans: tuple[Span, ...]) -> list[dict[str, object]]:
        return [{"speaker": s, "start": a, "end": b} for s, a, b in (*spans, *CALL_GOES_ON)]

    return Diarization.model_validate({"diarization": turns(voices), "exclusiveDiarization": turns(exclusive)})


def evenly_timed(text: str, start: float, word_seconds: float = 0.3) -> list[tuple[str, float, float]]:
    return [
        (token, round(start + word_seconds * i, 3), round(start + word_seconds * (i + 1), 3))
        for i, token in enumerate(text.split())
    ]


def speakers_of(words: list[tuple[str, float, float]], turns: Diarization) -> list[str | None]:
    segment = {
        "start": words[0][1],
        "end": words[-1][2],
        "text": " " + " ".join(token for token, _, _ in words),
        "words": [{"word": token, "start": start, "end": end} for token, start, end in words],
    }
    aligned = align(RawTranscript.model_validate({"segments": [segment]}), turns)
    return [word.speaker for segment in aligned.segments for word in segment.words]


def test_the_fading_voices_last_words_stay_with_it_where_the_exclusive_turns_gave_them_to_the_reply() -> None:
    # B starts at 1.2 s while A talks until 1.8 s; the exclusive turns hand the overlap over at 1.4 s, so
    # word-level overlap gives A's "today" (1.5-1.8 s) to B. A is still heard all through it.
    words = evenly_timed("can you send the contract today", 0.0) + evenly_timed("yes i will do it now", 1.8)
    turns = diarization(voices=((A, 0.0, 1.8), (B, 1.2, 3.6)), exclusive=((A, 0.0, 1.4), (B, 1.4, 3.6)))

    assert speakers_of(words, turns) == [A] * 6 + [B] * 6


def test_a_backchannel_heard_inside_the_speakers_stretch_of_speech_keeps_its_speaker() -> None:
    # A's voice spans the pause in which B says "yeah": B's voice ends first, so it is no reply taking over.
    words = evenly_timed("so we need the signed contract yeah by friday at the latest", 0.0)
    turns = diarization(voices=((A, 0.0, 3.6), (B, 1.8, 2.1)), exclusive=((A, 0.0, 1.8), (B, 1.8, 2.1), (A, 2.1, 3.6)))

    assert speakers_of(words, turns) == [A] * 6 + [B] + [A] * 5


def test_reply_words_squeezed_behind_the_words_they_overlapped_go_with_the_reply() -> None:
    # Whisper wrote B's "yes sure" after A's sentence and, its times being monotonic, squeezed them into
    # 10 ms each at the end of A's last word, where the exclusive turns still say A.
    words = [
        *evenly_timed("can you send the contract today", 0.0),
        ("yes", 1.8, 1.81),
        ("sure", 1.81, 1.82),
        *evenly_timed("i can do that", 1.82),
    ]
    turns = diarization(voices=((A, 0.0, 1.9), (B, 1.3, 3.5)), exclusive=((A, 0.0, 1.85), (B, 1.85, 3.5)))

    assert speakers_of(words, turns) == [A] * 6 + [B] * 6


def test_a_squeezed_word_where_the_next_voice_is_not_heard_keeps_its_speaker() -> None:
    # A's "today" got squeezed by a late timestamp before it; B only starts after a pause.
    words = [*evenly_timed("can you send the contract", 0.0), ("today", 1.5, 1.51), *evenly_timed("yes i will", 2.5)]
    turns = diarization(voices=((A, 0.0, 1.8), (B, 2.5, 3.4)), exclusive=((A, 0.0, 1.8), (B, 2.5, 3.4)))

    assert speakers_of(words, turns) == [A] * 6 + [B] * 3


def speakers_of_segments(*segments: list[tuple[str, float, float]], turns: Diarization) -> list[str | None]:
    raw = RawTranscript.model_validate(
        {
            "segments": [
                {
                    "start": words[0][1],
                    "end": words[-1][2],
                    "text": " " + " ".join(token for token, _, _ in words),
                    "words": [{"word": token, "start": start, "end": end} for token, start, end in words],
                }
                for words in segments
            ]
        }
    )
    return [word.speaker for segment in align(raw, turns).segments for word in segment.words]


def test_a_reply_squeezed_behind_a_finished_sentence_hands_the_sentence_end_back_across_segments() -> None:
    # A's sentence ends a segment; B's reply starts over its last word and opens the next segment,
    # squeezed behind it. The exclusive turns gave A's "today." to B; punctuation and the segment end say
    # nothing about who said it, the squeeze does: "yes" was said while "today." was, so by another voice.
    first = evenly_timed("Can you send the contract today.", 0.0)
    second = [("Yes,", 1.8, 1.81), ("sure.", 1.81, 1.82), *evenly_timed("I can do that.", 1.82)]
    turns = diarization(voices=((A, 0.0, 1.8), (B, 1.35, 3.5)), exclusive=((A, 0.0, 1.4), (B, 1.4, 3.5)))

    assert speakers_of_segments(first, second, turns=turns) == [A] * 6 + [B] * 6


def test_a_short_reply_said_over_a_longer_turn_is_the_replys_though_its_voice_ends_first() -> None:
    # B says "yes sure" over A's "contract" while A goes on talking; Whisper wrote it after "contract".
    words = [
        *evenly_timed("so we need the signed contract", 0.0),
        ("yes", 1.8, 1.81),
        ("sure", 1.81, 1.82),
        *evenly_timed("by friday at the latest", 2.1),
    ]
    turns = diarization(voices=((A, 0.0, 3.6), (B, 1.45, 2.0)), exclusive=((A, 0.0, 1.6), (B, 1.6, 2.0), (A, 2.0, 3.6)))

    assert speakers_of(words, turns) == [A] * 6 + [B] * 2 + [A] * 5


def test_a_short_word_not_pushed_behind_the_word_before_it_keeps_its_overlap_speaker() -> None:
    # A's "delivery" got a short time of its own after B's "okay" in a pause: nothing was squeezed behind
    # anything, although both voices are heard between "okay" and it.
    words = [
        *evenly_timed("plan the contract soon", 0.0),
        ("okay", 1.5, 1.8),
        ("delivery", 2.5, 2.53),
        *evenly_timed("is on friday", 2.6),
    ]
    turns = diarization(
        voices=((A, 0.0, 1.2), (B, 1.5, 1.8), (A, 2.45, 3.5)), exclusive=((A, 0.0, 1.2), (B, 1.5, 1.8), (A, 2.45, 3.5))
    )

    assert speakers_of(words, turns) == [A] * 4 + [B] + [A] * 4
