"""Realistic provider outputs built from a script of (speaker, line) pairs, and the transcripts they become."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from scryon_dagster.domain.provider_outputs import Diarization, RawTranscript
from scryon_dagster.domain.transcript import (
    NormalizedTranscript,
    Provenance,
    align,
    normalize,
)

CALL_ID = "5f0c2a8e-0c47-4b7e-9d8a-1f2e3d4c5b6a"
CREATED_AT = datetime(2026, 5, 29, 13, 0, 42, tzinfo=UTC)
PROVENANCE = Provenance("lemonfox", "whisper-1", "pyannote", "precision-2")
WORD_SECONDS = 0.3
LINE_GAP_SECONDS = 0.5

Script = list[tuple[str, str]]


def timed_script(script: Script, *, start: float = 0.0) -> list[tuple[str, str, float, float]]:
    """(speaker, text, start, end) per line: 0.3 s per word, 0.5 s between lines."""
    lines = []
    clock = start
    for speaker, text in script:
        end = clock + WORD_SECONDS * len(text.split())
        lines.append((speaker, text, clock, end))
        clock = end + LINE_GAP_SECONDS
    return lines


def raw_segment(text: str, start: float, *, speaker: str | None = None, words: bool = True) -> dict[str, Any]:
    tokens = text.split()
    segment: dict[str, Any] = {
        "start": start,
        "end": round(start + WORD_SECONDS * len(tokens), 3),
        "text": " " + text,
        "speaker": speaker,
    }
    if words:
        segment["words"] = [
            {
                "word": token,
                "start": round(start + WORD_SECONDS * i, 3),
                "end": round(start + WORD_SECONDS * (i + 1), 3),
            }
            for i, token in enumerate(tokens)
        ]
    return segment


def raw_transcript(script: Script, *, words: bool = True, lemonfox_labels: bool = False) -> RawTranscript:
    segments = [
        raw_segment(text, start, speaker=speaker if lemonfox_labels else None, words=words)
        for speaker, text, start, _ in timed_script(script)
    ]
    return RawTranscript.model_validate(
        {
            "task": "transcribe",
            "language": "english",
            "duration": segments[-1]["end"] if segments else 0.0,
            "text": " ".join(segment["text"] for segment in segments),
            "segments": segments,
        }
    )


def diarization(script: Script) -> Diarization:
    turns = [{"speaker": speaker, "start": start, "end": end} for speaker, _, start, end in timed_script(script)]
    return Diarization.model_validate({"diarization": turns, "exclusiveDiarization": turns})


def normalized(script: Script, *, call_id: str = CALL_ID) -> NormalizedTranscript:
    """The transcript the pipeline would produce for ``script`` before speaker naming."""
    return normalize(
        call_id, align(raw_transcript(script), diarization(script)), provenance=PROVENANCE, created_at=CREATED_AT
    )


def texts_by_speaker(transcript: NormalizedTranscript) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for segment in transcript.segments:
        grouped.setdefault(segment.speaker_id, []).append(segment.text)
    return grouped
