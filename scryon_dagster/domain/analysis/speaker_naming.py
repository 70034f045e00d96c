"""Opt-in LLM speaker naming (system.md §6 rule 10): cite-or-discard, re-verified in code.

``build_speaker_naming_prompt`` asks the model to name the still-unresolved speakers, each name backed
by a verbatim quote of one of that speaker's own lines. ``apply_speaker_naming`` then trusts nothing:
a proposal survives only if

* it names a speaker that was offered for naming (never a HIGH-confidence, manual or already named one),
* the name looks like a name (letters, at most four words, capitalised where the script has case) and
  appears in the transcript,
* the quote is found verbatim (case, whitespace and curly quotes aside) in a segment of *that* speaker
  and contains the name, and is not someone addressing a listener ("Hi Praveen"),
* no other speaker already carries the name and no other proposal claims the same name or speaker.

A role is only filled in for a speaker whose role is UNKNOWN, and never makes a second USER.
Accepted names get ``label_source=LLM_INFERENCE`` with MEDIUM confidence when the quote is a
self-introduction ("this is Dana", "Dana speaking") and LOW otherwise, and are propagated to the
segments. Bad output of any kind leaves the transcript unchanged and yields warning codes; nothing
here raises on model output. Warnings are codes only: they never carry a name or a quote.
"""

from __future__ import annotations

import copy
import functools
import re
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import Field

from scryon_dagster.domain.analysis.contract import (
    ContractModel,
    StrictOutputError,
    decode_strict_output,
    response_format,
)
from scryon_dagster.domain.analysis.prompt import render_segment_lines
from scryon_dagster.domain.transcript.models import (
    Confidence,
    LabelSource,
    NormalizedTranscript,
    Role,
    TranscriptSegment,
    TranscriptSpeaker,
)
from scryon_dagster.domain.transcript.rendering import with_speakers

NAMING_SCHEMA_NAME = "scryon_speaker_naming"

# Labels that only say "we do not know who this is"; a speaker carrying one may be named.
_PLACEHOLDER_SOURCES = frozenset(
    {LabelSource.DIARIZATION, LabelSource.POSITIONAL_FALLBACK, LabelSource.PHONE_FALLBACK, LabelSource.AMBIGUOUS}
)
_MAX_NAME_WORDS = 4
_MAX_NAME_CHARS = 60
_MIN_QUOTE_WORDS = 2
_NAME_CHARACTERS = re.compile(r"[^\W\d_]+(?:[ '.-][^\W\d_]+)*\.?")
_NOT_NAMES = frozenset(
    {"speaker", "customer", "support", "sales", "sir", "madam", "everyone", "team", "user", "contact", "unknown"}
)
_ADDRESS_WORDS = (
    r"hi|hello|hey|hiya|thanks|thank you|cheers|bye|goodbye|dear|morning|afternoon|evening|"
    r"good morning|good afternoon|good evening|sorry|excuse me|ok|okay|yes|no|well|so"
)
_SELF_INTRO_BEFORE = (
    r"my name is|my name's|this is|i am|i'm|it's|it is|you're speaking with|you are speaking with|"
    r"you're speaking to|you are speaking to|you've reached|you have reached|call me"
)
_SELF_INTRO_AFTER = r"here|speaking"
_QUOTE_EDGES = " \t\"'`\u201c\u201d\u2018\u2019\u00ab\u00bb.,;:!?\u2026-"

NAMING_SYSTEM_PROMPT = """\
You name the speakers of a phone-call transcript, using evidence in the transcript only. Each line is \
`[segment id  start-end] speakerId (role): text`.

For each speaker listed under "Speakers to name", give a name only when that speaker's own words state \
it, as in a self-introduction ("this is Dana", "my name is Ravi", "Sara speaking"). Return the name \
exactly as spoken, and as quote the exact words of one line of that speaker that contain the name, \
copied character for character.

Never:
- name a speaker from another speaker's words, or from a name the speaker uses to address the listener \
("Hi Praveen" names the listener, not the speaker);
- guess, complete, translate or correct a name, or give a name that does not appear in the transcript;
- name a speaker who is not listed under "Speakers to name".

role: USER (the person who recorded the call) or CONTACT only when the transcript makes it explicit, \
otherwise null. Return an empty list when no listed speaker can be named this way.
"""


