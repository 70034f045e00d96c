"""Test data: normalized transcripts built through the real model, and the analysis fixtures."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from scryon_dagster.domain.transcript.models import (
    Confidence,
    LabelSource,
    NormalizedTranscript,
    Role,
    TranscriptSegment,
    TranscriptSpeaker,
)

FIXTURES = Path(__file__).parent / "fixtures"


def speaker(
    speaker_id: str,
    label: str,
    *,
    role: Role = Role.UNKNOWN,
    display_name: str | None = None,
    confidence: Confidence = Confidence.LOW,
    label_source: LabelSource = LabelSource.DIARIZATION,
) -> TranscriptSpeaker:
    return TranscriptSpeaker(
        speaker_id=speaker_id,
        label=label,
        display_name=display_name,
        role=role,
        confidence=confidence,
        label_source=label_source,
    )


def transcript(
    speakers: list[TranscriptSpeaker],
    lines: list[tuple[str, str]],
    *,
    language: str | None = "en",
    call_id: str = "0b7c6a52-8d6e-4f0e-9c53-2f6f3f1d9a10",
    seconds_per_line: float = 4.0,
) -> NormalizedTranscript:
    """One segment per ``(speaker_id, text)`` line, ids ``seg_0001..``, labels copied from the speaker."""
    by_id = {s.speaker_id: s for s in speakers}
    segments = [
        TranscriptSegment(
            id=f"seg_{index:04d}",
            speaker=by_id[speaker_id].label,
            speaker_label=by_id[speaker_id].label,
            speaker_display_name=by_id[speaker_id].display_name,
            speaker_id=speaker_id,
            role=by_id[speaker_id].role,
            start_seconds=(index - 1) * seconds_per_line,
            end_seconds=index * seconds_per_line,
            text=text,
        )
        for index, (speaker_id, text) in enumerate(lines, start=1)
    ]
    return NormalizedTranscript(
        call_id=call_id,
        language=language,
        duration_seconds=len(lines) * seconds_per_line,
        speakers=speakers,
        segments=segments,
    )


def two_party_transcript(lines: list[tuple[str, str]] | None = None) -> NormalizedTranscript:
    """USER spk_1 (named from the profile) and CONTACT spk_2 (named from contact metadata)."""
    return transcript(
        [
            speaker(
                "spk_1",
                "Alex Morgan",
                role=Role.USER,
                display_name="Alex Morgan",
                confidence=Confidence.HIGH,
                label_source=LabelSource.VOICE_EMBEDDING,
            ),
            speaker(
                "spk_2",
                "Priya Raman",
                role=Role.CONTACT,
                display_name="Priya Raman",
                confidence=Confidence.MEDIUM,
                label_source=LabelSource.CONTACT_METADATA,
            ),
        ],
        lines
        or [
            ("spk_1", "Thanks for taking the call, I wanted to go over the proposal."),
            ("spk_2", "Sure. The per-seat price is the main problem for procurement."),
            ("spk_1", "Understood, we could look at volume pricing above fifty seats."),
            ("spk_2", "That would help. Can you send a revised quote by Friday?"),
            ("spk_1", "Yes, I'll send it by Friday and set up a demo for the team."),
            ("spk_2", "Great, talk soon."),
        ],
    )


def load_fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def with_changes(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``document`` with the value at dotted ``path`` replaced (list indices as numbers)."""
    changed = copy.deepcopy(document)
    *parents, last = path.split(".")
    node: Any = changed
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return changed


def without_key(document: dict[str, Any], path: str) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    *parents, last = path.split(".")
    node: Any = changed
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    del node[last]
    return changed
