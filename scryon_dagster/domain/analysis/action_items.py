"""From a validated analysis to the rows the pipeline writes: ``action_items`` and ``call_sentiment_summary``.

Owner mapping never invents an owner. ``ownerSpeakerId`` is preferred when it names a speaker of the
transcript; otherwise ``ownerSpeakerLabel`` (or the legacy ``ownerSpeaker``), then ``ownerDisplayName``,
is matched case-insensitively against the speakers' labels, display names and ids. A value matching no
speaker, or more than one, leaves the owner columns null; ``owner_role`` then keeps the model's role
(as the reference does). The model's raw owner string survives in the forensic ``source_text``.

Dates are only kept when they are real: ``dueDate`` must parse as an ISO date (a datetime or
``YYYY/MM/DD`` is accepted), fall between the day before the call and three years after it, and be
backed by a cited segment that speaks of time at all (a weekday, a month, "tomorrow", a number, …).
Anything else is treated as invented and becomes null. E-mail addresses and phone numbers in the intent
metadata survive only when they appear verbatim in the transcript.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from scryon_dagster.domain.analysis.models import (
    ActionItem,
    Analysis,
    Energy,
    Formality,
    Intent,
    IntentMetadata,
    Pace,
    SentimentLabel,
    ToneLabel,
)
from scryon_dagster.domain.transcript.models import NormalizedTranscript, Role, TranscriptSpeaker

_EARLIEST_DUE_BEFORE_CALL = timedelta(days=1)  # the model may reason in the user's time zone
_LATEST_DUE_AFTER_CALL = timedelta(days=3 * 366)
_SOURCE_EXCERPT_CHARS = 200
# Time vocabulary of English transcripts; other languages fall back to "cites at least one segment".
# Abbreviations that are everyday words ("may", "sun", "sat", "mar") are left out; with a day number
# the digit already counts.
_TEMPORAL_CUE = re.compile(
    r"\d|\b(today|tonight|tomorrow|yesterday|morning|afternoon|evening|noon|midnight|week|weekend|"
    r"month|year|quarter|monday|tuesday|wednesday|thursday|friday|saturday|sunday|tue|tues|thu|thur|"
    r"thurs|fri|january|february|march|april|june|july|august|september|october|november|december|"
    r"jan|feb|apr|jun|jul|aug|sep|sept|oct|nov|dec|eod|eow|deadline)\b",
    re.IGNORECASE,
)


class ActionItemPriority(StrEnum):
    """The ``action_items.priority`` column vocabulary."""

    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"


@dataclass(frozen=True)
class ActionItemDraft:
    """One AI ``action_items`` row (without ids, call id, status, source and timestamps).

    ``intent`` is stored as its lowercase value; ``*_json`` attributes are JSON-ready Python values for
    the jsonb columns.
    """

    title: str
    description: str | None
    due_date: date | None
    priority: ActionItemPriority | None
    intent: Intent | None
    intent_metadata_json: dict[str, Any] | None
    owner_speaker_id: str | None
    owner_speaker_label: str | None
    owner_display_name: str | None
    owner_role: Role | None
    source_segment_ids_json: list[str]
    source_text: str | None


@dataclass(frozen=True)
class SentimentSummary:
    """The analysis columns of the ``call_sentiment_summary`` row (the caller adds ids and timestamps)."""

    sentiment_overall: SentimentLabel | None
    user_sentiment: SentimentLabel | None
    contact_sentiment: SentimentLabel | None
    tone_overall: ToneLabel | None
    tone_formality: Formality | None
    tone_energy: Energy | None
    tone_pace: Pace | None


def build_action_item_drafts(
    analysis: Analysis, transcript: NormalizedTranscript, *, recorded_at: datetime | None
) -> list[ActionItemDraft]:
    """One draft per action item of the analysis, in order, owners mapped against the transcript."""
    return [_draft(item, transcript, recorded_at) for item in analysis.action_items]


def resolve_owner(item: ActionItem, speakers: Sequence[TranscriptSpeaker]) -> TranscriptSpeaker | None:
    """The transcript speaker who owns ``item``, or None when the model's owner matches no single speaker."""
    if item.owner_speaker_id:
        by_id = _unique([s for s in speakers if _same(s.speaker_id, item.owner_speaker_id)])
        if by_id is not None:
            return by_id
    for claimed in (item.owner_speaker_label, item.owner_speaker, item.owner_display_name):
        if claimed and claimed.strip():
            matched = _unique([s for s in speakers if _speaker_answers_to(s, claimed)])
            if matched is not None:
                return matched
    return None


def build_sentiment_summary(analysis: Analysis) -> SentimentSummary | None:
    """The ``call_sentiment_summary`` values, or None when the analysis has neither sentiment nor tone."""
    sentiment, tone = analysis.sentiment, analysis.tone
    if sentiment is None and tone is None:
        return None
    return SentimentSummary(
        sentiment_overall=sentiment.overall if sentiment else None,
        user_sentiment=sentiment.user_sentiment.overall if sentiment and sentiment.user_sentiment else None,
        contact_sentiment=(sentiment.contact_sentiment.overall if sentiment and sentiment.contact_sentiment else None),
        tone_overall=tone.overall if tone else None,
        tone_formality=tone.formality if tone else None,
        tone_energy=tone.energy if tone else None,
        tone_pace=tone.pace if tone else None,
    )


