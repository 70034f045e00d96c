"""The opt-in LLM naming pass: prompt, and the cite-or-discard verification of the answer."""

from __future__ import annotations

import json

import pytest

from scryon_dagster.domain.analysis import (
    NamingWarning,
    SpeakerNamingOutcome,
    apply_speaker_naming,
    build_speaker_naming_prompt,
)
from scryon_dagster.domain.transcript.models import Confidence, LabelSource, NormalizedTranscript, Role

from .builders import speaker, transcript

LINES = [
    ("spk_1", "Hello, thanks for calling Northwind support, how can I help?"),
    ("spk_2", "Hi, this is Dana Whitfield from Contoso, calling about my order."),
    ("spk_1", "Thanks Dana, let me pull that up. Email me at help@northwind.example if it drops."),
    ("spk_2", "Sure. Praveen said it shipped last week, my number is +1 415 555 0199."),
    ("spk_3", "Hi Dana, Ravi here, I'm on the line too."),
    ("spk_3", "Morgan, Contoso logistics, for the record."),
]


def _transcript() -> NormalizedTranscript:
    return transcript(
        [
            speaker(
                "spk_1",
                "Alex Morgan",
                role=Role.USER,
                display_name="Alex Morgan",
                confidence=Confidence.HIGH,
                label_source=LabelSource.VOICE_EMBEDDING,
            ),
            speaker("spk_2", "Speaker 2"),
            speaker("spk_3", "Speaker 3"),
        ],
        LINES,
    )


def _answer(*names: dict[str, object]) -> str:
    return json.dumps({"names": [{"role": None, **name} for name in names]})


def _apply(content: str | None, *, base: NormalizedTranscript | None = None) -> SpeakerNamingOutcome:
    return apply_speaker_naming(base or _transcript(), content=content, refusal=None, finish_reason="stop")


def _assert_unchanged(outcome: SpeakerNamingOutcome, base: NormalizedTranscript) -> None:
    assert outcome.transcript == base
    assert outcome.named_speaker_ids == ()


# --- accepted ----------------------------------------------------------------------------------------


def test_a_self_introduction_quote_names_the_speaker_with_medium_confidence_everywhere() -> None:
    base = _transcript()
    outcome = _apply(
        _answer({"speakerId": "spk_2", "name": "Dana Whitfield", "quote": "this is Dana Whitfield from Contoso"}),
        base=base,
    )

    assert outcome.named_speaker_ids == ("spk_2",)
    assert outcome.warnings == ()
    named = outcome.transcript.speaker_by_id("spk_2")
    assert named is not None
    assert (named.label, named.display_name, named.label_source, named.confidence, named.role) == (
        "Dana Whitfield",
        "Dana Whitfield",
        LabelSource.LLM_INFERENCE,
        Confidence.MEDIUM,
        Role.UNKNOWN,
    )
    for segment in outcome.transcript.segments:
        if segment.speaker_id == "spk_2":
            assert (segment.speaker_label, segment.speaker_display_name) == ("Dana Whitfield", "Dana Whitfield")
        else:
            assert segment.speaker_label != "Dana Whitfield"
    assert outcome.transcript.speaker_resolution.resolved_speaker_count == 2
    assert "] Dana Whitfield: Hi, this is Dana Whitfield from Contoso" in outcome.transcript.clean_text
    # The input is not modified.
    assert base.speaker_by_id("spk_2") == speaker("spk_2", "Speaker 2")


def test_quotes_match_despite_case_whitespace_curly_quotes_and_edge_punctuation() -> None:
    outcome = _apply(
        _answer({"speakerId": "spk_3", "name": "Ravi", "quote": "\u201cravi   HERE, i\u2019m on the line\u201d"})
    )

    assert outcome.named_speaker_ids == ("spk_3",)
    named = outcome.transcript.speaker_by_id("spk_3")
    assert named is not None
    assert named.confidence is Confidence.MEDIUM


