"""The call analysis (schema v3) as typed models, and the reader of every stored analysis version.

The wire format is camelCase JSON; attributes are snake_case. ``Analysis`` is at the same time the LLM
contract (its strict schema is generated from these classes, see ``contract.py``) and the reader of
stored ``ANALYSIS_JSON`` artifacts of every version:

* v1: prose ``executiveSummary``, ``sections``, flat ``sentiment {overall, reason}``, no tone.
* v2: adds flat ``executiveSummaryBullets {text, category, importance, sourceSegmentIds}``,
  ``keyDiscussionPoints``, the enriched sentiment, ``tone`` and action-item ``intent``.
* v3: ``executiveSummaryBullets`` become 3-6 sections ``{header, startTimestamp, paragraphs}`` and
  ``nextSteps`` is split out of ``actionItems``.

A v1/v2 artifact parses into the same ``Analysis``: its flat bullets land in ``legacy_summary_bullets``,
fields it never had are null or empty, and keys this code does not know are kept as model extras.

Vocabularies (``vocabulary.py``, importable from here too) come from the reference documentation. The
reference leaves the item shapes of the typed lists (decisions, risks, …) open; ours are deliberately
small — ``text`` plus cited segment ids, with one extra field where the item needs it (a risk's severity,
a date's ISO value, a person's name) — and a
stored list of plain strings reads as items with that text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any, Final

from pydantic import Field, ValidationError, ValidationInfo, WithJsonSchema, model_validator
from pydantic.json_schema import SkipJsonSchema

from scryon_dagster.domain.analysis.contract import ContractModel, is_strict
from scryon_dagster.domain.analysis.vocabulary import (
    CallType,
    Energy,
    Formality,
    Importance,
    Intent,
    LegacyBulletCategory,
    MessageChannel,
    Pace,
    Phase,
    Priority,
    ProviderHint,
    SentimentLabel,
    ToneLabel,
)
from scryon_dagster.domain.transcript.models import Role

CURRENT_SCHEMA_VERSION: Final = 3
# Artifacts written before schemaVersion existed are the v1 shape.
_VERSION_WHEN_ABSENT: Final = 1

# The system prompt explains citations once; a per-field description would repeat it in every object.
SegmentIds = Annotated[list[str], Field(default_factory=list)]


# --- summary -----------------------------------------------------------------------------------------


class SummarySection(ContractModel):
    """A v3 executive-summary section: one phase of the call as a short blog-post section."""

    header: str = Field(description="Short section heading, e.g. 'Pricing Discussion'.")
    start_timestamp: str | None = Field(
        default=None, description="Call time where the section begins, 'MM:SS' ('HH:MM:SS' past an hour)."
    )
    paragraphs: list[str] = Field(default_factory=list)


class LegacySummaryBullet(ContractModel):
    """A v1/v2 flat summary bullet (read from old artifacts only)."""

    text: str = ""
    category: LegacyBulletCategory | None = None
    importance: Importance | None = None
    source_segment_ids: SegmentIds


class SectionItem(ContractModel):
    text: str = ""
    importance: Importance | None = None
    source_segment_ids: SegmentIds
    speaker: SkipJsonSchema[str | None] = None


class Section(ContractModel):
    id: str | None = Field(default=None, description="Stable id within this analysis, e.g. 'sec_001'.")
    title: str | None = None
    type: str | None = Field(default=None, description="Free-form theme kind, e.g. 'concern', 'pricing'.")
    summary: str | None = None
    items: list[SectionItem] = Field(default_factory=list)


class DiscussionPoint(ContractModel):
    text: str = ""
    topic: str | None = Field(default=None, description="Free-form topic label, e.g. 'Pricing'.")
    phase: Phase | None = None
    importance: Importance | None = None
    source_segment_ids: SegmentIds
    # v2 attributed points to a speaker; v3 narrative is speaker-neutral.
    speaker_id: SkipJsonSchema[str | None] = None
    speaker_label: SkipJsonSchema[str | None] = None
    speaker_display_name: SkipJsonSchema[str | None] = None
    speaker_role: SkipJsonSchema[Role | None] = None


# --- action items and next steps ---------------------------------------------------------------------


class Attendee(ContractModel):
    name: str | None = None
    email: str | None = Field(default=None, description="Only if spoken in the transcript, else null.")


class IntentMetadata(ContractModel):
    """Launch details for an action item. Every value is null unless the transcript states it."""

    provider_hint: ProviderHint | None = None
    attendees: list[Attendee] = Field(default_factory=list)
    proposed_at: str | None = Field(default=None, description="ISO-8601 local datetime of a meeting, or null.")
    duration_minutes: int | None = None
    title: str | None = None
    location: str | None = None
    to_email: str | None = Field(default=None, description="Only if spoken in the transcript, else null.")
    to_name: str | None = None
    subject: str | None = None
    body_preview: str | None = Field(default=None, description="1-2 sentence draft body.")
    phone_number: str | None = Field(default=None, description="Only if spoken in the transcript, else null.")
    contact_name: str | None = None
    channel: MessageChannel | None = None
    handle: str | None = None
    remind_at: str | None = Field(default=None, description="ISO-8601 local datetime of a reminder, or null.")
    notes: str | None = None


class ActionItem(ContractModel):
    """A discrete, launchable task; persisted as an ``action_items`` row."""

    title: str = Field(min_length=1, description="Short imperative title.")
    description: str | None = None
    due_date: str | None = Field(
        default=None, description="YYYY-MM-DD only when the transcript states or implies the date, else null."
    )
    priority: Priority | None = None
    intent: Intent | None = None
    intent_metadata: IntentMetadata | None = None
    owner_speaker_id: str | None = Field(default=None, description="speakerId (spk_N) of the owner, or null.")
    owner_speaker_label: str | None = None
    owner_display_name: str | None = None
    owner_role: Role | None = None
    source_segment_ids: SegmentIds
    source_text: str | None = Field(default=None, description="Short verbatim excerpt of the cited segment.")
    # v1/v2 alias of ownerSpeakerLabel.
    owner_speaker: SkipJsonSchema[str | None] = None


class NextStep(ContractModel):
    """A planned, forward-looking activity someone said they would do (not launchable, not persisted)."""

    text: str = ""
    owner_speaker: str | None = Field(default=None, description="speakerId (spk_N) of who will do it, or null.")
    when: str | None = Field(default=None, description="Timing as spoken ('tomorrow', 'next week'), or null.")
    source_segment_ids: SegmentIds


# --- typed lists -------------------------------------------------------------------------------------


class _TextItem(ContractModel):
    """A typed-list entry; a stored plain string reads as an entry with that text."""

    text: str = ""
    source_segment_ids: SegmentIds

    @model_validator(mode="before")
    @classmethod
    def _plain_string_is_text(cls, data: Any, info: ValidationInfo) -> Any:
        return {"text": data} if isinstance(data, str) and not is_strict(info) else data


class FollowUp(_TextItem):
    when: str | None = None


class ImportantDate(_TextItem):
    date: str | None = Field(default=None, description="YYYY-MM-DD when the transcript pins the day, else null.")


class Decision(_TextItem):
    pass


class Commitment(_TextItem):
    owner_speaker_id: str | None = None


class OpenQuestion(_TextItem):
    pass


class Risk(_TextItem):
    severity: Importance | None = None


class Opportunity(_TextItem):
    pass


class PersonMention(_TextItem):
    name: str | None = Field(default=None, description="Exactly as spoken in the transcript.")


class NumberOrAmount(_TextItem):
    value: str | None = Field(default=None, description="The figure as spoken, e.g. '$99/seat'.")


# --- sentiment and tone ------------------------------------------------------------------------------


Score = Annotated[float | None, Field(default=None, ge=-1.0, le=1.0, description="Polarity in [-1.0, 1.0].")]


class PartySentiment(ContractModel):
    overall: SentimentLabel | None = None
    score: Score
    notes: str | None = None


class SentimentMoment(ContractModel):
    phase: Phase | None = None
    overall: SentimentLabel | None = None
    note: str | None = None
    source_segment_ids: SegmentIds


class Sentiment(ContractModel):
    overall: SentimentLabel | None = None
    score: Score
    reason: str | None = None
    user_sentiment: PartySentiment | None = None
    contact_sentiment: PartySentiment | None = None
    progression: list[SentimentMoment] = Field(default_factory=list)
    emotional_signals: list[str] = Field(default_factory=list)


class PartyTone(ContractModel):
    overall: ToneLabel | None = None
    descriptors: list[str] = Field(default_factory=list)
    notes: str | None = None


class ToneByParty(ContractModel):
    user_tone: PartyTone | None = None
    contact_tone: PartyTone | None = None


class Tone(ContractModel):
    overall: ToneLabel | None = None
    descriptors: list[str] = Field(default_factory=list)
    formality: Formality | None = None
    energy: Energy | None = None
    pace: Pace | None = None
    notes: str | None = None
    by_party: ToneByParty | None = None


# --- the analysis ------------------------------------------------------------------------------------


class Analysis(ContractModel):
    """One call's analysis, whatever schema version it was written with (see the module docstring)."""

    schema_version: Annotated[int, WithJsonSchema({"type": "integer", "enum": [CURRENT_SCHEMA_VERSION]})] = (
        _VERSION_WHEN_ABSENT
    )
    call_type: CallType | None = None
    suggested_title: str | None = None
    one_line_summary: str | None = None
    executive_summary: str | None = Field(default=None, description="2-4 sentence headline.")
    executive_summary_bullets: list[SummarySection] = Field(default_factory=list)
    conversation_outcome: str | None = None
    sections: list[Section] = Field(default_factory=list)
    key_discussion_points: list[DiscussionPoint] = Field(default_factory=list)
    action_items: list[ActionItem] = Field(default_factory=list)
    next_steps: list[NextStep] = Field(default_factory=list)
    follow_ups: list[FollowUp] = Field(default_factory=list)
    important_dates: list[ImportantDate] = Field(default_factory=list)
    decisions: list[Decision] = Field(default_factory=list)
    commitments: list[Commitment] = Field(default_factory=list)
    open_questions: list[OpenQuestion] = Field(default_factory=list)
    risks: list[Risk] = Field(default_factory=list)
    opportunities: list[Opportunity] = Field(default_factory=list)
    people_mentioned: list[PersonMention] = Field(default_factory=list)
    numbers_and_amounts: list[NumberOrAmount] = Field(default_factory=list)
    sentiment: Sentiment | None = None
    tone: Tone | None = None
    tags: list[str] = Field(default_factory=list)
    quality_warnings: list[str] = Field(default_factory=list)
    # v1/v2 flat bullets, moved here from ``executiveSummaryBullets`` when a pre-v3 artifact is read.
    legacy_summary_bullets: SkipJsonSchema[list[LegacySummaryBullet]] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _route_pre_v3_bullets(cls, data: Any, info: ValidationInfo) -> Any:
        if is_strict(info) or not isinstance(data, dict) or _declared_version(data) >= CURRENT_SCHEMA_VERSION:
            return data
        routed = {key: value for key, value in data.items() if key != "executiveSummaryBullets"}
        routed.setdefault("legacySummaryBullets", data.get("executiveSummaryBullets"))
        return routed

    @model_validator(mode="after")
    def _known_version(self, info: ValidationInfo) -> Analysis:
        oldest = CURRENT_SCHEMA_VERSION if is_strict(info) else 1
        if not oldest <= self.schema_version <= CURRENT_SCHEMA_VERSION:
            raise ValueError("unsupported schemaVersion")
        return self

    def cited_segment_ids(self) -> set[str]:
        """Every segment id cited anywhere in the analysis."""
        return {segment_id for _, segment_id in iter_citations(self)}


