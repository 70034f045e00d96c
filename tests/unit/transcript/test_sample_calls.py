"""The six sample calls of the provider simulator, through the real transcript build.

Each sample is rendered by the simulator's own output functions (the JSON its Lemonfox and pyannote
endpoints serve, with the parameters the pipeline sends), parsed as the pipeline parses provider responses
and built with the call's metadata. Transcript speakers are matched to script speakers by who said most of
their words; every expectation below follows system.md §6, with its reason next to it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import pytest

from scryon_dagster.domain.calls import Direction
from scryon_dagster.domain.provider_outputs import Diarization, RawTranscript
from scryon_dagster.domain.transcript import (
    Confidence,
    LabelSource,
    NormalizedTranscript,
    Provenance,
    ResolutionWarning,
    Role,
    SpeakerContext,
    VoiceMatchResult,
    build_transcript,
)
from scryon_dagster.simulator.conversation import Conversation
from scryon_dagster.simulator.outputs import render_diarization, render_transcript
from scryon_dagster.simulator.samples import SAMPLE_CALLS, SampleCall

CREATED_AT = datetime(2026, 5, 29, 13, 0, 42, tzinfo=UTC)
# The simulator's imperfections (segments straddling a speaker change, jittered turns, fragment speakers)
# vary with its seed; the demo runs seed 0. Seeds 0-5 include both ways Whisper cuts the "Hello?" opening.
SEEDS = range(6)
GREETING = re.compile(r"\b(?:hi|hello|hey|good\s+(?:morning|afternoon|evening))[\s,!.]+(\w+)", re.IGNORECASE)


class Mode(StrEnum):
    PIPELINE = "pipeline"
    """pyannote capped at two speakers on INCOMING/OUTGOING calls, as the pipeline asks by default
    (SCRYON_DIARIZATION_HINT_TWO_SPEAKERS): a third voice is merged into another."""
    UNCAPPED = "uncapped"
    """The two-speaker hint switched off: pyannote finds every voice (plus, at times, a fragment speaker)."""
    LEMONFOX_ONLY = "lemonfox_only"
    """No diarization (disabled, not configured or failed): Lemonfox's own segment speaker labels."""


@dataclass(frozen=True)
class Identity:
    label: str | None
    """None: the generic "Speaker N" and no display name."""
    role: Role
    confidence: Confidence
    source: LabelSource


UNNAMED = Identity(None, Role.UNKNOWN, Confidence.LOW, LabelSource.DIARIZATION)


@dataclass(frozen=True)
class Expectation:
    by_script_speaker: dict[int, Identity]
    warnings: tuple[ResolutionWarning, ...] = ()


