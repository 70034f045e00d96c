"""Whatever the model sends, validation and naming answer with their typed outcome, never a crash."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from scryon_dagster.domain.analysis import (
    AnalysisInvalidOutput,
    apply_speaker_naming,
    validate_analysis_output,
)
from scryon_dagster.domain.transcript.models import Confidence, LabelSource, Role
from scryon_dagster.simulator.analysis_sample import build_sample_analysis

from .builders import speaker, transcript, two_party_transcript

TRANSCRIPT = two_party_transcript()
VALID = build_sample_analysis([s.id for s in TRANSCRIPT.segments], ["spk_1", "spk_2"], TRANSCRIPT.call_id)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


def _leaf_paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(node, dict):
        return [p for key, value in node.items() for p in _leaf_paths(value, (*path, key))] or [path]
    if isinstance(node, list):
        return [p for index, value in enumerate(node) for p in _leaf_paths(value, (*path, index))] or [path]
    return [path]


LEAVES = [path for path in _leaf_paths(VALID) if path]


def _replace(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    copy = json.loads(json.dumps(document))
    node = copy
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return copy


def _outcome(content: str | None, finish_reason: str | None = "stop") -> str:
    try:
        validate_analysis_output(content=content, refusal=None, finish_reason=finish_reason, transcript=TRANSCRIPT)
    except AnalysisInvalidOutput as error:
        return error.reason.value
    return "valid"


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.text(max_size=200), json_values.map(json.dumps)))
def test_arbitrary_text_and_json_never_crash_validation(content: str) -> None:
    assert _outcome(content) in {"valid", "empty_output", "invalid_json", "schema_violation", "unknown_segment_ids"}


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(LEAVES), json_values)
def test_a_mutated_valid_answer_is_either_valid_or_rejected_with_a_reason(path: tuple[Any, ...], value: Any) -> None:
    assert _outcome(json.dumps(_replace(VALID, path, value))) in {"valid", "schema_violation", "unknown_segment_ids"}


NAMING_BASE = transcript(
    [
        speaker(
            "spk_1",
            "Alex",
            display_name="Alex",
            role=Role.USER,
            confidence=Confidence.HIGH,
            label_source=LabelSource.USER_PROFILE,
        ),
        speaker("spk_2", "Speaker 2"),
        speaker("spk_3", "Speaker 3"),
    ],
    [
        ("spk_1", "Hi Dana, this is Alex."),
        ("spk_2", "Hello Alex, Dana speaking, Ravi is here too."),
        ("spk_3", "Yes, Ravi here. I'm Ravi Kumar."),
    ],
)
WORDS = sorted({word.strip(",.") for segment in NAMING_BASE.segments for word in segment.text.split()})
phrases = st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join)
proposals = st.fixed_dictionaries(
    {
        "speakerId": st.sampled_from(["spk_1", "spk_2", "spk_3", "spk_4"]),
        "name": phrases | st.text(max_size=15),
        "quote": phrases | st.text(max_size=30),
        "role": st.sampled_from([None, "USER", "CONTACT", "UNKNOWN"]),
    }
)


@settings(max_examples=300, deadline=None)
@given(st.lists(proposals, max_size=4))
def test_naming_never_breaks_the_invariants(names: list[dict[str, Any]]) -> None:
    outcome = apply_speaker_naming(
        NAMING_BASE, content=json.dumps({"names": names}), refusal=None, finish_reason="stop"
    )
    result = outcome.transcript

    assert sum(1 for s in result.speakers if s.role is Role.USER) == 1
    assert result.speakers[0] == NAMING_BASE.speakers[0]  # the HIGH label never moves
    for speaker_id in outcome.named_speaker_ids:
        named = result.speaker_by_id(speaker_id)
        assert named is not None
        assert named.label_source is LabelSource.LLM_INFERENCE
        assert named.confidence in (Confidence.MEDIUM, Confidence.LOW)
        own_text = " ".join(s.text for s in result.segments if s.speaker_id == speaker_id).casefold()
        assert named.label.casefold() in own_text
        assert all(s.speaker_label == named.label for s in result.segments if s.speaker_id == speaker_id)
    labels = [s.label.casefold() for s in result.speakers]
    assert len(labels) == len(set(labels))
    if not outcome.named_speaker_ids:
        assert result == NAMING_BASE
