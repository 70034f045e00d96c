"""Speaker naming: the deterministic evidence ladder of system.md §6 (rules 1-9; rule 10, LLM naming, lives
with the analysis).

(One module over 400 lines because the rules are one ladder: each reads and updates the same ``_Ladder``
in a fixed order; the text patterns they use live in ``evidence``.)

Rules run strongest first. Each one only touches speakers no earlier rule resolved, never downgrades, and
stamps ``labelSource`` and ``confidence``:

1. VOICE_EMBEDDING  the one speaker matching the user's voiceprint is the USER (HIGH/MEDIUM by score).
2. SELF_INTRODUCTION  "this is Jimmy", "my name is Ravi", "David speaking", "you're speaking with Sara",
   "Ravi this side", "main Ravi bol raha hoon", optionally "... from DocuSign" → "Jimmy (DocuSign)"; or, with
   no name given, the contact's organisation ("this is a message for Alex from Northwind Dental"). HIGH
   when the name (or organisation) is the user's or the contact's, else MEDIUM and the spoken name.
3. GREETING_MATCH  a speaker greeting a known name ("Hi Praveen") is the other party (HIGH). When several
   speakers greet the same party (a third party, or voices diarization merged), only a greeting in the
   call's opening turn still counts (MEDIUM). A speaker never takes the role of a party they greeted.
4. NAME_MENTION  a speaker who mentions a known name that nobody else mentions is the other party
   (MEDIUM); speakers who each mention both names are AMBIGUOUS (``speaker_identity_ambiguous``).
5. BY_ELIMINATION  in a two-party call, the other side of a resolved speaker takes the remaining role.
6. Direction promotes an evidenced MEDIUM (introduction, mention) to HIGH when the roles agree with who
   picked up (the receiver speaks first); it never names anyone by itself.
7. ANSWERING_PATTERN  two parties, both unknown: when the call opens with a turn that is only a pick-up
   ("Hello?", "Yes, speaking.", "Haan bolo", "Good morning, how can I help you?"), its speaker received the
   call: the USER on an INCOMING call, the CONTACT on an OUTGOING one (MEDIUM, ``answering_pattern_used``);
   the other side by elimination.
8. No role for anyone → ``speaker_roles_unresolved``.
9. PHONE_FALLBACK  no contact name but a phone number → the CONTACT is "Contact ending 4567".
Finally the USER takes the user's display name and a sole CONTACT the contact name when they have no
name yet. Hard rules: names come only from metadata or from the speaker's own introduction (saying
"Hi Ravi" never renames the speaker Ravi), at most the last four digits of a number, at most one USER.

``USER_PROFILE``, ``CONTACT_METADATA``, ``POSITIONAL_FALLBACK`` and ``LLM_INFERENCE`` are never produced
here; MANUAL speakers (a user's correction) are kept as they are and count as evidence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from scryon_dagster.domain.calls import Direction
from scryon_dagster.domain.transcript.evidence import (
    KnownName,
    find_introductions,
    greeting_pattern,
    is_pickup_turn,
    known_name,
    without_shared_variants,
)
from scryon_dagster.domain.transcript.models import (
    Confidence,
    LabelSource,
    NormalizedTranscript,
    Role,
    SpeakerResolution,
    TranscriptSpeaker,
    VoiceMatchStatus,
)
from scryon_dagster.domain.transcript.phone import last_four_digits
from scryon_dagster.domain.transcript.rendering import generic_label, with_speakers
from scryon_dagster.domain.transcript.versions import NAMING_STRATEGY_VERSION
from scryon_dagster.domain.transcript.voice_match import VoiceMatchResult

# Introductions are looked for in each speaker's first few turns, where people introduce themselves.
INTRODUCTION_SEGMENTS_PER_SPEAKER = 5
# The answering pattern and the opening greeting only read the opening of the call.
OPENING_WINDOW_SECONDS = 20.0


class ResolutionWarning(StrEnum):
    SPEAKER_IDENTITY_AMBIGUOUS = "speaker_identity_ambiguous"
    ANSWERING_PATTERN_USED = "answering_pattern_used"
    SPEAKER_ROLES_UNRESOLVED = "speaker_roles_unresolved"
    VOICE_MATCH_AMBIGUOUS = "voice_match_ambiguous"
    VOICE_MATCH_SPEAKER_ABSENT = "voice_match_speaker_absent"


@dataclass(frozen=True, slots=True)
class SpeakerContext:
    """What the call's metadata says about its parties (never logged: names and numbers are personal)."""

    user_display_name: str | None = None
    contact_name: str | None = None
    phone_number: str | None = None
    direction: Direction = Direction.UNKNOWN
    voice_embedding_enabled: bool = False
    voice_profile_present: bool = False


