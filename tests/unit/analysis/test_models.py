"""Reading stored analysis artifacts of every schema version."""

from __future__ import annotations

import json
from typing import Any

import pytest

from scryon_dagster.domain.analysis import CURRENT_SCHEMA_VERSION, AnalysisArtifactError, parse_analysis
from scryon_dagster.domain.analysis.models import (
    CallType,
    Formality,
    Intent,
    LegacyBulletCategory,
    Phase,
    Priority,
    ProviderHint,
    SentimentLabel,
    ToneLabel,
)
from scryon_dagster.domain.transcript.models import Role

from .builders import fixture_bytes, load_fixture


def test_v1_artifact_reads_with_absent_fields_null_or_empty_and_unknown_keys_kept() -> None:
    analysis = parse_analysis(fixture_bytes("analysis_v1.json"))

    assert analysis.schema_version == 1
    assert analysis.call_type is CallType.BUSINESS
    assert analysis.executive_summary is not None
    assert analysis.executive_summary.startswith("The supplier")
    assert analysis.executive_summary_bullets == []
    assert analysis.legacy_summary_bullets == []
    assert analysis.key_discussion_points == []
    assert analysis.next_steps == []
    assert analysis.tone is None
    assert analysis.important_dates == []  # stored as null
    assert analysis.sentiment is not None
    assert analysis.sentiment.overall is SentimentLabel.NEUTRAL
    assert analysis.sentiment.reason == "Matter-of-fact resolution."
    assert analysis.sentiment.score is None
    assert analysis.sentiment.user_sentiment is None
    assert analysis.sentiment.progression == []
    # Legacy-only fields survive.
    assert analysis.sections[0].items[0].speaker == "Speaker 2"
    item = analysis.action_items[0]
    assert item.owner_speaker == "Speaker 2"
    assert item.owner_speaker_id is None
    assert item.intent is None
    assert item.priority is Priority.HIGH  # stored upper-case
    # Plain strings in a typed list read as items; objects without citations get an empty list.
    assert analysis.follow_ups[0].text == "Confirm the credit note arrived"
    assert analysis.numbers_and_amounts[0].value == "$1,250"
    assert analysis.numbers_and_amounts[0].source_segment_ids == []
    # Keys this code does not model are kept, not dropped.
    assert analysis.model_extra == {"shortSummary": analysis.one_line_summary}


def test_v2_artifact_keeps_flat_bullets_speaker_attribution_and_intent() -> None:
    analysis = parse_analysis(fixture_bytes("analysis_v2.json"))

    assert analysis.schema_version == 2
    assert analysis.executive_summary_bullets == []
    bullets = analysis.legacy_summary_bullets
    assert [b.category for b in bullets] == [LegacyBulletCategory.CONCERN, LegacyBulletCategory.NEXT_STEPS]
    assert bullets[0].source_segment_ids == ["seg_0002"]
    point = analysis.key_discussion_points[0]
    assert (point.speaker_id, point.speaker_role, point.phase) == ("spk_2", Role.CONTACT, Phase.MIDDLE)
    item = analysis.action_items[0]
    assert item.intent is Intent.MEETING
    assert item.intent_metadata is not None
    assert item.intent_metadata.provider_hint is ProviderHint.ZOOM
    assert item.intent_metadata.attendees[0].name == "Alex"
    assert item.intent_metadata.attendees[0].email is None
    assert item.owner_role is Role.USER
    assert analysis.sentiment is not None
    assert analysis.sentiment.contact_sentiment is not None
    assert analysis.sentiment.contact_sentiment.overall is SentimentLabel.MIXED
    assert analysis.tone is not None
    assert analysis.tone.formality is Formality.SEMI_FORMAL  # stored as "semi_formal"
    assert analysis.tone.by_party is not None
    assert analysis.tone.by_party.contact_tone is not None
    assert analysis.tone.by_party.contact_tone.overall is ToneLabel.TRANSACTIONAL
    assert analysis.cited_segment_ids() == {"seg_0001", "seg_0002", "seg_0005"}


def test_v3_artifact_reads_sections_and_next_steps() -> None:
    analysis = parse_analysis(fixture_bytes("analysis_v3.json"))

    assert analysis.schema_version == CURRENT_SCHEMA_VERSION == 3
    assert [s.header for s in analysis.executive_summary_bullets] == ["The Outage", "Diagnosis", "Fix and Follow-up"]
    assert analysis.executive_summary_bullets[1].start_timestamp == "01:12"
    assert len(analysis.executive_summary_bullets[1].paragraphs) == 2
    assert analysis.legacy_summary_bullets == []
    assert analysis.next_steps[0].owner_speaker == "spk_2"
    assert analysis.next_steps[0].when == "next few days"
    assert analysis.important_dates[0].date == "2026-03-12"
    assert analysis.model_extra == {}


def test_v3_round_trips_through_its_own_json() -> None:
    original = load_fixture("analysis_v3.json")
    analysis = parse_analysis(json.dumps(original).encode())

    dumped = analysis.model_dump(mode="json", by_alias=True, exclude={"legacy_summary_bullets"})

    # Legacy-only fields (ownerSpeaker, …) dump as null; apart from them the document is unchanged.
    assert _without_nulls(dumped) == _without_nulls(original)


def _without_nulls(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _without_nulls(value) for key, value in node.items() if value is not None}
    if isinstance(node, list):
        return [_without_nulls(item) for item in node]
    return node


def test_artifact_without_schema_version_is_read_as_v1() -> None:
    raw = {"executiveSummary": "Short call.", "executiveSummaryBullets": [{"text": "Brief.", "category": "context"}]}

    analysis = parse_analysis(json.dumps(raw).encode())

    assert analysis.schema_version == 1
    assert analysis.legacy_summary_bullets[0].text == "Brief."


@pytest.mark.parametrize(
    ("raw", "expected_message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"schemaVersion": 4}', "unsupported analysis schemaVersion 4"),
        (b'{"schemaVersion": 3, "callType": "SECRET-TOKEN"}', "does not match the schema (1 errors)"),
        (b'{"schemaVersion": 2, "actionItems": [{"title": ""}]}', "does not match the schema"),
    ],
)
def test_unreadable_artifacts_raise_without_quoting_content(raw: bytes, expected_message: str) -> None:
    with pytest.raises(AnalysisArtifactError) as caught:
        parse_analysis(raw)

    assert expected_message in str(caught.value)
    assert "SECRET-TOKEN" not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__


def test_enum_values_are_read_case_and_separator_insensitively() -> None:
    raw = {"schemaVersion": 3, "callType": "SALES", "tone": {"formality": "Semi Formal", "overall": "formal_business"}}

    analysis = parse_analysis(json.dumps(raw).encode())

    assert analysis.call_type is CallType.SALES
    assert analysis.tone is not None
    assert analysis.tone.formality is Formality.SEMI_FORMAL
    assert analysis.tone.overall is ToneLabel.FORMAL_BUSINESS
