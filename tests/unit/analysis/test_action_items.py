"""From an analysis to action_items and call_sentiment_summary rows: owners, dates, metadata."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from scryon_dagster.domain.analysis import (
    ActionItemDraft,
    ActionItemPriority,
    Analysis,
    build_action_item_drafts,
    build_sentiment_summary,
    parse_analysis,
    parse_due_date,
)
from scryon_dagster.domain.analysis.models import (
    ActionItem,
    Energy,
    Formality,
    Intent,
    IntentMetadata,
    Pace,
    SentimentLabel,
    ToneLabel,
)
from scryon_dagster.domain.transcript.models import Confidence, LabelSource, NormalizedTranscript, Role

from .builders import fixture_bytes, speaker, transcript, two_party_transcript

RECORDED_AT = datetime(2026, 5, 20, 14, 30, tzinfo=UTC)  # a Wednesday
NAMED = two_party_transcript()
GENERIC = transcript(
    [speaker("spk_1", "Speaker 1"), speaker("spk_2", "Speaker 2")],
    [("spk_1", "Can you send the figures tomorrow?"), ("spk_2", "Sure, I'll send them.")],
)


def _draft(transcript_: NormalizedTranscript = NAMED, **item: Any) -> ActionItemDraft:
    analysis = Analysis(schema_version=3, action_items=[ActionItem(title="Send the revised quote", **item)])
    [draft] = build_action_item_drafts(analysis, transcript_, recorded_at=RECORDED_AT)
    return draft


def _owner(draft: ActionItemDraft) -> tuple[Any, ...]:
    return (draft.owner_speaker_id, draft.owner_speaker_label, draft.owner_display_name, draft.owner_role)


# --- owner mapping -----------------------------------------------------------------------------------


def test_owner_speaker_id_that_exists_is_preferred_and_filled_from_the_transcript() -> None:
    draft = _draft(owner_speaker_id="spk_2", owner_speaker_label="Alex Morgan", owner_role=Role.USER)

    assert _owner(draft) == ("spk_2", "Priya Raman", "Priya Raman", Role.CONTACT)


def test_unknown_speaker_id_falls_back_to_a_case_insensitive_label_match() -> None:
    draft = _draft(owner_speaker_id="spk_9", owner_speaker_label="  priya   RAMAN ")

    assert _owner(draft) == ("spk_2", "Priya Raman", "Priya Raman", Role.CONTACT)


def test_generic_label_matches_the_generic_speaker_label() -> None:
    draft = _draft(GENERIC, owner_speaker_label="speaker 2")

    assert _owner(draft) == ("spk_2", "Speaker 2", None, Role.UNKNOWN)


def test_label_holding_a_speaker_id_matches_that_speaker() -> None:
    assert _owner(_draft(owner_speaker_label="SPK_1"))[0] == "spk_1"


def test_display_name_is_used_when_id_and_label_do_not_match() -> None:
    draft = _draft(owner_speaker_label="the sales rep", owner_display_name="Alex Morgan")

    assert _owner(draft) == ("spk_1", "Alex Morgan", "Alex Morgan", Role.USER)


def test_legacy_owner_speaker_string_is_matched_like_a_label() -> None:
    v1 = parse_analysis(fixture_bytes("analysis_v1.json"))
    [draft] = build_action_item_drafts(v1, GENERIC, recorded_at=None)

    assert _owner(draft) == ("spk_2", "Speaker 2", None, Role.UNKNOWN)


def test_unmatched_owner_is_never_invented_but_the_raw_string_and_role_are_kept() -> None:
    draft = _draft(owner_speaker_id="spk_7", owner_speaker_label="Bob from finance", owner_role=Role.CONTACT)

    assert _owner(draft) == (None, None, None, Role.CONTACT)
    assert draft.source_text is not None
    assert "owner=Bob from finance" in draft.source_text


def test_a_label_matching_two_speakers_is_ambiguous_and_maps_to_nobody() -> None:
    twins = transcript(
        [
            speaker("spk_1", "Sam", display_name="Sam", role=Role.USER),
            speaker("spk_2", "Sam", display_name="Sam", role=Role.CONTACT),
        ],
        [("spk_1", "Hi Sam."), ("spk_2", "Hi Sam.")],
    )

    assert _owner(_draft(twins, owner_speaker_label="Sam")) == (None, None, None, None)


def test_no_owner_at_all_gives_null_owner_columns() -> None:
    assert _owner(_draft()) == (None, None, None, None)


# --- due dates ---------------------------------------------------------------------------------------


def test_stated_due_date_is_kept() -> None:
    draft = _draft(due_date="2026-05-22", source_segment_ids=["seg_0004"])  # "…a revised quote by Friday?"

    assert draft.due_date == date(2026, 5, 22)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-05-22", date(2026, 5, 22)),
        (" 2026-05-22 ", date(2026, 5, 22)),
        ("2026-05-22T11:00:00Z", date(2026, 5, 22)),
        ("2026-05-22 11:00", date(2026, 5, 22)),
        ("2026/5/22", date(2026, 5, 22)),
        ("next Friday", None),
        ("Friday", None),
        ("2026-02-30", None),
        ("2026-13-01", None),
        ("22/05/2026", None),
        ("", None),
        (None, None),
    ],
)
def test_due_dates_are_parsed_leniently_and_garbage_becomes_null(raw: str | None, expected: date | None) -> None:
    parsed = parse_due_date(raw, recorded_at=RECORDED_AT, evidence=["by Friday"], language="en")

    assert parsed == expected


@pytest.mark.parametrize(
    "raw",
    ["2023-05-22", "2026-05-18", "2031-01-01"],
    ids=["wrong-year", "before-the-call", "implausibly-far"],
)
def test_dates_outside_the_plausible_window_are_treated_as_invented(raw: str) -> None:
    assert parse_due_date(raw, recorded_at=RECORDED_AT, evidence=["by Friday"], language="en") is None


def test_the_day_before_the_call_is_tolerated_for_time_zones() -> None:
    assert parse_due_date("2026-05-19", recorded_at=RECORDED_AT, evidence=["yesterday"], language="en") == date(
        2026, 5, 19
    )


def test_a_date_no_cited_segment_speaks_of_is_invented() -> None:
    # seg_0002: "Sure. The per-seat price is the main problem for procurement." — no time at all.
    assert _draft(due_date="2026-05-22", source_segment_ids=["seg_0002"]).due_date is None


def test_a_date_without_any_citation_is_invented() -> None:
    assert _draft(due_date="2026-05-22").due_date is None


def test_source_text_counts_as_evidence() -> None:
    draft = _draft(due_date="2026-05-22", source_segment_ids=["seg_0002"], source_text="send it by Friday")

    assert draft.due_date == date(2026, 5, 22)


def test_non_english_transcripts_only_need_a_citation() -> None:
    assert parse_due_date("2026-05-22", recorded_at=RECORDED_AT, evidence=["bis Freitag"], language="de") == date(
        2026, 5, 22
    )
    assert parse_due_date("2026-05-22", recorded_at=RECORDED_AT, evidence=[], language="de") is None


def test_without_a_recording_time_only_the_window_check_is_skipped() -> None:
    assert parse_due_date("2019-01-01", recorded_at=None, evidence=["on the 1st"], language="en") == date(2019, 1, 1)


# --- the other columns -------------------------------------------------------------------------------


def test_columns_of_a_complete_item() -> None:
    draft = _draft(
        description="  Pricing   for 60 seats. ",
        priority="high",
        intent=Intent.EMAIL,
        intent_metadata=IntentMetadata(subject="Revised quote", body_preview="Attached.", to_name="Priya"),
        owner_speaker_id="spk_1",
        source_segment_ids=["seg_0004", "seg_0005"],
        source_text="I'll send it by Friday",
    )

    assert draft.title == "Send the revised quote"
    assert draft.description == "Pricing for 60 seats."
    assert draft.priority is ActionItemPriority.HIGH
    assert draft.intent is Intent.EMAIL
    assert draft.intent_metadata_json == {"subject": "Revised quote", "bodyPreview": "Attached.", "toName": "Priya"}
    assert draft.source_segment_ids_json == ["seg_0004", "seg_0005"]
    assert draft.source_text == (
        'priority=high; owner=spk_1; segments=seg_0004,seg_0005; text="I\'ll send it by Friday"'
    )


def test_source_text_falls_back_to_the_first_cited_segment_and_is_bounded() -> None:
    long_line = "word " * 100
    chatty = transcript([speaker("spk_1", "Speaker 1")], [("spk_1", long_line)])

    draft = _draft(chatty, source_segment_ids=["seg_0001"])

    assert draft.source_text is not None
    excerpt = draft.source_text.split('text="', 1)[1].rstrip('"')
    assert len(excerpt) == 200
    assert excerpt.endswith("…")


def test_empty_intent_metadata_is_null() -> None:
    assert _draft(intent=Intent.NONE, intent_metadata=IntentMetadata()).intent_metadata_json is None


def test_contact_details_survive_only_when_spoken_in_the_transcript() -> None:
    spoken = transcript(
        [speaker("spk_1", "Speaker 1"), speaker("spk_2", "Speaker 2")],
        [("spk_1", "Send it to sam@acme.com please."), ("spk_2", "My extension is 4471.")],
    )
    metadata = IntentMetadata.model_validate(
        {
            "toEmail": "SAM@acme.com",
            "phoneNumber": "+1 415 555 0199",
            "attendees": [{"name": "Sam", "email": "sam@acme.com"}, {"name": "Jo", "email": "jo@invented.io"}],
        }
    )

    draft = _draft(spoken, intent=Intent.EMAIL, intent_metadata=metadata)

    assert draft.intent_metadata_json == {
        "toEmail": "SAM@acme.com",
        "attendees": [{"name": "Sam", "email": "sam@acme.com"}, {"name": "Jo"}],
    }


def test_one_draft_per_item_in_order() -> None:
    v2 = parse_analysis(fixture_bytes("analysis_v2.json"))
    generic_v2 = transcript(
        [
            speaker(
                "spk_1",
                "Speaker 1",
                role=Role.USER,
                confidence=Confidence.HIGH,
                label_source=LabelSource.VOICE_EMBEDDING,
            ),
            speaker("spk_2", "Speaker 2", role=Role.CONTACT),
        ],
        [
            ("spk_1", "Hi."),
            ("spk_2", "Pricing."),
            ("spk_1", "Ok."),
            ("spk_2", "Hm."),
            ("spk_1", "Demo on Friday the 22nd."),
        ],
    )

    drafts = build_action_item_drafts(v2, generic_v2, recorded_at=RECORDED_AT)

    assert [d.title for d in drafts] == ["Send Friday demo invite"]
    assert drafts[0].due_date == date(2026, 5, 22)
    assert drafts[0].intent is Intent.MEETING
    assert drafts[0].intent_metadata_json is not None
    assert drafts[0].intent_metadata_json["providerHint"] == "zoom"
    assert _owner(drafts[0]) == ("spk_1", "Speaker 1", None, Role.USER)


# --- sentiment summary -------------------------------------------------------------------------------


def test_sentiment_summary_from_a_v2_analysis() -> None:
    summary = build_sentiment_summary(parse_analysis(fixture_bytes("analysis_v2.json")))

    assert summary is not None
    assert (summary.sentiment_overall, summary.user_sentiment, summary.contact_sentiment) == (
        SentimentLabel.POSITIVE,
        SentimentLabel.POSITIVE,
        SentimentLabel.MIXED,
    )
    assert (summary.tone_overall, summary.tone_formality, summary.tone_energy, summary.tone_pace) == (
        ToneLabel.PROFESSIONAL,
        Formality.SEMI_FORMAL,
        Energy.MEDIUM,
        Pace.NORMAL,
    )


def test_sentiment_summary_of_a_v1_analysis_has_no_tone() -> None:
    summary = build_sentiment_summary(parse_analysis(fixture_bytes("analysis_v1.json")))

    assert summary is not None
    assert summary.sentiment_overall is SentimentLabel.NEUTRAL
    assert summary.user_sentiment is None
    assert summary.tone_overall is None
    assert summary.tone_pace is None


def test_no_sentiment_summary_without_sentiment_or_tone() -> None:
    assert build_sentiment_summary(Analysis(schema_version=3)) is None
