"""Speaker naming: every rule of the ladder and every hard rule, on realistic calls."""

from __future__ import annotations

import re

import pytest

from scryon_dagster.domain.calls import Direction
from scryon_dagster.domain.transcript import (
    Confidence,
    LabelSource,
    NormalizedTranscript,
    ResolutionWarning,
    Role,
    SpeakerContext,
    TranscriptSpeaker,
    VoiceMatchResult,
    VoiceMatchStatus,
    resolve_speakers,
)
from scryon_dagster.domain.transcript.rendering import with_speakers
from tests.unit.transcript.builders import Script, normalized

USER = "Praveen Kumar"
CONTACT = "Ravi Shankar"


def resolve(
    script: Script,
    *,
    user: str | None = USER,
    contact: str | None = CONTACT,
    phone: str | None = None,
    direction: Direction = Direction.UNKNOWN,
    voice: VoiceMatchResult | None = None,
) -> NormalizedTranscript:
    context = SpeakerContext(user, contact, phone, direction, voice_embedding_enabled=voice is not None)
    return resolve_speakers(normalized(script), context, voice)


def identities(transcript: NormalizedTranscript) -> list[tuple[str, str, Role, Confidence, LabelSource]]:
    return [(s.speaker_id, s.label, s.role, s.confidence, s.label_source) for s in transcript.speakers]


def assert_consistent(transcript: NormalizedTranscript) -> None:
    """Segments and cleanText always say what speakers[] says."""
    by_id = {speaker.speaker_id: speaker for speaker in transcript.speakers}
    for segment, line in zip(transcript.segments, transcript.clean_text.splitlines(), strict=True):
        speaker = by_id[segment.speaker_id]
        assert (segment.speaker, segment.speaker_label) == (speaker.label, speaker.label)
        assert (segment.speaker_display_name, segment.role) == (speaker.display_name, speaker.role)
        assert line.endswith(f"] {speaker.label}: {segment.text}")
    assert sum(s.role is Role.USER for s in transcript.speakers) <= 1


# ---- rule 1: voice match -------------------------------------------------------------------------


def test_a_voice_match_makes_that_speaker_the_user() -> None:
    voice = VoiceMatchResult(
        VoiceMatchStatus.MATCHED, "SPEAKER_01", Confidence.HIGH, {"SPEAKER_00": 0.12, "SPEAKER_01": 0.91}
    )
    transcript = resolve(
        [("SPEAKER_00", "Hello, how can I help?"), ("SPEAKER_01", "I'm calling about my order, it's late.")],
        contact=None,
        voice=voice,
    )

    assert identities(transcript) == [
        ("spk_1", "Speaker 1", Role.CONTACT, Confidence.MEDIUM, LabelSource.BY_ELIMINATION),
        ("spk_2", USER, Role.USER, Confidence.HIGH, LabelSource.VOICE_EMBEDDING),
    ]
    assert [(s.voice_match_score, s.voice_profile_matched) for s in transcript.speakers] == [
        (0.12, False),
        (0.91, True),
    ]
    resolution = transcript.speaker_resolution
    assert (resolution.voice_match_status, resolution.voice_profile_used, resolution.voice_embedding_enabled) == (
        VoiceMatchStatus.MATCHED,
        True,
        True,
    )
    assert_consistent(transcript)


def test_an_ambiguous_voice_match_names_nobody_and_the_text_rules_still_run() -> None:
    voice = VoiceMatchResult(VoiceMatchStatus.AMBIGUOUS, scores={"SPEAKER_00": 0.8, "SPEAKER_01": 0.81})
    transcript = resolve([("SPEAKER_00", "Hi Ravi, got a minute?"), ("SPEAKER_01", "Sure, go ahead.")], voice=voice)

    assert transcript.speakers[0].label_source is LabelSource.GREETING_MATCH
    assert not any(s.voice_profile_matched for s in transcript.speakers)
    assert ResolutionWarning.VOICE_MATCH_AMBIGUOUS in transcript.speaker_resolution.warnings


def test_a_match_on_a_speaker_absorbed_as_a_fragment_is_reported_not_applied() -> None:
    voice = VoiceMatchResult(VoiceMatchStatus.MATCHED, "SPEAKER_07", Confidence.HIGH, {"SPEAKER_07": 0.9})
    transcript = resolve([("SPEAKER_00", "So where were we?"), ("SPEAKER_01", "The delivery dates.")], voice=voice)

    assert all(s.role is Role.UNKNOWN for s in transcript.speakers)
    assert ResolutionWarning.VOICE_MATCH_SPEAKER_ABSENT in transcript.speaker_resolution.warnings