def _declared_version(data: dict[str, Any]) -> int:
    version = data.get("schemaVersion", data.get("schema_version", _VERSION_WHEN_ABSENT))
    return version if isinstance(version, int) and not isinstance(version, bool) else _VERSION_WHEN_ABSENT


def iter_citations(node: object, path: str = "") -> Iterator[tuple[str, str]]:
    """``(wire path of the sourceSegmentIds array, cited id)`` for every citation under ``node``."""
    if isinstance(node, ContractModel):
        for name, field in type(node).model_fields.items():
            value = getattr(node, name)
            child_path = f"{path}.{field.alias or name}" if path else field.alias or name
            if name == "source_segment_ids":
                yield from ((child_path, segment_id) for segment_id in value)
            else:
                yield from iter_citations(value, child_path)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from iter_citations(item, f"{path}.{index}")


# --- reading stored artifacts ------------------------------------------------------------------------


class AnalysisArtifactError(ValueError):
    """A stored analysis artifact that cannot be read. The message never quotes the artifact."""


def parse_analysis(raw: bytes) -> Analysis:
    """Read a stored ``ANALYSIS_JSON`` artifact of any schema version (1, 2 or 3)."""
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        raise AnalysisArtifactError("analysis artifact is not valid JSON") from None
    if not isinstance(document, dict):
        raise AnalysisArtifactError("analysis artifact is not a JSON object")
    version = _declared_version(document)
    if not 1 <= version <= CURRENT_SCHEMA_VERSION:
        raise AnalysisArtifactError(f"unsupported analysis schemaVersion {version}")
    try:
        return Analysis.model_validate(document)
    except ValidationError as exc:
        # The pydantic message quotes artifact content; report only the count.
        raise AnalysisArtifactError(
            f"analysis artifact v{version} does not match the schema ({exc.error_count()} errors)"
        ) from None