def parse_due_date(
    raw: str | None, *, recorded_at: datetime | None, evidence: Sequence[str], language: str | None
) -> date | None:
    """A due date the transcript can back, else None (see the module docstring for the rules)."""
    parsed = _parse_iso_date(raw)
    if parsed is None or not evidence:
        return None
    if recorded_at is not None:
        call_day = recorded_at.date()
        if not call_day - _EARLIEST_DUE_BEFORE_CALL <= parsed <= call_day + _LATEST_DUE_AFTER_CALL:
            return None
    if _is_english(language) and not any(_TEMPORAL_CUE.search(text) for text in evidence):
        return None
    return parsed


# --- internals ---------------------------------------------------------------------------------------


def _draft(item: ActionItem, transcript: NormalizedTranscript, recorded_at: datetime | None) -> ActionItemDraft:
    owner = resolve_owner(item, transcript.speakers)
    segment_text = {segment.id: segment.text for segment in transcript.segments}
    cited_texts = [segment_text[sid] for sid in item.source_segment_ids if sid in segment_text]
    evidence = [*cited_texts, item.source_text] if item.source_text else cited_texts
    return ActionItemDraft(
        title=" ".join(item.title.split()),
        description=_clean(item.description),
        due_date=parse_due_date(
            item.due_date, recorded_at=recorded_at, evidence=evidence, language=transcript.language
        ),
        priority=ActionItemPriority[item.priority.name] if item.priority else None,
        intent=item.intent,
        intent_metadata_json=_grounded_metadata(item.intent_metadata, transcript),
        owner_speaker_id=owner.speaker_id if owner else None,
        owner_speaker_label=owner.label if owner else None,
        owner_display_name=owner.display_name if owner else None,
        owner_role=owner.role if owner else item.owner_role,
        source_segment_ids_json=list(item.source_segment_ids),
        source_text=_forensic_source_text(item, cited_texts),
    )


def _same(left: str, right: str) -> bool:
    return _fold(left) == _fold(right)


def _fold(value: str) -> str:
    return " ".join(value.split()).casefold()


def _speaker_answers_to(speaker: TranscriptSpeaker, claimed: str) -> bool:
    names = (speaker.label, speaker.display_name, speaker.speaker_id)
    return any(name and _same(name, claimed) for name in names)


def _unique(speakers: list[TranscriptSpeaker]) -> TranscriptSpeaker | None:
    return speakers[0] if len(speakers) == 1 else None


def _clean(value: str | None) -> str | None:
    collapsed = " ".join(value.split()) if value else ""
    return collapsed or None


def _parse_iso_date(raw: str | None) -> date | None:
    text = (raw or "").strip()
    if not text:
        return None
    slashed = re.fullmatch(r"(\d{4})/(\d{1,2})/(\d{1,2})", text)
    try:
        if slashed:
            return date(int(slashed[1]), int(slashed[2]), int(slashed[3]))
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return date.fromisoformat(text)
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}[T ].+", text):
            return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        return None
    return None


def _is_english(language: str | None) -> bool:
    return language is None or language.strip().lower() in ("", "auto", "unknown") or language.lower().startswith("en")


def _grounded_metadata(metadata: IntentMetadata | None, transcript: NormalizedTranscript) -> dict[str, Any] | None:
    if metadata is None:
        return None
    spoken = " ".join(segment.text for segment in transcript.segments)
    spoken_folded = spoken.casefold()
    spoken_digits = re.sub(r"\D", "", spoken)

    def email_if_spoken(value: str | None) -> str | None:
        return value if value and value.strip().casefold() in spoken_folded else None

    def phone_if_spoken(value: str | None) -> str | None:
        digits = re.sub(r"\D", "", value or "")
        return value if digits and digits in spoken_digits else None

    grounded = metadata.model_copy(
        update={
            "to_email": email_if_spoken(metadata.to_email),
            "phone_number": phone_if_spoken(metadata.phone_number),
            "attendees": [
                attendee.model_copy(update={"email": email_if_spoken(attendee.email)})
                for attendee in metadata.attendees
            ],
        }
    )
    dumped = grounded.model_dump(mode="json", by_alias=True, exclude_none=True)
    compact = {key: value for key, value in dumped.items() if value not in ([], {}, "")}
    return compact or None


def _forensic_source_text(item: ActionItem, cited_texts: list[str]) -> str | None:
    """``priority=high; owner=spk_1; segments=seg_0002,seg_0003; text="…"`` — what the model said, kept for audit."""
    raw_owner = next(
        (
            value.strip()
            for value in (item.owner_speaker_label, item.owner_speaker, item.owner_speaker_id, item.owner_display_name)
            if value and value.strip()
        ),
        None,
    )
    excerpt = _clean(item.source_text) or (_clean(cited_texts[0]) if cited_texts else None)
    if excerpt and len(excerpt) > _SOURCE_EXCERPT_CHARS:
        excerpt = excerpt[: _SOURCE_EXCERPT_CHARS - 1].rstrip() + "…"
    parts = [
        f"priority={item.priority.value}" if item.priority else None,
        f"owner={raw_owner}" if raw_owner else None,
        f"segments={','.join(item.source_segment_ids)}" if item.source_segment_ids else None,
        f'text="{excerpt}"' if excerpt else None,
    ]
    joined = "; ".join(part for part in parts if part)
    return joined or None