def test_a_name_stated_without_a_self_introduction_gets_low_confidence() -> None:
    outcome = _apply(_answer({"speakerId": "spk_3", "name": "Morgan", "quote": "Morgan, Contoso logistics"}))

    # "Morgan" is part of another speaker's full name, not that name itself, so it is free.
    named = outcome.transcript.speaker_by_id("spk_3")
    assert named is not None
    assert (named.label, named.confidence) == ("Morgan", Confidence.LOW)


def test_a_role_fills_an_unknown_role_and_reaches_the_segments() -> None:
    outcome = _apply(
        _answer({"speakerId": "spk_2", "name": "Dana Whitfield", "quote": "this is Dana Whitfield", "role": "CONTACT"})
    )

    assert all(s.role is Role.CONTACT for s in outcome.transcript.segments if s.speaker_id == "spk_2")
    named = outcome.transcript.speaker_by_id("spk_2")
    assert named is not None
    assert named.role is Role.CONTACT


def test_several_valid_names_are_all_applied() -> None:
    outcome = _apply(
        _answer(
            {"speakerId": "spk_2", "name": "Dana Whitfield", "quote": "this is Dana Whitfield"},
            {"speakerId": "spk_3", "name": "Ravi", "quote": "Ravi here"},
        )
    )

    assert outcome.named_speaker_ids == ("spk_2", "spk_3")


def test_an_empty_answer_changes_nothing_and_warns_nothing() -> None:
    base = _transcript()
    outcome = _apply(_answer(), base=base)

    _assert_unchanged(outcome, base)
    assert outcome.warnings == ()


# --- discarded ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("proposal", "warning"),
    [
        ({"speakerId": "spk_2", "name": "Dana", "quote": "my name is Dana"}, NamingWarning.QUOTE_NOT_FOUND),
        (
            {"speakerId": "spk_2", "name": "Dana", "quote": "Thanks Dana, let me pull that up"},
            NamingWarning.QUOTE_OF_OTHER_SPEAKER,
        ),
        (
            {"speakerId": "spk_1", "name": "Dana", "quote": "Thanks Dana, let me pull that up"},
            NamingWarning.HIGH_LABEL_KEPT,
        ),
        ({"speakerId": "spk_9", "name": "Dana", "quote": "this is Dana Whitfield"}, NamingWarning.NOT_A_CANDIDATE),
        (
            {"speakerId": "spk_2", "name": "Danielle", "quote": "this is Dana Whitfield"},
            NamingWarning.NAME_NOT_IN_TRANSCRIPT,
        ),
        (
            {"speakerId": "spk_2", "name": "Praveen", "quote": "calling about my order"},
            NamingWarning.QUOTE_WITHOUT_NAME,
        ),
        ({"speakerId": "spk_3", "name": "Dana", "quote": "Hi Dana, Ravi here"}, NamingWarning.ADDRESSED_NOT_SELF),
        (
            {"speakerId": "spk_3", "name": "Alex Morgan", "quote": "Morgan, Contoso"},
            NamingWarning.NAME_NOT_IN_TRANSCRIPT,
        ),
        ({"speakerId": "spk_2", "name": "Dana", "quote": "Dana"}, NamingWarning.QUOTE_NOT_FOUND),
        ({"speakerId": "spk_2", "name": "support", "quote": "Northwind support"}, NamingWarning.NOT_A_NAME),
        ({"speakerId": "spk_2", "name": "Dana 2", "quote": "this is Dana Whitfield"}, NamingWarning.NOT_A_NAME),
        ({"speakerId": "spk_2", "name": "dana@contoso.com", "quote": "this is Dana"}, NamingWarning.NOT_A_NAME),
        ({"speakerId": "spk_2", "name": "A B C D E", "quote": "this is Dana"}, NamingWarning.NOT_A_NAME),
    ],
    ids=[
        "fabricated-quote",
        "quote-from-another-speaker",
        "override-high-label",
        "unknown-speaker",
        "invented-name",
        "quote-without-the-name",
        "addressing-the-listener",
        "name-never-spoken",
        "bare-name-as-quote",
        "lowercase-word",
        "digits",
        "email",
        "too-many-words",
    ],
)
def test_unverifiable_proposals_are_discarded_with_a_warning(
    proposal: dict[str, object], warning: NamingWarning
) -> None:
    base = _transcript()

    outcome = _apply(_answer(proposal), base=base)

    _assert_unchanged(outcome, base)
    assert outcome.warnings == (warning,)


