"""Non-speech tags, stutters and phrase loops."""

from __future__ import annotations

import pytest

from scryon_dagster.domain.transcript.cleanup import collapse_repetitions, strip_non_speech
from scryon_dagster.domain.transcript.tokens import Token, join_tokens


def tokens(text: str) -> list[Token]:
    return [Token(word, float(i), float(i + 1)) for i, word in enumerate(text.split())]


def clean(text: str) -> str:
    return join_tokens(collapse_repetitions(strip_non_speech(tokens(text))))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("[MUSIC] Hello there.", "Hello there."),
        ("Hello [BLANK_AUDIO] there.", "Hello there."),
        ("We [ inaudible ] agreed.", "We agreed."),
        ("(laughs) That is funny.", "That is funny."),
        ("(upbeat music playing) Welcome back.", "Welcome back."),
        ("*coughs* Sorry about that.", "Sorry about that."),
        ("♪ la la la ♪ Hi.", "Hi."),
        ("♪♪ Thanks.", "Thanks."),
        (">> Yes, go ahead.", "Yes, go ahead."),
        ("Hello[MUSIC]. Bye.", "Hello. Bye."),
    ],
)
def test_non_speech_tags_are_removed(raw: str, expected: str) -> None:
    assert clean(raw) == expected


@pytest.mark.parametrize(
    "kept",
    [
        "Call (555) 123 4567 please.",  # digits in brackets belong to a number
        "I said (and I meant every single word) no.",  # a parenthetical remark, not a sound
        "It costs 5-10 dollars.",
    ],
)
def test_speech_in_brackets_is_kept(kept: str) -> None:
    assert clean(kept) == kept


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("the the the contract", "the contract"),
        ("I want the the car.", "I want the car."),
        ("I I think so.", "I think so."),
        ("no no no no no.", "no."),
        ("Thank you. Thank you. Thank you.", "Thank you."),
        ("Okay, okay, okay, let's start.", "Okay, let's start."),
        ("we should sign the contract we should sign the contract today.", "we should sign the contract today."),
    ],
)
def test_stutters_and_phrase_loops_collapse(raw: str, expected: str) -> None:
    assert clean(raw) == expected


@pytest.mark.parametrize("kept", ["bye bye", "very very good", "I think I think so", "that that is right"])
def test_ordinary_repetition_is_kept(kept: str) -> None:
    assert clean(kept) == kept


def test_the_kept_copy_spans_the_whole_loop() -> None:
    collapsed = collapse_repetitions(tokens("Thank you. Thank you. Thank you."))

    assert [(t.text, t.start, t.end) for t in collapsed] == [("Thank", 0.0, 1.0), ("you.", 1.0, 6.0)]


def test_cleanup_is_idempotent() -> None:
    once = collapse_repetitions(strip_non_speech(tokens("[ x x x x ] the the the the end (laughs) ♪ a ♪")))

    assert join_tokens(collapse_repetitions(strip_non_speech(once))) == join_tokens(once)