_OPPOSITE = {Role.USER: Role.CONTACT, Role.CONTACT: Role.USER}
_PROMOTABLE_BY_DIRECTION = frozenset({LabelSource.SELF_INTRODUCTION, LabelSource.NAME_MENTION})


@dataclass(slots=True)
class _Speaker:
    record: TranscriptSpeaker
    position: int
    texts: list[str]
    first_start: float
    role: Role = Role.UNKNOWN
    source: LabelSource = LabelSource.DIARIZATION
    confidence: Confidence = Confidence.LOW
    display_name: str | None = None
    label: str | None = None
    locked: bool = False
    """A MANUAL correction: no rule may change it."""
    addressed: frozenset[Role] = frozenset()
    """The parties this speaker greets by name: whoever says "Hi Maria" is never made Maria by any text rule."""

    @property
    def untouched(self) -> bool:
        return self.source is LabelSource.DIARIZATION and not self.locked

    @property
    def open_role(self) -> bool:
        """Still without a role and not declared ambiguous: later rules may give it one."""
        return self.role is Role.UNKNOWN and self.source is not LabelSource.AMBIGUOUS and not self.locked


@dataclass(slots=True)
class _Ladder:
    speakers: list[_Speaker]
    context: SpeakerContext
    user: KnownName | None
    contact: KnownName | None
    warnings: list[ResolutionWarning] = field(default_factory=list)
    used_user_name: bool = False
    used_contact_name: bool = False
    used_direction: bool = False
    used_phone: bool = False

    @property
    def known(self) -> tuple[KnownName, ...]:
        return tuple(name for name in (self.user, self.contact) if name is not None)

    def has_user(self, other_than: _Speaker | None = None) -> bool:
        return any(s.role is Role.USER and s is not other_than for s in self.speakers)

    def give_role(self, speaker: _Speaker, role: Role, source: LabelSource, confidence: Confidence) -> bool:
        """Assign a role to a speaker without one; a speaker named earlier keeps its label source.

        Text evidence never gives a speaker the role of a party they greeted; a voice match is not text."""
        if not speaker.open_role or (role is Role.USER and self.has_user(other_than=speaker)):
            return False
        if role in speaker.addressed and source is not LabelSource.VOICE_EMBEDDING:
            return False
        speaker.role = role
        if speaker.untouched:
            speaker.source, speaker.confidence = source, confidence
        return True

    def warn(self, warning: ResolutionWarning) -> None:
        if warning not in self.warnings:
            self.warnings.append(warning)


def resolve_speakers(
    transcript: NormalizedTranscript, context: SpeakerContext, voice_match: VoiceMatchResult | None
) -> NormalizedTranscript:
    """Name the transcript's speakers from metadata, transcript text and the voice match (rules 1-9).

    Starts afresh from the generic labels (MANUAL speakers excepted), so re-running it is a no-op."""
    user, contact = without_shared_variants(known_name(context.user_display_name), known_name(context.contact_name))
    ladder = _Ladder(_speakers(transcript), context, user, contact)
    _rule_voice_match(ladder, voice_match)
    _rule_self_introduction(ladder)
    _rule_greeting(ladder)
    _rule_name_mention(ladder)
    _rule_elimination(ladder)
    _rule_direction(ladder)
    _rule_answering_pattern(ladder)
    if ladder.speakers and not any(s.role is not Role.UNKNOWN for s in ladder.speakers):
        ladder.warn(ResolutionWarning.SPEAKER_ROLES_UNRESOLVED)
    _rule_phone_fallback(ladder)
    _fill_metadata_names(ladder)
    records = [_record(speaker, voice_match) for speaker in ladder.speakers]
    resolution = SpeakerResolution(
        strategy_version=NAMING_STRATEGY_VERSION,
        used_user_display_name=ladder.used_user_name,
        used_contact_name=ladder.used_contact_name,
        used_direction=ladder.used_direction,
        used_phone_fallback=ladder.used_phone,
        voice_embedding_enabled=context.voice_embedding_enabled,
        voice_profile_used=voice_match is not None and voice_match.profile_used,
        voice_match_status=_voice_status(context, voice_match),
        warnings=[str(warning) for warning in ladder.warnings],
    )
    return with_speakers(transcript.model_copy(update={"speaker_resolution": resolution}), records)