@pytest.mark.parametrize(
    ("enabled", "profile", "expected"),
    [
        (False, False, VoiceMatchStatus.DISABLED),
        (True, False, VoiceMatchStatus.NO_PROFILE),
        (True, True, VoiceMatchStatus.FAILED),
    ],
)
def test_without_a_result_the_status_says_why(enabled: bool, profile: bool, expected: VoiceMatchStatus) -> None:
    context = SpeakerContext(voice_embedding_enabled=enabled, voice_profile_present=profile)
    transcript = resolve_speakers(normalized([("SPEAKER_00", "Hello there.")]), context, None)

    assert transcript.speaker_resolution.voice_match_status is expected
    assert transcript.speaker_resolution.voice_profile_used is False


# ---- rule 2: self-introduction -------------------------------------------------------------------


def test_self_introduction_with_an_organisation_matching_the_contact_is_high() -> None:
    transcript = resolve(
        [
            ("SPEAKER_00", "Hello?"),
            ("SPEAKER_01", "Hi, this is Jimmy from DocuSign, calling about your renewal."),
            ("SPEAKER_00", "Oh right, go ahead."),
        ],
        contact="DocuSign",
    )

    assert identities(transcript) == [
        ("spk_1", USER, Role.USER, Confidence.MEDIUM, LabelSource.BY_ELIMINATION),
        ("spk_2", "Jimmy (DocuSign)", Role.CONTACT, Confidence.HIGH, LabelSource.SELF_INTRODUCTION),
    ]
    assert transcript.speaker_resolution.used_contact_name
    assert_consistent(transcript)


def test_self_introduction_with_an_unknown_name_is_medium_and_uses_the_spoken_name() -> None:
    transcript = resolve(
        [("SPEAKER_00", "Good afternoon, my name is Sara, I'm calling from the bank."), ("SPEAKER_01", "Okay.")],
        contact=None,
    )

    sara = transcript.speakers[0]
    assert (sara.label, sara.display_name, sara.role) == ("Sara", "Sara", Role.CONTACT)
    assert (sara.confidence, sara.label_source) == (Confidence.MEDIUM, LabelSource.SELF_INTRODUCTION)


def test_self_introduction_with_the_contacts_name_uses_the_saved_name() -> None:
    transcript = resolve([("SPEAKER_00", "Ravi speaking."), ("SPEAKER_01", "Hey Ravi, it's about the lease.")])

    assert identities(transcript)[0] == ("spk_1", CONTACT, Role.CONTACT, Confidence.HIGH, LabelSource.SELF_INTRODUCTION)


@pytest.mark.parametrize(
    "opening",
    [
        "Haan, main Praveen bol raha hoon.",
        "Hello, Praveen this side.",
        "Hi, you're speaking with Praveen.",
        "मैं Praveen बोल रहा हूँ",
    ],
)
def test_self_introductions_operators_see(opening: str) -> None:
    transcript = resolve([("SPEAKER_00", "Hello?"), ("SPEAKER_01", opening), ("SPEAKER_00", "Haan, bolo.")])

    assert identities(transcript)[1][1:3] == (USER, Role.USER)
    assert identities(transcript)[0][1:3] == (CONTACT, Role.CONTACT)


@pytest.mark.parametrize(
    "line",
    ["This is great news.", "This is Ravi?", "This is Ravi's phone, right?", "I'm Indian, actually.", "this is monday"],
)
def test_phrases_that_only_look_like_introductions_name_nobody(line: str) -> None:
    transcript = resolve([("SPEAKER_00", line), ("SPEAKER_01", "Yes.")], user=None, contact=None)

    assert all(s.label_source is LabelSource.DIARIZATION for s in transcript.speakers)


@pytest.mark.parametrize(
    "line",
    [
        "Hi, this is a message for Praveen from Mehta Clinic. Please call us back.",
        "Hello, we are calling from Mehta Clinic about your appointment on Tuesday.",
    ],
)
def test_speaking_for_the_contacts_organisation_without_a_name_uses_the_saved_name(line: str) -> None:
    transcript = resolve([("SPEAKER_00", line)], contact="Mehta Clinic", direction=Direction.INCOMING)

    assert identities(transcript) == [
        ("spk_1", "Mehta Clinic", Role.CONTACT, Confidence.HIGH, LabelSource.SELF_INTRODUCTION)
    ]