class SpeakerNameProposal(ContractModel):
    speaker_id: str = Field(description="speakerId of the speaker being named.")
    name: str = Field(description="The name exactly as spoken.")
    quote: str = Field(description="Verbatim words of one line of this speaker that contain the name.")
    role: Role | None = None


class SpeakerNamingAnswer(ContractModel):
    names: list[SpeakerNameProposal] = Field(default_factory=list)


class NamingWarning(StrEnum):
    """Why the naming pass left something unnamed. Codes only: never a name or a quote."""

    INVALID_OUTPUT = "llm_naming_invalid_output"
    NOT_A_CANDIDATE = "llm_naming_not_a_candidate"
    HIGH_LABEL_KEPT = "llm_naming_high_label_kept"
    NOT_A_NAME = "llm_naming_not_a_name"
    NAME_NOT_IN_TRANSCRIPT = "llm_naming_name_not_in_transcript"
    QUOTE_NOT_FOUND = "llm_naming_quote_not_found"
    QUOTE_OF_OTHER_SPEAKER = "llm_naming_quote_of_other_speaker"
    QUOTE_WITHOUT_NAME = "llm_naming_quote_without_name"
    ADDRESSED_NOT_SELF = "llm_naming_addressed_not_self"
    NAME_TAKEN = "llm_naming_name_taken"
    CONFLICTING_PROPOSALS = "llm_naming_conflicting_proposals"
    SECOND_USER_REFUSED = "llm_naming_second_user_refused"


@dataclass(frozen=True)
class SpeakerNamingPrompt:
    system: str
    user: str
    candidate_speaker_ids: tuple[str, ...]

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}]


@dataclass(frozen=True)
class SpeakerNamingOutcome:
    transcript: NormalizedTranscript
    named_speaker_ids: tuple[str, ...]
    warnings: tuple[NamingWarning, ...]


def naming_candidates(transcript: NormalizedTranscript) -> list[TranscriptSpeaker]:
    """Speakers the naming pass may name: not HIGH, not manual, and without a real name yet."""
    return [speaker for speaker in transcript.speakers if _is_candidate(speaker)]


def build_speaker_naming_prompt(transcript: NormalizedTranscript) -> SpeakerNamingPrompt | None:
    """The naming request, or None when no speaker is left to name (no LLM call needed).

    Only speaker ids, roles and the masked segment text are sent; labels and display names (which may
    come from contact metadata) are not.
    """
    candidates = naming_candidates(transcript)
    if not candidates or not transcript.segments:
        return None
    speakers = ", ".join(f"{speaker.speaker_id} ({speaker.role.value})" for speaker in transcript.speakers)
    user = "\n".join(
        [
            f"Speakers: {speakers}",
            f"Speakers to name: {', '.join(speaker.speaker_id for speaker in candidates)}",
            "",
            "Transcript",
            *render_segment_lines(transcript),
        ]
    )
    return SpeakerNamingPrompt(
        system=NAMING_SYSTEM_PROMPT,
        user=user,
        candidate_speaker_ids=tuple(speaker.speaker_id for speaker in candidates),
    )


@functools.cache
def _naming_response_format() -> dict[str, Any]:
    return response_format(NAMING_SCHEMA_NAME, SpeakerNamingAnswer)


def speaker_naming_response_format() -> dict[str, Any]:
    """The ``response_format`` of the naming request (a fresh copy)."""
    return copy.deepcopy(_naming_response_format())