def _speakers(transcript: NormalizedTranscript) -> list[_Speaker]:
    texts: dict[str, list[str]] = {}
    first_start: dict[str, float] = {}
    for segment in transcript.segments:
        texts.setdefault(segment.speaker_id, []).append(segment.text)
        first_start.setdefault(segment.speaker_id, segment.start_seconds)
    speakers = []
    for position, record in enumerate(transcript.speakers, start=1):
        speaker = _Speaker(
            record=record,
            position=position,
            texts=texts.get(record.speaker_id, []),
            first_start=first_start.get(record.speaker_id, float("inf")),
        )
        if record.label_source is LabelSource.MANUAL:
            speaker.role, speaker.source, speaker.confidence = record.role, record.label_source, record.confidence
            speaker.display_name, speaker.label, speaker.locked = record.display_name, record.label, True
        speakers.append(speaker)
    return speakers


def _voice_status(context: SpeakerContext, voice_match: VoiceMatchResult | None) -> VoiceMatchStatus:
    if voice_match is not None:
        return voice_match.status
    if not context.voice_embedding_enabled:
        return VoiceMatchStatus.DISABLED
    if not context.voice_profile_present:
        return VoiceMatchStatus.NO_PROFILE
    return VoiceMatchStatus.FAILED


# ---------------------------------------------------------------------------------------------------
# The rules


def _rule_voice_match(ladder: _Ladder, voice_match: VoiceMatchResult | None) -> None:
    if voice_match is None:
        return
    if voice_match.status is VoiceMatchStatus.AMBIGUOUS:
        ladder.warn(ResolutionWarning.VOICE_MATCH_AMBIGUOUS)
    if voice_match.status is not VoiceMatchStatus.MATCHED or voice_match.matched_speaker is None:
        return
    matched = [s for s in ladder.speakers if s.record.source_speaker_id == voice_match.matched_speaker]
    if not matched:
        ladder.warn(ResolutionWarning.VOICE_MATCH_SPEAKER_ABSENT)
        return
    confidence = voice_match.confidence or Confidence.MEDIUM
    ladder.give_role(matched[0], Role.USER, LabelSource.VOICE_EMBEDDING, confidence)


def _rule_self_introduction(ladder: _Ladder) -> None:
    claimed: set[str] = set()
    for speaker in ladder.speakers:
        if not speaker.untouched:
            continue
        introduction = next(
            (
                found
                for text in speaker.texts[:INTRODUCTION_SEGMENTS_PER_SPEAKER]
                for found in find_introductions(text, ladder.known)
            ),
            None,
        )
        if introduction is None or introduction.name.casefold() in claimed:
            continue
        claimed.add(introduction.name.casefold())
        role, display, confident = _introduced_identity(ladder, introduction.name, introduction.organization)
        if role is Role.USER and ladder.has_user():
            continue  # a second voice claiming the user's name: no rule may create two USERs
        speaker.source = LabelSource.SELF_INTRODUCTION
        speaker.confidence = Confidence.HIGH if confident else Confidence.MEDIUM
        speaker.display_name = display
        speaker.role = role


def _introduced_identity(ladder: _Ladder, name: str, organization: str | None) -> tuple[Role, str, bool]:
    """(role, display name, matches metadata) of a speaker who introduced themselves."""
    with_org = f" ({organization})" if organization else ""
    if ladder.user is not None and ladder.user.matches(name):
        ladder.used_user_name = True
        return Role.USER, ladder.user.full, True
    contact = ladder.contact
    if contact is not None and contact.matches(name):
        ladder.used_contact_name = True
        return Role.CONTACT, contact.full + with_org, True
    if contact is not None and organization is not None and contact.matches(organization):
        ladder.used_contact_name = True
        return Role.CONTACT, f"{name}{with_org}", True
    # An unknown name is someone other than the user when we know the user's name (or voice).
    role = Role.CONTACT if ladder.user is not None or ladder.has_user() else Role.UNKNOWN
    if ladder.user is not None:
        ladder.used_user_name = True
    return role, f"{name}{with_org}", False