@pytest.mark.parametrize(
    "line",
    [
        "I got a call from Mehta Clinic yesterday.",
        "This is a message from the clinic, please call back.",
        "We are calling from Acme Dental about your appointment.",
    ],
)
def test_an_organisation_is_an_introduction_only_in_its_phrases_and_only_when_known(line: str) -> None:
    transcript = resolve([("SPEAKER_00", line)], contact="Mehta Clinic")

    speaker = transcript.speakers[0]
    assert speaker.label_source is not LabelSource.SELF_INTRODUCTION
    assert speaker.display_name in (None, USER, "Mehta Clinic")


# ---- rules 3-5: greeting, mention asymmetry, elimination -------------------------------------------


def test_greeting_by_name_makes_the_greeter_the_other_party() -> None:
    transcript = resolve(
        [
            ("SPEAKER_00", "Hi Ravi, thanks for picking up."),
            ("SPEAKER_01", "No problem at all, what's up?"),
            ("SPEAKER_00", "I wanted to talk about pricing for next quarter."),
        ]
    )

    assert identities(transcript) == [
        ("spk_1", USER, Role.USER, Confidence.HIGH, LabelSource.GREETING_MATCH),
        ("spk_2", CONTACT, Role.CONTACT, Confidence.MEDIUM, LabelSource.BY_ELIMINATION),
    ]
    resolution = transcript.speaker_resolution
    assert (resolution.used_user_display_name, resolution.used_contact_name) == (True, True)
    assert (resolution.resolved_speaker_count, resolution.total_speaker_count) == (2, 2)
    assert resolution.warnings == []
    assert transcript.clean_text.startswith(f"[00:00 - 00:01] {USER}: Hi Ravi")
    assert_consistent(transcript)


def test_mentioning_a_name_nobody_else_says_is_evidence() -> None:
    transcript = resolve(
        [
            ("SPEAKER_00", "Did you get the file I sent, Ravi?"),
            ("SPEAKER_01", "Yes I got it yesterday, it looks fine."),
            ("SPEAKER_00", "Great, let's sign it."),
        ]
    )

    assert identities(transcript) == [
        ("spk_1", USER, Role.USER, Confidence.MEDIUM, LabelSource.NAME_MENTION),
        ("spk_2", CONTACT, Role.CONTACT, Confidence.MEDIUM, LabelSource.BY_ELIMINATION),
    ]


def test_both_speakers_mentioning_both_names_is_ambiguous() -> None:
    transcript = resolve(
        [
            ("SPEAKER_00", "So Praveen, did Ravi send it?"),
            ("SPEAKER_01", "Ravi said Praveen would send it."),
            ("SPEAKER_00", "Okay then."),
        ]
    )

    assert [(s.role, s.label_source, s.label) for s in transcript.speakers] == [
        (Role.UNKNOWN, LabelSource.AMBIGUOUS, "Speaker 1"),
        (Role.UNKNOWN, LabelSource.AMBIGUOUS, "Speaker 2"),
    ]
    assert ResolutionWarning.SPEAKER_IDENTITY_AMBIGUOUS in transcript.speaker_resolution.warnings
    assert transcript.speaker_resolution.resolved_speaker_count == 0


def test_elimination_only_applies_to_two_party_calls() -> None:
    transcript = resolve(
        [
            ("SPEAKER_00", "Hi Ravi, I have Sara on the line too."),
            ("SPEAKER_01", "Great, hello everyone, good to talk."),
            ("SPEAKER_02", "Hi, this is Sara from the finance team, thanks for having me."),
            ("SPEAKER_01", "Let's go over the numbers then."),
        ]
    )

    assert identities(transcript) == [
        ("spk_1", USER, Role.USER, Confidence.HIGH, LabelSource.GREETING_MATCH),
        ("spk_2", "Speaker 2", Role.UNKNOWN, Confidence.LOW, LabelSource.DIARIZATION),
        ("spk_3", "Sara", Role.CONTACT, Confidence.MEDIUM, LabelSource.SELF_INTRODUCTION),
    ]
    assert transcript.speaker_resolution.warnings == []
    assert_consistent(transcript)


