"""The simulator's sample analysis is deterministic and passes the real validation."""

from __future__ import annotations

import json

import pytest

from scryon_dagster.domain.analysis import (
    build_action_item_drafts,
    build_sentiment_summary,
    validate_analysis_output,
)
from scryon_dagster.domain.transcript.models import Role
from scryon_dagster.simulator.analysis_sample import build_sample_analysis

from .builders import speaker, transcript


@pytest.mark.parametrize(("segment_count", "speaker_count"), [(0, 0), (1, 1), (2, 2), (7, 2), (120, 3)])
def test_sample_passes_validation_and_cites_only_the_given_ids(segment_count: int, speaker_count: int) -> None:
    speakers = [speaker(f"spk_{n}", f"Speaker {n}") for n in range(1, speaker_count + 1)]
    lines = [(f"spk_{1 + n % speaker_count}", f"Line {n} about the order.") for n in range(segment_count)]
    base = transcript(speakers, lines)
    segment_ids = [segment.id for segment in base.segments]
    speaker_ids = [s.speaker_id for s in speakers]

    document = build_sample_analysis(segment_ids, speaker_ids, base.call_id)
    analysis = validate_analysis_output(
        content=json.dumps(document), refusal=None, finish_reason="stop", transcript=base
    )

    assert analysis.cited_segment_ids() <= set(segment_ids)
    assert 3 <= len(analysis.executive_summary_bullets) <= 6
    drafts = build_action_item_drafts(analysis, base, recorded_at=None)
    assert len(drafts) == 2
    assert {d.owner_speaker_id for d in drafts} <= {*speaker_ids, None}
    assert build_sentiment_summary(analysis) is not None


def test_sample_is_deterministic_and_varies_by_call() -> None:
    ids = ["seg_0001", "seg_0002", "seg_0003"]

    first = build_sample_analysis(ids, ["spk_1"], "call-1")

    assert build_sample_analysis(ids, ["spk_1"], "call-1") == first
    call_types = {build_sample_analysis(ids, ["spk_1"], f"call-{n}")["callType"] for n in range(20)}
    assert call_types == {"sales", "support"}


def test_sample_owner_maps_to_a_transcript_speaker() -> None:
    base = transcript(
        [speaker("spk_1", "Speaker 1", role=Role.USER), speaker("spk_2", "Speaker 2", role=Role.CONTACT)],
        [("spk_1", "Hello."), ("spk_2", "Hi.")],
    )
    document = build_sample_analysis(["seg_0001", "seg_0002"], ["spk_1", "spk_2"], base.call_id)
    analysis = validate_analysis_output(
        content=json.dumps(document), refusal=None, finish_reason="stop", transcript=base
    )

    drafts = build_action_item_drafts(analysis, base, recorded_at=None)

    assert [(d.owner_speaker_id, d.owner_role) for d in drafts] == [("spk_1", Role.USER), ("spk_2", Role.CONTACT)]