def _rule_greeting(ladder: _Ladder) -> None:
    parties = _named_parties(ladder)
    if not parties:
        return
    patterns = [(role, greeting_pattern(name)) for role, name in parties]
    for speaker in ladder.speakers:
        speaker.addressed = frozenset(
            role for role, pattern in patterns if any(pattern.search(text) for text in speaker.texts)
        )
    claims: dict[Role, list[_Speaker]] = {}
    for speaker in ladder.speakers:
        if speaker.open_role and len(speaker.addressed) == 1:
            claims.setdefault(_OPPOSITE[next(iter(speaker.addressed))], []).append(speaker)
    contested = {role: claimants for role, claimants in claims.items() if len(claimants) > 1}
    _apply_unique_claims(ladder, claims, LabelSource.GREETING_MATCH, Confidence.HIGH)
    # Several voices greeting the same party: more parties than two, or voices diarization merged. The
    # greeting that opens the call is between the two parties on the line from the start; later greeters
    # are others joining (they keep only the exclusion above).
    opener = _opener(ladder)
    for role, claimants in contested.items():
        if opener in claimants and opener.addressed == _greeted_in(opener.texts[0], patterns):
            _conclude(ladder, opener, role, LabelSource.GREETING_MATCH, Confidence.MEDIUM)


def _greeted_in(text: str, patterns: list[tuple[Role, re.Pattern[str]]]) -> frozenset[Role]:
    return frozenset(role for role, pattern in patterns if pattern.search(text))


def _opener(ladder: _Ladder) -> _Speaker | None:
    """The first speaker heard on the call, if they speak within the opening of the call."""
    opener = min(ladder.speakers, key=lambda s: s.first_start, default=None)
    if opener is None or not opener.texts or opener.first_start > OPENING_WINDOW_SECONDS:
        return None
    return opener


def _rule_name_mention(ladder: _Ladder) -> None:
    parties = _named_parties(ladder)
    if not parties:
        return
    patterns = [(role, name.pattern()) for role, name in parties]
    mentions = {id(s): _mentioned_parties(ladder, s, patterns) for s in ladder.speakers}
    both = {Role.USER, Role.CONTACT}
    mentioning_both = [s for s in ladder.speakers if mentions[id(s)] == both]
    if len(parties) == 2 and len(mentioning_both) >= 2:
        for speaker in mentioning_both:
            if speaker.untouched:
                speaker.source, speaker.confidence = LabelSource.AMBIGUOUS, Confidence.LOW
        ladder.warn(ResolutionWarning.SPEAKER_IDENTITY_AMBIGUOUS)
    claims: dict[Role, list[_Speaker]] = {}
    for speaker in ladder.speakers:
        if not speaker.open_role:
            continue
        # A name only this speaker says belongs to the other party.
        exclusive = {
            role
            for role in mentions[id(speaker)]
            if not any(role in mentions[id(other)] for other in ladder.speakers if other is not speaker)
        }
        if len(exclusive) == 1:
            claims.setdefault(_OPPOSITE[exclusive.pop()], []).append(speaker)
    _apply_unique_claims(ladder, claims, LabelSource.NAME_MENTION, Confidence.MEDIUM)


def _named_parties(ladder: _Ladder) -> list[tuple[Role, KnownName]]:
    parties = [(Role.USER, ladder.user), (Role.CONTACT, ladder.contact)]
    return [(role, name) for role, name in parties if name is not None]


def _mentioned_parties(ladder: _Ladder, speaker: _Speaker, patterns: list[tuple[Role, re.Pattern[str]]]) -> set[Role]:
    """Known parties this speaker names, not counting their own self-introduction."""
    mentioned: set[Role] = set()
    for text in speaker.texts:
        if not any(pattern.search(text) for _, pattern in patterns):
            continue  # cutting introductions out cannot make a name appear
        spoken = _without_introductions(text, ladder.known)
        mentioned.update(role for role, pattern in patterns if pattern.search(spoken))
    return mentioned


def _without_introductions(text: str, known: tuple[KnownName, ...]) -> str:
    introductions = find_introductions(text, known)
    if not introductions:
        return text
    parts, position = [], 0
    for introduction in introductions:
        if introduction.start >= position:
            parts.append(text[position : introduction.start])
            position = introduction.end
    parts.append(text[position:])
    return " ".join(parts)


def _apply_unique_claims(
    ladder: _Ladder, claims: dict[Role, list[_Speaker]], source: LabelSource, confidence: Confidence
) -> None:
    """Apply a rule's conclusions, except a role two speakers claim: the evidence contradicts itself."""
    for role in (Role.USER, Role.CONTACT):
        claimants = claims.get(role, [])
        if len(claimants) == 1:
            _conclude(ladder, claimants[0], role, source, confidence)