def test_a_greeting_contested_by_another_voice_counts_only_when_it_opens_the_call() -> None:
    opened = resolve(
        [
            ("SPEAKER_00", "Hi Ravi, I have Sara on the line as well."),
            ("SPEAKER_01", "Hi both, thanks for joining."),
            ("SPEAKER_02", "Hello Ravi, good to meet you."),
            ("SPEAKER_01", "Let's start with the numbers."),
        ]
    )
    not_opened = resolve(
        [
            ("SPEAKER_00", "Okay, is everyone on the line for the budget review?"),
            ("SPEAKER_01", "Hi Ravi, yes I am here and I have the spreadsheet open."),
            ("SPEAKER_02", "Hello Ravi, I am here as well, sorry for being a little late."),
        ]
    )

    assert identities(opened) == [
        ("spk_1", USER, Role.USER, Confidence.MEDIUM, LabelSource.GREETING_MATCH),
        ("spk_2", "Speaker 2", Role.UNKNOWN, Confidence.LOW, LabelSource.DIARIZATION),
        ("spk_3", "Speaker 3", Role.UNKNOWN, Confidence.LOW, LabelSource.DIARIZATION),
    ]
    assert all(s.role is Role.UNKNOWN for s in not_opened.speakers)


@pytest.mark.parametrize("voice_on_the_opener", [False, True])
def test_a_voice_that_greets_a_party_never_takes_that_partys_role(voice_on_the_opener: bool) -> None:
    # Two diarized voices, the second one two people merged (one of them greets Ravi): elimination would
    # make it Ravi.
    voice = (
        VoiceMatchResult(VoiceMatchStatus.MATCHED, "SPEAKER_00", Confidence.HIGH, {"SPEAKER_00": 0.9})
        if voice_on_the_opener
        else None
    )
    transcript = resolve(
        [
            ("SPEAKER_00", "Hi Ravi, I have Sara from engineering with me."),
            ("SPEAKER_01", "Hi both. Hello Ravi, I went through the logs."),
            ("SPEAKER_00", "Great, let's hear it."),
        ],
        direction=Direction.OUTGOING,
        voice=voice,
    )

    user, other = transcript.speakers
    assert (user.label, user.role) == (USER, Role.USER)
    assert user.label_source is (LabelSource.VOICE_EMBEDDING if voice_on_the_opener else LabelSource.GREETING_MATCH)
    assert (other.label, other.role, other.display_name) == ("Speaker 2", Role.UNKNOWN, None)
    assert_consistent(transcript)


# ---- rules 6-9: direction, answering pattern, nothing, phone fallback ------------------------------


def test_direction_promotes_evidence_that_agrees_with_who_picked_up() -> None:
    script = [
        ("SPEAKER_00", "Hello?"),
        ("SPEAKER_01", "Hi, this is Jimmy from DocuSign, calling about your renewal."),
    ]

    agreeing = resolve(script, contact=None, direction=Direction.INCOMING)
    disagreeing = resolve(script, contact=None, direction=Direction.OUTGOING)

    assert agreeing.speakers[1].confidence is Confidence.HIGH
    assert agreeing.speaker_resolution.used_direction
    assert disagreeing.speakers[1].confidence is Confidence.MEDIUM
    assert not disagreeing.speaker_resolution.used_direction


@pytest.mark.parametrize(
    ("direction", "receiver_role"), [(Direction.INCOMING, Role.USER), (Direction.OUTGOING, Role.CONTACT)]
)
def test_answering_pattern_gives_the_receiver_a_role_from_the_direction(
    direction: Direction, receiver_role: Role
) -> None:
    transcript = resolve(
        [
            ("SPEAKER_00", "Hello?"),
            ("SPEAKER_01", "Hey, it's me, are you free to talk about the shipment?"),
            ("SPEAKER_00", "Yes, tell me."),
        ],
        user=None,
        contact=None,
        direction=direction,
    )

    receiver, caller = transcript.speakers
    assert (receiver.role, receiver.label_source, receiver.confidence) == (
        receiver_role,
        LabelSource.ANSWERING_PATTERN,
        Confidence.MEDIUM,
    )
    assert (caller.role, caller.label_source) == (
        Role.CONTACT if receiver_role is Role.USER else Role.USER,
        LabelSource.BY_ELIMINATION,
    )
    assert transcript.speaker_resolution.warnings == [ResolutionWarning.ANSWERING_PATTERN_USED]
    assert transcript.speaker_resolution.used_direction


