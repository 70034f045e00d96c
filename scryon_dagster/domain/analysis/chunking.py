"""A long call's analysis in parts when its prompt would not fit the model's context; never truncated.

The prompt's tokens are estimated as the cost estimates do (chars/4 for the system prompt, the user
prompt and the response schema, plus the chat framing). A transcript that fits is one request with the
ordinary prompt, unchanged. One that does not is cut, in call order and at segment boundaries, into the
fewest parts of about equal size whose prompts each fit; each part is analysed with the ordinary prompt
over its own segments (told which part of how many it is), and the parts' answers are merged here into
one analysis of the whole call (``merge_part_answers``), which the caller validates like any answer.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scryon_dagster.domain.analysis.cost import estimate_analysis_request_tokens, estimate_tokens
from scryon_dagster.domain.analysis.prompt import AnalysisPrompt, build_analysis_prompt, render_segment_lines
from scryon_dagster.domain.transcript.models import NormalizedTranscript, TranscriptSegment

# Whoever reads the merged analysis learns that it was put together from parts (a content-free note).
PARTS_QUALITY_WARNING = "long call: analysed in {count} parts"
_MAX_TAGS = 6
_MAX_EMOTIONAL_SIGNALS = 6


@dataclass(frozen=True)
class AnalysisPart:
    """One request of a call's analysis: its prompt and the segments it covers (citations are checked
    against them)."""

    index: int
    count: int
    transcript: NormalizedTranscript
    prompt: AnalysisPrompt
    estimated_prompt_tokens: int


def plan_analysis_parts(
    transcript: NormalizedTranscript,
    *,
    max_prompt_tokens: int,
    call_id: str,
    recorded_at: datetime | None,
    duration_seconds: float | None,
    title: str | None,
    withheld_names: Iterable[str] = (),
) -> list[AnalysisPart]:
    """The analysis requests of one call: one when its prompt fits ``max_prompt_tokens``, else the fewest
    balanced parts that each fit. A single segment too long for the budget alone still gets a part of its
    own (the provider then refuses it, visibly) rather than being cut."""
    withheld = tuple(withheld_names)

    def prompt_for(part: NormalizedTranscript, position: tuple[int, int] | None) -> AnalysisPrompt:
        return build_analysis_prompt(
            part,
            call_id=call_id,
            recorded_at=recorded_at,
            duration_seconds=duration_seconds,
            title=title,
            withheld_names=withheld,
            part=position,
        )

    whole = prompt_for(transcript, None)
    whole_tokens = estimate_analysis_request_tokens(whole)
    if whole_tokens <= max_prompt_tokens or len(transcript.segments) < 2:
        return [AnalysisPart(1, 1, transcript, whole, whole_tokens)]
    # The widest part header ("part: N of N") is counted in the fixed cost.
    width = len(transcript.segments)
    fixed_tokens = estimate_analysis_request_tokens(prompt_for(_with_segments(transcript, []), (width, width)))
    line_tokens = [estimate_tokens(line) + 1 for line in render_segment_lines(transcript)]  # + its line break
    available = max_prompt_tokens - fixed_tokens
    if available <= 0:
        raise ValueError("max_prompt_tokens leaves no room for the transcript after the fixed prompt")
    groups = _balanced_groups(transcript.segments, line_tokens, available)
    parts = []
    for index, segments in enumerate(groups, start=1):
        part_transcript = _with_segments(transcript, segments)
        prompt = prompt_for(part_transcript, (index, len(groups)))
        parts.append(
            AnalysisPart(index, len(groups), part_transcript, prompt, estimate_analysis_request_tokens(prompt))
        )
    return parts


def _balanced_groups(
    segments: Sequence[TranscriptSegment], costs: Sequence[int], available: int
) -> list[list[TranscriptSegment]]:
    """Consecutive groups, each within ``available`` tokens, cut near equal shares of the total."""
    total = sum(costs)
    share = total / math.ceil(total / available)
    groups: list[list[TranscriptSegment]] = [[]]
    group_tokens = 0
    consumed = 0
    for segment, cost in zip(segments, costs, strict=True):
        reached_share = consumed >= share * len(groups)
        if groups[-1] and (group_tokens + cost > available or reached_share):
            groups.append([])
            group_tokens = 0
        groups[-1].append(segment)
        group_tokens += cost
        consumed += cost
    return groups


def _with_segments(transcript: NormalizedTranscript, segments: Sequence[TranscriptSegment]) -> NormalizedTranscript:
    return transcript.model_copy(update={"segments": list(segments)})


def merge_part_answers(answers: Sequence[str]) -> str:
    """One analysis document (JSON, the contract's wire shape) from the parts' answers, in call order.

    Lists are concatenated (summary sections, action items, decisions, ...; section ids renumbered);
    the headline fields (call type, title, one-line summary, tone) come from the first part that has
    them, the outcome from the last; the executive summaries are joined; the sentiment is the last
    part's (how the call ended) with every part's progression; tags and warnings are de-duplicated, and
    a warning says the analysis was made in parts.
    """
    if len(answers) == 1:
        return answers[0]
    documents: list[dict[str, Any]] = [json.loads(answer) for answer in answers]
    merged: dict[str, Any] = {}
    for key in documents[0]:
        values = [document[key] for document in documents]
        present = [value for value in values if value is not None]
        if key == "executiveSummary":
            merged[key] = " ".join(present) or None
        elif key == "conversationOutcome":
            merged[key] = present[-1] if present else None
        elif key == "sentiment":
            merged[key] = _merged_sentiment(present)
        elif key == "sections":
            merged[key] = _renumbered_sections([section for value in values for section in value])
        elif key == "tags":
            merged[key] = _unique(tag for value in values for tag in value)[:_MAX_TAGS]
        elif key == "qualityWarnings":
            note = PARTS_QUALITY_WARNING.format(count=len(documents))
            merged[key] = _unique([*(warning for value in values for warning in value), note])
        elif isinstance(values[0], list):
            merged[key] = [item for value in values for item in value]
        else:
            merged[key] = present[0] if present else None
    return json.dumps(merged, ensure_ascii=False)


def _merged_sentiment(sentiments: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not sentiments:
        return None
    return {
        **sentiments[-1],
        "progression": [moment for sentiment in sentiments for moment in sentiment["progression"]],
        "emotionalSignals": _unique(signal for sentiment in sentiments for signal in sentiment["emotionalSignals"])[
            :_MAX_EMOTIONAL_SIGNALS
        ],
    }


def _renumbered_sections(sections: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Each part numbers its sections from sec_001: renumbered so that ids stay unique in the whole call.
    return [
        {**section, "id": f"sec_{number:03d}"} if section.get("id") is not None else section
        for number, section in enumerate(sections, start=1)
    ]


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))