EXPECTED: dict[str, Expectation] = {
    # OUTGOING to Praveen Raman. Alex opens with "Hi Praveen": greeting the contact by name makes the
    # greeter the user (rule 3, HIGH). Two parties, so Praveen is the contact by elimination (rule 5) and
    # takes the saved contact name.
    "greeting_by_name": Expectation(
        {
            0: Identity("Alex Morgan", Role.USER, Confidence.HIGH, LabelSource.GREETING_MATCH),
            1: Identity("Praveen Raman", Role.CONTACT, Confidence.MEDIUM, LabelSource.BY_ELIMINATION),
        }
    ),
    # INCOMING, no contact name. "Hi, this is Jimmy from DocuSign" introduces an unknown name with an
    # organisation (rule 2): the spoken name, the contact side since the user's name is known, MEDIUM;
    # the call's opener (Alex, "Good afternoon.") picked up an incoming call, i.e. is the user, which agrees,
    # so direction promotes it to HIGH (rule 6). Alex by elimination. A spoken name beats the phone fallback.
    "self_introduction": Expectation(
        {
            0: Identity("Alex Morgan", Role.USER, Confidence.MEDIUM, LabelSource.BY_ELIMINATION),
            1: Identity("Jimmy (DocuSign)", Role.CONTACT, Confidence.HIGH, LabelSource.SELF_INTRODUCTION),
        }
    ),
    # INCOMING, no contact name and no number. The call opens with a bare "Hello?" from Alex: whoever picks
    # up an incoming call is the user (rule 7, MEDIUM, with its warning); the caller is the contact by
    # elimination but has no name to show (no metadata, no number, never introduces themselves).
    "answering_pattern": Expectation(
        {
            0: Identity("Alex Morgan", Role.USER, Confidence.MEDIUM, LabelSource.ANSWERING_PATTERN),
            1: Identity(None, Role.CONTACT, Confidence.MEDIUM, LabelSource.BY_ELIMINATION),
        },
        (ResolutionWarning.ANSWERING_PATTERN_USED,),
    ),
    # One speaker, contact "Northwind Dental": "this is a message for Alex from Northwind Dental" speaks for
    # the contact's organisation (rule 2 without a person's name, HIGH as it matches the metadata) and
    # addresses the user, so it is not the user. Labelled with the saved contact name: no name is invented.
    "voicemail": Expectation(
        {0: Identity("Northwind Dental", Role.CONTACT, Confidence.HIGH, LabelSource.SELF_INTRODUCTION)}
    ),
    # OUTGOING to Maria Lopez; Tom is Alex's colleague. Alex opens the call with "Hi Maria": the user. Tom
    # greets Maria as well ("Hello Maria."), so the greeting is contested and only the call's opening one
    # counts (MEDIUM). Maria never says a name of her own and three parties rule out elimination: unknown.
    # Tom greets Maria, so nothing may make him Maria; his name is only said by Alex, not by himself, so it
    # is not used. In PIPELINE mode Maria and Tom are one diarized voice that greets Maria: it stays unnamed
    # rather than becoming "Maria Lopez" by elimination.
    "three_party": Expectation(
        {
            0: Identity("Alex Morgan", Role.USER, Confidence.MEDIUM, LabelSource.GREETING_MATCH),
            1: UNNAMED,
            2: UNNAMED,
        }
    ),
    # INCOMING, no contact name, number ending 0107. Alex opens with "Good morning, how can I help you?",
    # a receiver's pick-up: the user (rule 7); the caller ("Hi, I am calling about the order...") is the
    # contact by elimination and shown as "Contact ending 0107" (rule 9).
    "no_names": Expectation(
        {
            0: Identity("Alex Morgan", Role.USER, Confidence.MEDIUM, LabelSource.ANSWERING_PATTERN),
            1: Identity("Contact ending 0107", Role.CONTACT, Confidence.MEDIUM, LabelSource.PHONE_FALLBACK),
        },
        (ResolutionWarning.ANSWERING_PATTERN_USED,),
    ),
}

# Without diarization, Whisper sometimes runs the caller's quick "Hey, it's me." into the "Hello?" segment
# and labels it all with the caller. The call then no longer opens with a bare pick-up, the two voices
# cannot be told apart, and nobody may be named (rule 8).
UNRESOLVED_TWO_PARTY = Expectation({0: UNNAMED, 1: UNNAMED}, (ResolutionWarning.SPEAKER_ROLES_UNRESOLVED,))


def sample(slug: str) -> SampleCall:
    return next(call for call in SAMPLE_CALLS if call.slug == slug)