def apply_speaker_naming(
    transcript: NormalizedTranscript, *, content: str | None, refusal: str | None, finish_reason: str | None
) -> SpeakerNamingOutcome:
    """Verify the model's naming answer and return the transcript with the names that survived."""
    try:
        answer = decode_strict_output(
            SpeakerNamingAnswer, content=content, refusal=refusal, finish_reason=finish_reason
        )
    except StrictOutputError:
        return SpeakerNamingOutcome(transcript, (), (NamingWarning.INVALID_OUTPUT,))

    warnings: list[NamingWarning] = []
    verified = [
        accepted for proposal in answer.names if (accepted := _verify(proposal, transcript, warnings)) is not None
    ]
    verified = _drop_conflicts(verified, warnings)
    verified = _refuse_second_user(verified, transcript, warnings)
    if not verified:
        return SpeakerNamingOutcome(transcript, (), tuple(dict.fromkeys(warnings)))
    return SpeakerNamingOutcome(
        transcript=_with_names(transcript, verified),
        named_speaker_ids=tuple(accepted.speaker_id for accepted in verified),
        warnings=tuple(dict.fromkeys(warnings)),
    )


# --- verification ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _AcceptedName:
    speaker_id: str
    name: str
    confidence: Confidence
    role: Role | None


def _is_candidate(speaker: TranscriptSpeaker) -> bool:
    if speaker.confidence is Confidence.HIGH or speaker.label_source is LabelSource.MANUAL:
        return False
    return speaker.display_name is None or speaker.label_source in _PLACEHOLDER_SOURCES


def _verify(
    proposal: SpeakerNameProposal, transcript: NormalizedTranscript, warnings: list[NamingWarning]
) -> _AcceptedName | None:
    speaker = transcript.speaker_by_id(proposal.speaker_id)
    if speaker is None:
        warnings.append(NamingWarning.NOT_A_CANDIDATE)
        return None
    rejection = _rejection(proposal, speaker, transcript)
    if rejection is not None:
        warnings.append(rejection)
        return None
    name = _clean_name(proposal.name)
    return _AcceptedName(
        speaker_id=speaker.speaker_id,
        name=name,
        confidence=Confidence.MEDIUM if _introduces_self(_clean_quote(proposal.quote), name) else Confidence.LOW,
        role=proposal.role if speaker.role is Role.UNKNOWN and proposal.role is not Role.UNKNOWN else None,
    )


def _rejection(
    proposal: SpeakerNameProposal, speaker: TranscriptSpeaker, transcript: NormalizedTranscript
) -> NamingWarning | None:
    """The first rule the proposal breaks, checked from the cheapest to the most specific."""
    if not _is_candidate(speaker):
        high = speaker.confidence is Confidence.HIGH
        return NamingWarning.HIGH_LABEL_KEPT if high else NamingWarning.NOT_A_CANDIDATE
    name = _clean_name(proposal.name)
    if not _looks_like_a_name(name):
        return NamingWarning.NOT_A_NAME
    name_pattern = re.compile(rf"(?<!\w){_name_regex(name)}(?!\w)")
    if not any(name_pattern.search(_normalise(segment.text)) for segment in transcript.segments):
        return NamingWarning.NAME_NOT_IN_TRANSCRIPT
    quote = _clean_quote(proposal.quote)
    if len(quote.split()) < _MIN_QUOTE_WORDS:
        return NamingWarning.QUOTE_NOT_FOUND
    if not any(s.speaker_id == speaker.speaker_id and _contains(s, quote) for s in transcript.segments):
        others = any(_contains(segment, quote) for segment in transcript.segments)
        return NamingWarning.QUOTE_OF_OTHER_SPEAKER if others else NamingWarning.QUOTE_NOT_FOUND
    if not name_pattern.search(quote):
        return NamingWarning.QUOTE_WITHOUT_NAME
    if not _introduces_self(quote, name) and _addresses(quote, name):
        return NamingWarning.ADDRESSED_NOT_SELF
    if any(_names_match(other, name) for other in transcript.speakers if other.speaker_id != speaker.speaker_id):
        return NamingWarning.NAME_TAKEN
    return None


