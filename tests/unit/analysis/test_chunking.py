"""A long call's analysis: one request when it fits the model's context, else parts merged; never cut."""

from __future__ import annotations

import json

import pytest

from scryon_dagster.domain.analysis import build_analysis_prompt, parse_analysis, validate_analysis_output
from scryon_dagster.domain.analysis.chunking import (
    PARTS_QUALITY_WARNING,
    AnalysisPart,
    merge_part_answers,
    plan_analysis_parts,
)
from scryon_dagster.domain.transcript.models import NormalizedTranscript
from scryon_dagster.settings import Settings
from scryon_dagster.simulator.chat import analysis_answer

from .builders import two_party_transcript

DEFAULT_BUDGET: int = Settings.model_fields["llm_max_prompt_tokens"].default
TWO_HOURS_SECONDS = 2 * 3600
SECONDS_PER_LINE = 4.0
_TOPICS = ["the rollout plan", "the budget", "the hiring freeze", "the vendor contract", "the launch date"]


def two_hour_transcript() -> NormalizedTranscript:
    """1,800 four-second segments, each part of the call about its own topic, commitments throughout."""
    count = int(TWO_HOURS_SECONDS / SECONDS_PER_LINE)
    lines = []
    for index in range(count):
        topic = _TOPICS[index * len(_TOPICS) // count]
        if index % 150 == 0:
            lines.append(("spk_1", f"I'll send the notes on {topic} by Friday, number {index}."))
        elif index % 2:
            lines.append(("spk_2", f"Can we go over {topic} in a bit more detail before we move on?"))
        else:
            lines.append(("spk_1", f"Sure, the main thing about {topic} is that the numbers have changed again."))
    transcript = two_party_transcript(lines)
    assert transcript.duration_seconds == TWO_HOURS_SECONDS
    return transcript


def plan(transcript: NormalizedTranscript, max_prompt_tokens: int) -> list[AnalysisPart]:
    return plan_analysis_parts(
        transcript,
        max_prompt_tokens=max_prompt_tokens,
        call_id=transcript.call_id,
        recorded_at=None,
        duration_seconds=transcript.duration_seconds,
        title="Quarterly review",
    )


def analyse_with_simulator(parts: list[AnalysisPart]) -> str:
    """Each part answered by the SIMULATOR's chat endpoint logic, accepted for its own segments, merged."""
    answers = []
    for part in parts:
        answer = json.dumps(analysis_answer(part.prompt.user))
        validate_analysis_output(content=answer, refusal=None, finish_reason="stop", transcript=part.transcript)
        answers.append(answer)
    return merge_part_answers(answers)


def test_a_transcript_that_fits_is_one_request_with_the_ordinary_prompt() -> None:
    transcript = two_party_transcript()

    parts = plan(transcript, DEFAULT_BUDGET)

    expected = build_analysis_prompt(
        transcript,
        call_id=transcript.call_id,
        recorded_at=None,
        duration_seconds=transcript.duration_seconds,
        title="Quarterly review",
    )
    assert [(part.index, part.count) for part in parts] == [(1, 1)]
    assert parts[0].prompt == expected
    assert parts[0].transcript is transcript


def test_a_two_hour_call_fits_gpt_4o_mini_in_one_request_by_default() -> None:
    parts = plan(two_hour_transcript(), DEFAULT_BUDGET)

    assert len(parts) == 1
    assert parts[0].estimated_prompt_tokens < DEFAULT_BUDGET


def test_a_transcript_over_the_budget_is_cut_into_balanced_parts_that_each_fit() -> None:
    transcript = two_hour_transcript()
    budget = 20_000

    parts = plan(transcript, budget)

    assert len(parts) >= 2
    assert all(part.estimated_prompt_tokens <= budget for part in parts)
    assert [(part.index, part.count) for part in parts] == [(n, len(parts)) for n in range(1, len(parts) + 1)]
    # every segment once, in call order: nothing dropped
    assert [s.id for part in parts for s in part.transcript.segments] == [s.id for s in transcript.segments]
    sizes = [len(part.transcript.segments) for part in parts]
    assert max(sizes) - min(sizes) <= max(sizes) // 5
    for part in parts:
        assert f"part: {part.index} of {part.count}" in part.prompt.user
        assert part.prompt.user.count("\n[seg_") == len(part.transcript.segments)


def test_a_two_hour_call_analysed_in_parts_by_the_simulator_merges_into_one_valid_analysis() -> None:
    transcript = two_hour_transcript()
    parts = plan(transcript, 20_000)

    merged = analyse_with_simulator(parts)

    analysis = validate_analysis_output(content=merged, refusal=None, finish_reason="stop", transcript=transcript)
    assert PARTS_QUALITY_WARNING.format(count=len(parts)) in analysis.quality_warnings
    # what each part's analysis says reaches the whole call's: its summary and its action items
    for topic in (_TOPICS[0], _TOPICS[-1]):
        assert topic in (analysis.executive_summary or "")
    cited = {segment_id for item in analysis.action_items for segment_id in item.source_segment_ids}
    for part in parts:
        assert cited & {segment.id for segment in part.transcript.segments}
    section_ids = [section.id for section in analysis.sections if section.id is not None]
    assert len(section_ids) == len(set(section_ids))
    assert len(analysis.tags) <= 6
    assert parse_analysis(merged.encode()) == analysis


def test_one_answer_is_kept_byte_for_byte() -> None:
    answer = json.dumps(analysis_answer(plan(two_party_transcript(), 110_000)[0].prompt.user))

    assert merge_part_answers([answer]) == answer


def test_a_budget_without_room_for_any_transcript_is_refused() -> None:
    with pytest.raises(ValueError, match="no room"):
        plan(two_hour_transcript(), 1_000)