def test_an_already_named_speaker_is_not_a_candidate() -> None:
    base = transcript(
        [
            speaker("spk_1", "Speaker 1"),
            speaker(
                "spk_2",
                "Dana (Contoso)",
                display_name="Dana",
                confidence=Confidence.MEDIUM,
                label_source=LabelSource.SELF_INTRODUCTION,
            ),
        ],
        [("spk_1", "Hello?"), ("spk_2", "Hi, this is Dana Whitfield from Contoso.")],
    )

    outcome = _apply(
        _answer({"speakerId": "spk_2", "name": "Dana Whitfield", "quote": "this is Dana Whitfield"}), base=base
    )

    _assert_unchanged(outcome, base)
    assert outcome.warnings == (NamingWarning.NOT_A_CANDIDATE,)


def test_a_name_another_speaker_already_carries_is_refused() -> None:
    base = transcript(
        [
            speaker(
                "spk_1",
                "Dana",
                display_name="Dana",
                role=Role.USER,
                confidence=Confidence.MEDIUM,
                label_source=LabelSource.USER_PROFILE,
            ),
            speaker("spk_2", "Speaker 2"),
        ],
        [("spk_1", "Hi."), ("spk_2", "Hello, Dana speaking.")],
    )

    outcome = _apply(_answer({"speakerId": "spk_2", "name": "Dana", "quote": "Dana speaking"}), base=base)

    _assert_unchanged(outcome, base)
    assert outcome.warnings == (NamingWarning.NAME_TAKEN,)


def test_conflicting_proposals_for_one_speaker_are_all_dropped() -> None:
    outcome = _apply(
        _answer(
            {"speakerId": "spk_3", "name": "Ravi", "quote": "Ravi here"},
            {"speakerId": "spk_3", "name": "Morgan", "quote": "Morgan, Contoso logistics"},
            {"speakerId": "spk_2", "name": "Dana Whitfield", "quote": "this is Dana Whitfield"},
        )
    )

    assert outcome.named_speaker_ids == ("spk_2",)
    assert outcome.warnings == (NamingWarning.CONFLICTING_PROPOSALS,)


def test_the_same_name_for_two_speakers_is_dropped() -> None:
    base = transcript(
        [speaker("spk_1", "Speaker 1"), speaker("spk_2", "Speaker 2")],
        [("spk_1", "Sam here."), ("spk_2", "Oh, Sam here too.")],
    )

    outcome = _apply(
        _answer(
            {"speakerId": "spk_1", "name": "Sam", "quote": "Sam here"},
            {"speakerId": "spk_2", "name": "Sam", "quote": "Sam here too"},
        ),
        base=base,
    )

    _assert_unchanged(outcome, base)
    assert outcome.warnings == (NamingWarning.CONFLICTING_PROPOSALS,)


def test_a_second_user_is_never_created_but_the_verified_name_stands() -> None:
    outcome = _apply(
        _answer({"speakerId": "spk_2", "name": "Dana Whitfield", "quote": "this is Dana Whitfield", "role": "USER"})
    )

    named = outcome.transcript.speaker_by_id("spk_2")
    assert named is not None
    assert (named.label, named.role) == ("Dana Whitfield", Role.UNKNOWN)
    assert [s.speaker_id for s in outcome.transcript.speakers if s.role is Role.USER] == ["spk_1"]
    assert outcome.warnings == (NamingWarning.SECOND_USER_REFUSED,)