def _clean_name(raw: str) -> str:
    return " ".join(raw.replace("\u2019", "'").split())


def _clean_quote(raw: str) -> str:
    return _normalise(raw).strip(_QUOTE_EDGES)


def _name_regex(name: str) -> str:
    """The name's words, in order, across any whitespace (matched against normalised text)."""
    return r"\s+".join(re.escape(word) for word in _normalise(name).split())


def _introduces_self(quote: str, name: str) -> bool:
    words = _name_regex(name)
    return bool(
        re.search(rf"\b(?:{_SELF_INTRO_BEFORE})\s+{words}(?!\w)", quote)
        or re.search(rf"(?<!\w){words},?\s+(?:{_SELF_INTRO_AFTER})\b", quote)
    )


def _addresses(quote: str, name: str) -> bool:
    return bool(re.search(rf"\b(?:{_ADDRESS_WORDS})[\s,]+{_name_regex(name)}(?!\w)", quote))


def _looks_like_a_name(name: str) -> bool:
    if not name or len(name) > _MAX_NAME_CHARS or len(name.split()) > _MAX_NAME_WORDS:
        return False
    if not _NAME_CHARACTERS.fullmatch(name) or name.casefold() in _NOT_NAMES:
        return False
    # Where the script has case, a name is capitalised ("support" is not a name; "Dana" is).
    return not name[0].islower()


def _drop_conflicts(accepted: list[_AcceptedName], warnings: list[NamingWarning]) -> list[_AcceptedName]:
    speakers = Counter(item.speaker_id for item in accepted)
    names = Counter(item.name.casefold() for item in accepted)
    kept = [item for item in accepted if speakers[item.speaker_id] == 1 and names[item.name.casefold()] == 1]
    if len(kept) != len(accepted):
        warnings.append(NamingWarning.CONFLICTING_PROPOSALS)
    return kept


def _refuse_second_user(
    accepted: list[_AcceptedName], transcript: NormalizedTranscript, warnings: list[NamingWarning]
) -> list[_AcceptedName]:
    claims = [item for item in accepted if item.role is Role.USER]
    user_exists = any(speaker.role is Role.USER for speaker in transcript.speakers)
    if not claims or (len(claims) == 1 and not user_exists):
        return accepted
    warnings.append(NamingWarning.SECOND_USER_REFUSED)
    # The names stand on their own quotes; only the USER claim is refused.
    return [_AcceptedName(i.speaker_id, i.name, i.confidence, None) if i in claims else i for i in accepted]


def _normalise(text: str) -> str:
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    return " ".join(text.split()).casefold()


def _contains(segment: TranscriptSegment, normalised_quote: str) -> bool:
    return normalised_quote in _normalise(segment.text)


def _names_match(speaker: TranscriptSpeaker, name: str) -> bool:
    taken = {_normalise(value) for value in (speaker.label, speaker.display_name) if value}
    return _normalise(name) in taken


# --- applying ----------------------------------------------------------------------------------------


def _with_names(transcript: NormalizedTranscript, accepted: list[_AcceptedName]) -> NormalizedTranscript:
    by_speaker = {item.speaker_id: item for item in accepted}
    speakers = [
        speaker.model_copy(
            update={
                "label": item.name,
                "display_name": item.name,
                "label_source": LabelSource.LLM_INFERENCE,
                "confidence": item.confidence,
                "role": item.role or speaker.role,
            }
        )
        if (item := by_speaker.get(speaker.speaker_id))
        else speaker
        for speaker in transcript.speakers
    ]
    # Segments, cleanText and the resolution counts are derived from speakers[] in one place.
    return with_speakers(transcript, speakers)