def _conclude(ladder: _Ladder, speaker: _Speaker, role: Role, source: LabelSource, confidence: Confidence) -> None:
    """Give a role concluded from a party's name being said: a USER from the contact's, a CONTACT from the user's."""
    if ladder.give_role(speaker, role, source, confidence):
        if role is Role.USER:
            ladder.used_contact_name = True
        else:
            ladder.used_user_name = True


def _rule_elimination(ladder: _Ladder) -> None:
    if len(ladder.speakers) != 2:
        return
    first, second = ladder.speakers
    for resolved, other in ((first, second), (second, first)):
        if resolved.role in _OPPOSITE and other.open_role:
            ladder.give_role(other, _OPPOSITE[resolved.role], LabelSource.BY_ELIMINATION, Confidence.MEDIUM)


def _receiver_role(direction: Direction) -> Role | None:
    """Who picks up: the user on an incoming call, the contact on an outgoing one."""
    return {Direction.INCOMING: Role.USER, Direction.OUTGOING: Role.CONTACT}.get(direction)


def _rule_direction(ladder: _Ladder) -> None:
    receiver = _receiver_role(ladder.context.direction)
    opener = min(ladder.speakers, key=lambda s: s.first_start, default=None)
    if receiver is None or opener is None or opener.role is not receiver:
        return
    for speaker in ladder.speakers:
        promotable = speaker.source in _PROMOTABLE_BY_DIRECTION and speaker.role is not Role.UNKNOWN
        if promotable and speaker.confidence is Confidence.MEDIUM and not speaker.locked:
            speaker.confidence = Confidence.HIGH
            ladder.used_direction = True


def _rule_answering_pattern(ladder: _Ladder) -> None:
    """Only the first words of the call can be a pick-up, and only as a turn of their own."""
    receiver_role = _receiver_role(ladder.context.direction)
    if receiver_role is None or len(ladder.speakers) != 2 or not all(s.open_role for s in ladder.speakers):
        return
    receiver = _opener(ladder)
    if receiver is None or not is_pickup_turn(receiver.texts[0]):
        return
    if not ladder.give_role(receiver, receiver_role, LabelSource.ANSWERING_PATTERN, Confidence.MEDIUM):
        return
    _rule_elimination(ladder)
    ladder.used_direction = True
    ladder.warn(ResolutionWarning.ANSWERING_PATTERN_USED)


def _rule_phone_fallback(ladder: _Ladder) -> None:
    if ladder.contact is not None or (ladder.context.contact_name or "").strip():
        return
    digits = last_four_digits(ladder.context.phone_number)
    contacts = [s for s in ladder.speakers if s.role is Role.CONTACT]
    if digits is None or len(contacts) != 1 or contacts[0].display_name or contacts[0].locked:
        return
    contacts[0].label = f"Contact ending {digits}"
    contacts[0].source = LabelSource.PHONE_FALLBACK
    ladder.used_phone = True


def _fill_metadata_names(ladder: _Ladder) -> None:
    user_name = (ladder.context.user_display_name or "").strip() or None
    contact_name = (ladder.context.contact_name or "").strip() or None
    contacts = [s for s in ladder.speakers if s.role is Role.CONTACT]
    for speaker in ladder.speakers:
        if speaker.display_name is not None or speaker.locked or speaker.label is not None:
            continue
        if speaker.role is Role.USER and user_name is not None:
            speaker.display_name = " ".join(user_name.split())
            ladder.used_user_name = True
        elif speaker.role is Role.CONTACT and contact_name is not None and len(contacts) == 1:
            speaker.display_name = " ".join(contact_name.split())
            ladder.used_contact_name = True


def _record(speaker: _Speaker, voice_match: VoiceMatchResult | None) -> TranscriptSpeaker:
    if speaker.locked:
        return speaker.record
    score = voice_match.score_for(speaker.record.source_speaker_id) if voice_match is not None else None
    matched = speaker.source is LabelSource.VOICE_EMBEDDING
    label = speaker.display_name or speaker.label or generic_label(speaker.position)
    return speaker.record.model_copy(
        update={
            "label": _single_line(label),
            "display_name": _single_line(speaker.display_name) if speaker.display_name else None,
            "role": speaker.role,
            "confidence": speaker.confidence,
            "label_source": speaker.source,
            "voice_match_score": score,
            "voice_profile_matched": matched if voice_match is not None and voice_match.profile_used else None,
        }
    )


def _single_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()