def test_two_user_claims_without_an_existing_user_are_both_refused() -> None:
    base = transcript(
        [speaker("spk_1", "Speaker 1"), speaker("spk_2", "Speaker 2")],
        [("spk_1", "Hi, this is Sam."), ("spk_2", "And this is Kim.")],
    )

    outcome = _apply(
        _answer(
            {"speakerId": "spk_1", "name": "Sam", "quote": "this is Sam", "role": "USER"},
            {"speakerId": "spk_2", "name": "Kim", "quote": "this is Kim", "role": "USER"},
        ),
        base=base,
    )

    assert outcome.named_speaker_ids == ("spk_1", "spk_2")
    assert all(s.role is Role.UNKNOWN for s in outcome.transcript.speakers)
    assert outcome.warnings == (NamingWarning.SECOND_USER_REFUSED,)


def test_a_single_user_claim_is_accepted_when_nobody_is_user_yet() -> None:
    base = transcript(
        [speaker("spk_1", "Speaker 1"), speaker("spk_2", "Speaker 2")],
        [("spk_1", "Hi, this is Sam."), ("spk_2", "Hello.")],
    )

    outcome = _apply(_answer({"speakerId": "spk_1", "name": "Sam", "quote": "this is Sam", "role": "USER"}), base=base)

    named = outcome.transcript.speaker_by_id("spk_1")
    assert named is not None
    assert named.role is Role.USER


@pytest.mark.parametrize(
    ("content", "refusal", "finish_reason"),
    [
        ("{not json", None, "stop"),
        ("[]", None, "stop"),
        (json.dumps({"names": [{"speakerId": "spk_2", "name": "Dana"}]}), None, "stop"),
        (json.dumps({"names": [], "extra": 1}), None, "stop"),
        (None, "I can't help with that.", None),
        ('{"names": [{"speakerId": "spk_2", "na', None, "length"),
        (None, None, "stop"),
    ],
    ids=["garbage-json", "not-an-object", "missing-keys", "extra-key", "refusal", "truncated", "empty"],
)
def test_bad_output_leaves_the_transcript_unchanged_with_one_warning(
    content: str | None, refusal: str | None, finish_reason: str | None
) -> None:
    base = _transcript()

    outcome = apply_speaker_naming(base, content=content, refusal=refusal, finish_reason=finish_reason)

    assert outcome.transcript is base
    assert outcome.named_speaker_ids == ()
    assert outcome.warnings == (NamingWarning.INVALID_OUTPUT,)


def test_warnings_never_carry_names_or_quotes() -> None:
    outcome = _apply(_answer({"speakerId": "spk_2", "name": "Dana", "quote": "my name is Dana"}))

    assert all("Dana" not in warning.value for warning in outcome.warnings)


# --- prompt ------------------------------------------------------------------------------------------


def test_prompt_offers_only_unresolved_speakers_and_sends_no_labels_or_contact_details() -> None:
    prompt = build_speaker_naming_prompt(_transcript())

    assert prompt is not None
    assert prompt.candidate_speaker_ids == ("spk_2", "spk_3")
    sent = "\n".join(message["content"] for message in prompt.messages())
    assert "Speakers to name: spk_2, spk_3" in sent
    assert "Speakers: spk_1 (USER), spk_2 (UNKNOWN), spk_3 (UNKNOWN)" in sent
    assert "Alex Morgan" not in sent  # spk_1's label comes from the user's profile
    assert "help@northwind.example" not in sent
    assert "[email]" in sent
    assert "415" not in sent
    assert "[number ending 0199]" in sent
    # The naming pass does send what was said: that is its evidence.
    assert "this is Dana Whitfield from Contoso" in sent


def test_no_prompt_when_nobody_is_left_to_name() -> None:
    named = transcript(
        [
            speaker(
                "spk_1",
                "Alex",
                display_name="Alex",
                role=Role.USER,
                confidence=Confidence.HIGH,
                label_source=LabelSource.USER_PROFILE,
            )
        ],
        [("spk_1", "Hello.")],
    )

    assert build_speaker_naming_prompt(named) is None
    assert build_speaker_naming_prompt(transcript([speaker("spk_1", "Speaker 1")], [])) is None
