"""The analysis prompt: its rules, and that nothing identifying leaves for the LLM."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from scryon_dagster.domain.analysis import build_analysis_prompt
from scryon_dagster.domain.analysis.redaction import mask_contact_details, mask_names
from scryon_dagster.domain.transcript.models import Confidence, LabelSource, NormalizedTranscript, Role

from .builders import speaker, transcript

USER_ID = "5f0c2a8e-1b7d-4c3e-9a41-7d2b9c0e4f11"
CALL_ID = "9a3e5c71-2f44-4b8a-8e0d-6c1f7b2a9d35"
RECORDED_AT = datetime(2026, 5, 20, 14, 30, tzinfo=UTC)

# What the call record and speaker naming know, none of which may reach the model.
FORBIDDEN = [
    "Priya",
    "Raman",
    "Alex",
    "Morgan",
    "priya.raman@acme.com",
    "alex@scryon.app",
    "415",
    "555",
    "5550199",
    USER_ID,
    "ext-user-4471",
]


def _named_transcript() -> NormalizedTranscript:
    return transcript(
        [
            speaker(
                "spk_1",
                "Alex Morgan",
                role=Role.USER,
                display_name="Alex Morgan",
                confidence=Confidence.HIGH,
                label_source=LabelSource.USER_PROFILE,
            ),
            speaker(
                "spk_2",
                "Priya Raman (Acme)",
                role=Role.CONTACT,
                display_name="Priya Raman",
                confidence=Confidence.HIGH,
                label_source=LabelSource.CONTACT_METADATA,
            ),
        ],
        [
            ("spk_1", "Thanks for calling back about the renewal."),
            ("spk_2", "Sure. Send the contract to priya.raman@acme.com please."),
            ("spk_1", "Will do. Is +1 (415) 555-0199 still the best number?"),
            ("spk_2", "Yes. The budget is 1,250,000 and we sign on 2026-06-01 at 10:30."),
        ],
        call_id=CALL_ID,
    )


def test_no_phone_email_contact_or_user_identity_reaches_the_prompt() -> None:
    prompt = build_analysis_prompt(
        _named_transcript(),
        call_id=CALL_ID,
        recorded_at=RECORDED_AT,
        duration_seconds=16.0,
        title="Call with Priya Raman (+1 415 555 0199) for alex@scryon.app",
        withheld_names=["Priya Raman", "Alex Morgan"],
    )
    sent = "\n".join(message["content"] for message in prompt.messages())

    for forbidden in FORBIDDEN:
        assert forbidden.lower() not in sent.lower(), forbidden
    assert "[email]" in sent
    assert "[number ending 0199]" in sent


def test_user_prompt_carries_only_the_allowed_metadata_and_the_compact_transcript() -> None:
    prompt = build_analysis_prompt(
        _named_transcript(),
        call_id=CALL_ID,
        recorded_at=RECORDED_AT,
        duration_seconds=16.0,
        title="Renewal",
    )
    metadata, transcript_block = prompt.user.split("\n\nTranscript\n")

    assert metadata.splitlines() == [
        "Call metadata",
        f"callId: {CALL_ID}",
        "recordedAt: 2026-05-20T14:30:00+00:00",
        "durationSeconds: 16.0",
        "title: Renewal",
    ]
    lines = transcript_block.splitlines()
    assert lines[:3] == ["language: en", "durationSeconds: 16.0", "speakers: spk_1 (USER), spk_2 (CONTACT)"]
    assert lines[3] == "[seg_0001  00:00-00:04] spk_1 (USER): Thanks for calling back about the renewal."
    assert len(lines) == 3 + 4


def test_segment_times_switch_to_hours_past_the_first_hour() -> None:
    long_call = transcript([speaker("spk_1", "Speaker 1")], [("spk_1", "Still here.")] * 2, seconds_per_line=1862.5)

    prompt = build_analysis_prompt(long_call, call_id=CALL_ID, recorded_at=None, duration_seconds=None, title=None)

    assert "[seg_0002  31:02-01:02:05] spk_1 (UNKNOWN): Still here." in prompt.user


def test_dates_times_and_amounts_are_not_mistaken_for_phone_numbers() -> None:
    prompt = build_analysis_prompt(
        _named_transcript(), call_id=CALL_ID, recorded_at=None, duration_seconds=None, title=None
    )

    assert "The budget is 1,250,000 and we sign on 2026-06-01 at 10:30." in prompt.user
    assert "recordedAt: unknown" in prompt.user
    assert "title: none" in prompt.user


def test_system_prompt_states_the_rules() -> None:
    system = build_analysis_prompt(
        _named_transcript(), call_id=CALL_ID, recorded_at=None, duration_seconds=None, title=None
    ).system

    for rule in (
        "Never invent names, dates",
        "sourceSegmentIds",
        "Speaker-neutral narrative",
        "Each fact appears once",
        "3 to 6 sections",
        "actionItems are discrete tasks",
        "nextSteps are planned",
        "schemaVersion 3",
    ):
        assert rule in system, rule


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail me at jo.doe+x@mail.example.org today", "mail me at [email] today"),
        ("call 020 7946 0958 or +44 20 7946 0958", "call [number ending 0958] or [number ending 0958]"),
        ("it's 555-1234", "it's [number ending 1234]"),
        ("extension 4471 and room 12", "extension 4471 and room 12"),
        ("on 2026-06-01 we pay $99 per seat", "on 2026-06-01 we pay $99 per seat"),
    ],
)
def test_contact_detail_masking(text: str, expected: str) -> None:
    assert mask_contact_details(text) == expected


def test_name_masking_covers_full_names_and_their_longer_words_only() -> None:
    masked = mask_names("Call with Maria de la Cruz; ask Maria about la tarifa", ["Maria de la Cruz"])

    assert masked == "Call with [name]; ask [name] about la tarifa"
