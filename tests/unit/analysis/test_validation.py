"""Acceptance of raw LLM completions: a validated analysis, or analysis_invalid_output with a reason."""

from __future__ import annotations

import json
from typing import Any

import pytest

from scryon_dagster.domain.analysis import (
    AnalysisInvalidOutput,
    StrictOutputFailure,
    validate_analysis_output,
)
from scryon_dagster.domain.calls import ErrorCode
from scryon_dagster.simulator.analysis_sample import build_sample_analysis

from .builders import two_party_transcript, with_changes, without_key

TRANSCRIPT = two_party_transcript()
SEGMENT_IDS = [segment.id for segment in TRANSCRIPT.segments]
MARKER = "Priya Raman +1 415 555 0199"  # content that must never surface in an error


def _valid() -> dict[str, Any]:
    return build_sample_analysis(SEGMENT_IDS, ["spk_1", "spk_2"], TRANSCRIPT.call_id)


def _reject(
    content: str | None, *, refusal: str | None = None, finish_reason: str | None = "stop"
) -> AnalysisInvalidOutput:
    with pytest.raises(AnalysisInvalidOutput) as caught:
        validate_analysis_output(content=content, refusal=refusal, finish_reason=finish_reason, transcript=TRANSCRIPT)
    error = caught.value
    assert error.code is ErrorCode.ANALYSIS_INVALID_OUTPUT
    assert str(error).startswith("analysis_invalid_output: ")
    assert MARKER not in str(error)
    assert "Priya" not in str(error)
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__
    return error


def test_a_valid_completion_is_accepted() -> None:
    analysis = validate_analysis_output(
        content=json.dumps(_valid()), refusal=None, finish_reason="stop", transcript=TRANSCRIPT
    )

    assert analysis.schema_version == 3
    assert analysis.cited_segment_ids() <= set(SEGMENT_IDS)
    assert len(analysis.action_items) == 2


def test_a_missing_finish_reason_is_accepted_as_complete() -> None:
    analysis = validate_analysis_output(
        content=json.dumps(_valid()), refusal=None, finish_reason=None, transcript=TRANSCRIPT
    )

    assert analysis.action_items


def test_refusal() -> None:
    error = _reject(None, refusal=f"I can't help with {MARKER}.")

    assert error.reason is StrictOutputFailure.REFUSAL


def test_refusal_wins_even_with_content() -> None:
    assert _reject(json.dumps(_valid()), refusal="No.").reason is StrictOutputFailure.REFUSAL


def test_truncated_output() -> None:
    truncated = json.dumps(_valid())[:500]

    assert _reject(truncated, finish_reason="length").reason is StrictOutputFailure.TRUNCATED


def test_content_filter_stop() -> None:
    assert _reject(json.dumps(_valid()), finish_reason="content_filter").reason is StrictOutputFailure.CONTENT_FILTER


def test_unexpected_finish_reason() -> None:
    assert _reject(json.dumps(_valid()), finish_reason="tool_calls").reason is (
        StrictOutputFailure.UNEXPECTED_FINISH_REASON
    )


@pytest.mark.parametrize("content", [None, "", "   \n"])
def test_empty_output(content: str | None) -> None:
    assert _reject(content).reason is StrictOutputFailure.EMPTY_OUTPUT


@pytest.mark.parametrize("content", [f'{{"schemaVersion": 3, "summary": "{MARKER}"', "```json\n{}\n```", "nope"])
def test_invalid_json(content: str) -> None:
    assert _reject(content).reason is StrictOutputFailure.INVALID_JSON


@pytest.mark.parametrize(
    ("document", "expected_path"),
    [
        (without_key(_valid(), "tone"), "<root>:value_error"),
        (without_key(_valid(), "actionItems.0.sourceText"), "actionItems.0:value_error"),
        (with_changes(_valid(), "actionItems.0.priority", "urgent"), "actionItems.0.priority"),
        (with_changes(_valid(), "actionItems.0.title", ""), "actionItems.0.title:string_too_short"),
        (with_changes(_valid(), "sentiment.score", 1.7), "sentiment.score"),
        (with_changes(_valid(), "schemaVersion", 2), "<root>:value_error"),
        (with_changes(_valid(), "tags", "sales"), "tags:list_type"),
        (with_changes(_valid(), "tone.pace", MARKER), "tone.pace"),
        (with_changes(_valid(), "sentiment.progression.0.extra", MARKER), "sentiment.progression.0:value_error"),
        (with_changes(_valid(), "actionItems.0.ownerSpeaker", "Speaker 1"), "actionItems.0:value_error"),
        (with_changes(_valid(), "executiveSummaryBullets.0", {"text": "flat v2 bullet"}), "executiveSummaryBullets.0"),
        (with_changes(_valid(), "decisions.0", "a plain string"), "decisions.0:model_type"),
    ],
    ids=[
        "missing-top-level-key",
        "missing-nested-key",
        "unknown-enum-value",
        "empty-title",
        "score-out-of-range",
        "old-schema-version",
        "wrong-type",
        "free-text-in-enum",
        "extra-key",
        "legacy-only-key",
        "v2-bullet-shape",
        "plain-string-item",
    ],
)
def test_schema_violations(document: dict[str, Any], expected_path: str) -> None:
    error = _reject(json.dumps(document))

    assert error.reason is StrictOutputFailure.SCHEMA_VIOLATION
    assert any(violation.startswith(expected_path) for violation in error.violations), error.violations


def test_a_json_array_is_a_schema_violation() -> None:
    assert _reject("[]").reason is StrictOutputFailure.SCHEMA_VIOLATION


def test_citations_of_segments_the_transcript_does_not_have() -> None:
    document = with_changes(_valid(), "actionItems.1.sourceSegmentIds", ["seg_0002", "seg_9999"])
    document = with_changes(document, "risks.0.sourceSegmentIds", [MARKER])

    error = _reject(json.dumps(document))

    assert error.reason is StrictOutputFailure.UNKNOWN_SEGMENT_IDS
    assert error.violations == ("actionItems.1.sourceSegmentIds", "risks.0.sourceSegmentIds")
    assert "seg_9999" not in str(error)