@pytest.mark.parametrize(
    ("opening", "is_pick_up"),
    [
        ("Hello?", True),
        ("Yes, speaking.", True),
        ("Good morning, how can I help you?", True),
        ("Hello? Who is calling?", True),
        ("Haan ji, boliye.", True),
        ("Hi Ravi, I have Sara on the line as well.", False),
        ("Hello? Hey, it's me, are you free?", False),
        ("Hi, I am calling about my order.", False),
    ],
)
def test_only_a_bare_pick_up_opening_the_call_is_an_answering_pattern(opening: str, is_pick_up: bool) -> None:
    transcript = resolve(
        [("SPEAKER_00", opening), ("SPEAKER_01", "Right, so about the invoice for last month.")],
        user=None,
        contact=None,
        direction=Direction.INCOMING,
    )

    receiver = transcript.speakers[0]
    if is_pick_up:
        assert (receiver.role, receiver.label_source) == (Role.USER, LabelSource.ANSWERING_PATTERN)
    else:
        assert all(s.role is Role.UNKNOWN for s in transcript.speakers)
        assert transcript.speaker_resolution.warnings == [ResolutionWarning.SPEAKER_ROLES_UNRESOLVED]


def test_a_caller_saying_hi_after_the_call_opened_is_not_the_receiver() -> None:
    transcript = resolve(
        [
            ("SPEAKER_00", "Thanks for holding, where were we?"),
            ("SPEAKER_01", "Hi, I am calling about the order I placed last week."),
        ],
        user=None,
        contact=None,
        phone="+1 555 010 4477",
        direction=Direction.INCOMING,
    )

    assert all(s.role is Role.UNKNOWN for s in transcript.speakers)
    assert not any(s.label.startswith("Contact ending") for s in transcript.speakers)


def test_hinglish_answering_and_phone_fallback() -> None:
    transcript = resolve(
        [
            ("SPEAKER_00", "Haan bolo."),
            ("SPEAKER_01", "Bhai, kal ki meeting ka kya hua?"),
            ("SPEAKER_00", "Kal subah dus baje fix hai."),
        ],
        user="Praveen",
        contact=None,
        phone="+91 98450 12345",
        direction=Direction.OUTGOING,
    )

    assert identities(transcript) == [
        ("spk_1", "Contact ending 2345", Role.CONTACT, Confidence.MEDIUM, LabelSource.PHONE_FALLBACK),
        ("spk_2", "Praveen", Role.USER, Confidence.MEDIUM, LabelSource.BY_ELIMINATION),
    ]
    assert transcript.speakers[0].display_name is None
    assert transcript.speaker_resolution.used_phone_fallback
    assert_consistent(transcript)


def test_no_evidence_leaves_roles_unknown_and_says_so() -> None:
    transcript = resolve(
        [
            ("SPEAKER_00", "So the shipment is late again."),
            ("SPEAKER_01", "I know, the vendor said next week."),
            ("SPEAKER_00", "Okay, let's escalate."),
        ],
        direction=Direction.INCOMING,
        phone="+1 555 123 4567",
    )

    assert identities(transcript) == [
        ("spk_1", "Speaker 1", Role.UNKNOWN, Confidence.LOW, LabelSource.DIARIZATION),
        ("spk_2", "Speaker 2", Role.UNKNOWN, Confidence.LOW, LabelSource.DIARIZATION),
    ]
    assert transcript.speaker_resolution.warnings == [ResolutionWarning.SPEAKER_ROLES_UNRESOLVED]
    assert not transcript.speaker_resolution.used_direction


def test_a_voicemail_with_one_speaker_greeting_the_user() -> None:
    transcript = resolve(
        [
            (
                "SPEAKER_00",
                "Hi Praveen, this is Dr. Mehta's office confirming your appointment on Tuesday. Call us back.",
            )
        ],
        contact="Mehta Clinic",
        direction=Direction.INCOMING,
    )

    assert identities(transcript) == [
        ("spk_1", "Mehta Clinic", Role.CONTACT, Confidence.HIGH, LabelSource.GREETING_MATCH)
    ]