def provider_outputs(call: SampleCall, mode: Mode, seed: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The JSON the simulator serves for this sample to the pipeline's requests."""
    conversation = call.conversation
    # Lemonfox request: speaker_labels=true, word and segment timestamps, language auto, no speaker bounds.
    raw = render_transcript(
        conversation, speaker_labels=True, word_timestamps=True, language=None, max_speakers=None, seed=seed
    )
    if mode is Mode.LEMONFOX_ONLY:
        return raw, None
    two_party = call.direction in (Direction.INCOMING, Direction.OUTGOING)
    max_speakers = 2 if mode is Mode.PIPELINE and two_party else None
    return raw, render_diarization(conversation, max_speakers=max_speakers, exclusive=True, seed=seed)


def build(call: SampleCall, mode: Mode, seed: int) -> NormalizedTranscript:
    raw, diarized = provider_outputs(call, mode, seed)
    context = SpeakerContext(
        user_display_name=call.user_display_name,
        contact_name=call.contact_name,
        phone_number=call.phone_number,
        direction=call.direction,
    )
    return build_transcript(
        f"sample-{call.slug}",
        RawTranscript.parse(json.dumps(raw).encode()),
        Diarization.parse(json.dumps(diarized).encode()) if diarized is not None else None,
        context,
        VoiceMatchResult.disabled(),
        provenance=Provenance("lemonfox", "whisper-1", "pyannote" if diarized else None),
        created_at=CREATED_AT,
    )


def script_speakers(transcript: NormalizedTranscript, conversation: Conversation) -> dict[str, int]:
    """Transcript speaker id → the script speaker who said most of its words (located by time)."""
    said: dict[str, Counter[int]] = {}
    for turn in conversation.turns:
        for word in turn.words:
            middle = (word.start + word.end) / 2
            segment = min(
                transcript.segments,
                key=lambda s: max(s.start_seconds - middle, middle - s.end_seconds, 0.0),
            )
            said.setdefault(segment.speaker_id, Counter())[turn.speaker] += 1
    return {speaker_id: counts.most_common(1)[0][0] for speaker_id, counts in said.items()}


def expectation(call: SampleCall, mode: Mode, seed: int) -> Expectation:
    raw, _ = provider_outputs(call, mode, seed)
    opening = call.conversation.turns[0]
    opening_segment_words = len(raw["segments"][0]["text"].split())
    if mode is Mode.LEMONFOX_ONLY and call.slug == "answering_pattern" and opening_segment_words > len(opening.words):
        return UNRESOLVED_TWO_PARTY
    return EXPECTED[call.slug]


def identity(transcript: NormalizedTranscript, speaker_id: str) -> Identity:
    position, speaker = next(
        (index, s) for index, s in enumerate(transcript.speakers, start=1) if s.speaker_id == speaker_id
    )
    named = speaker.label != f"Speaker {position}" or speaker.display_name is not None
    return Identity(speaker.label if named else None, speaker.role, speaker.confidence, speaker.label_source)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("mode", list(Mode))
@pytest.mark.parametrize("slug", [call.slug for call in SAMPLE_CALLS])
def test_every_speaker_of_a_sample_call_gets_the_identity_the_rules_give(slug: str, mode: Mode, seed: int) -> None:
    call = sample(slug)
    transcript = build(call, mode, seed)
    expected = expectation(call, mode, seed)

    mapped = script_speakers(transcript, call.conversation)
    actual = {speaker_id: identity(transcript, speaker_id) for speaker_id in mapped}
    wanted = {speaker_id: expected.by_script_speaker[script] for speaker_id, script in mapped.items()}
    assert actual == wanted
    assert set(mapped) == {s.speaker_id for s in transcript.speakers}  # every speaker said something
    if call.user_speaker is not None:
        assert call.user_speaker in mapped.values(), "the user's voice must survive as a speaker of its own"
    assert tuple(transcript.speaker_resolution.warnings) == expected.warnings


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("mode", list(Mode))
@pytest.mark.parametrize("slug", [call.slug for call in SAMPLE_CALLS])
def test_the_hard_rules_hold_on_every_sample_call(slug: str, mode: Mode, seed: int) -> None:
    call = sample(slug)
    transcript = build(call, mode, seed)
    heard = " ".join(turn_word.text for turn in call.conversation.turns for turn_word in turn.words)

    assert sum(s.role is Role.USER for s in transcript.speakers) <= 1
    for speaker in transcript.speakers:
        own_text = " ".join(seg.text for seg in transcript.segments if seg.speaker_id == speaker.speaker_id)
        greeted = {match.group(1).casefold() for match in GREETING.finditer(own_text)}
        label_words = {word.casefold() for word in re.findall(r"\w+", speaker.label)}
        assert not greeted & label_words, "a speaker is never named after someone they greet"
        assert len(re.sub(r"\D", "", speaker.label)) <= 4
        if speaker.display_name not in (None, call.user_display_name, call.contact_name):
            assert all(word in heard for word in re.findall(r"\w+", speaker.display_name)), "no invented names"


def test_the_voice_that_opens_the_three_party_call_with_hi_maria_is_the_first_speaker() -> None:
    """Alignment premise of the three-party expectations: with pyannote capped at two speakers, Maria and
    Tom share a voice, but Alex's opening "Hi Maria" is still attributed to Alex alone."""
    call = sample("three_party")
    transcript = build(call, Mode.PIPELINE, seed=0)

    first = transcript.segments[0]
    assert first.text.startswith("Hi Maria, I have Tom")
    assert (first.speaker_id, len(transcript.speakers)) == ("spk_1", 2)
    assert script_speakers(transcript, call.conversation) == {"spk_1": 0, "spk_2": 2}
    merged_text = " ".join(seg.text for seg in transcript.segments if seg.speaker_id == "spk_2")
    assert "Hi both" in merged_text
    assert "Hello Maria." in merged_text