def test_a_voicemail_without_evidence_stays_unresolved() -> None:
    transcript = resolve([("SPEAKER_00", "Hey, call me back when you get this.")], direction=Direction.INCOMING)

    assert transcript.speakers[0].role is Role.UNKNOWN
    assert transcript.speaker_resolution.warnings == [ResolutionWarning.SPEAKER_ROLES_UNRESOLVED]


# ---- hard rules ------------------------------------------------------------------------------------


def test_direction_never_names_anyone_alone() -> None:
    for direction in Direction:
        transcript = resolve(
            [("SPEAKER_00", "The report is attached."), ("SPEAKER_01", "Thanks, I'll read it.")], direction=direction
        )
        assert all(s.role is Role.UNKNOWN and s.display_name is None for s in transcript.speakers)


def test_addressing_someone_does_not_give_the_speaker_that_name() -> None:
    transcript = resolve([("SPEAKER_00", "Hi Ravi!"), ("SPEAKER_01", "Hello.")], user=None)

    assert transcript.speakers[0].display_name != CONTACT
    assert transcript.speakers[1].display_name == CONTACT


def test_names_are_never_invented() -> None:
    scripts: list[Script] = [
        [("SPEAKER_00", "Hello?"), ("SPEAKER_01", "Hi, this is Jimmy from DocuSign.")],
        [("SPEAKER_00", "Hi Ravi."), ("SPEAKER_01", "Hey there, Praveen.")],
        [("SPEAKER_00", "Haan bolo."), ("SPEAKER_01", "Main Anil bol raha hoon.")],
    ]
    for script in scripts:
        transcript = resolve(script, direction=Direction.OUTGOING)
        heard = " ".join(text for _, text in script)
        for speaker in transcript.speakers:
            if speaker.display_name in (None, USER, CONTACT):
                continue
            assert all(word in heard for word in re.findall(r"\w+", speaker.display_name))


def test_never_two_users() -> None:
    voice = VoiceMatchResult(VoiceMatchStatus.MATCHED, "SPEAKER_00", Confidence.HIGH, {"SPEAKER_00": 0.95})
    transcript = resolve(
        [("SPEAKER_00", "Hi Ravi."), ("SPEAKER_01", "Hi, this is Praveen Kumar, the account owner.")], voice=voice
    )

    assert [s.role for s in transcript.speakers].count(Role.USER) == 1
    assert transcript.speakers[0].role is Role.USER


def test_a_phone_number_never_shows_more_than_four_digits() -> None:
    transcript = resolve(
        [("SPEAKER_00", "Hello?"), ("SPEAKER_01", "Hi, call me back on 98450 12345 please.")],
        user=None,
        contact=None,
        phone="9845012345",
        direction=Direction.OUTGOING,
    )

    text = transcript.to_json_bytes().decode()
    assert re.search(r"\d{5,}", text.replace("•", "")) is None
    assert "12345" not in text
    assert transcript.speakers[0].label == "Contact ending 2345"


def test_manual_corrections_are_kept_and_count_as_evidence() -> None:
    base = normalized([("SPEAKER_00", "Good morning."), ("SPEAKER_01", "Morning!")])
    corrected = base.speakers[0].model_copy(
        update={"label": "Asha", "display_name": "Asha", "role": Role.USER, "label_source": LabelSource.MANUAL}
    )
    transcript = resolve_speakers(
        with_speakers(base, [corrected, base.speakers[1]]), SpeakerContext(USER, CONTACT), None
    )

    assert transcript.speakers[0] == corrected
    assert (transcript.speakers[1].role, transcript.speakers[1].label) == (Role.CONTACT, CONTACT)


def test_resolving_again_changes_nothing() -> None:
    context = SpeakerContext(USER, None, "+1 555 123 4567", Direction.INCOMING)
    once = resolve_speakers(
        normalized([("SPEAKER_00", "Hello?"), ("SPEAKER_01", "Hi, quick question.")]), context, None
    )

    assert resolve_speakers(once, context, None) == once


def test_names_are_rendered_on_a_single_line() -> None:
    transcript = resolve([("SPEAKER_00", "Hi Ravi.")], contact="Ravi\n  Shankar")

    assert transcript.speakers[0].label == USER
    speaker: TranscriptSpeaker = transcript.speakers[0]
    assert "\n" not in speaker.label
