"""The aligned transcript: every transcript word with a speaker, a time span and how sure the attribution is;
and the mutable draft of one segment that alignment fills in (times first, then speakers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class AlignmentMethod(StrEnum):
    WORD_OVERLAP = "WORD_OVERLAP"
    SEGMENT_OVERLAP = "SEGMENT_OVERLAP"
    PROVIDER_LABELS = "PROVIDER_LABELS"
    UNATTRIBUTED = "UNATTRIBUTED"


class WordTiming(StrEnum):
    PROVIDER = "PROVIDER"
    BORROWED = "BORROWED"
    INTERPOLATED = "INTERPOLATED"


@dataclass(frozen=True, slots=True)
class AlignedWord:
    text: str
    start: float
    end: float
    speaker: str | None
    """The provider's speaker id ("SPEAKER_00"); None only when no speaker information exists at all."""
    confidence: float | None
    """0-1 share of the word's time covered by its speaker's turns; None for provider labels."""
    timing: WordTiming
    smoothed: bool = False


@dataclass(frozen=True, slots=True)
class AlignedSegment:
    start: float
    end: float
    method: AlignmentMethod
    words: tuple[AlignedWord, ...]


@dataclass(frozen=True, slots=True)
class AlignmentStats:
    """Counts only: safe to publish as metadata."""

    segment_count: int
    word_count: int
    borrowed_timing_count: int
    interpolated_timing_count: int
    smoothed_word_count: int
    speaker_count: int


@dataclass(frozen=True, slots=True)
class AlignedTranscript:
    segments: tuple[AlignedSegment, ...]
    language: str | None
    duration_seconds: float | None
    used_diarization: bool

    @property
    def stats(self) -> AlignmentStats:
        words = [word for segment in self.segments for word in segment.words]
        return AlignmentStats(
            segment_count=len(self.segments),
            word_count=len(words),
            borrowed_timing_count=sum(word.timing is WordTiming.BORROWED for word in words),
            interpolated_timing_count=sum(word.timing is WordTiming.INTERPOLATED for word in words),
            smoothed_word_count=sum(word.smoothed for word in words),
            speaker_count=len({word.speaker for word in words}),
        )


@dataclass(slots=True)
class SegmentDraft:
    start: float
    end: float
    method: AlignmentMethod
    texts: list[str]
    starts: list[float]
    ends: list[float]
    timings: list[WordTiming]
    provider_speakers: list[str | None]
    speakers: list[str | None] = field(default_factory=list)
    confidences: list[float | None] = field(default_factory=list)
    smoothed: list[bool] = field(default_factory=list)

    def freeze(self, used_turns: bool) -> AlignedSegment:
        words = tuple(
            AlignedWord(
                text=text,
                start=start,
                end=end,
                speaker=speaker,
                confidence=confidence,
                timing=timing,
                smoothed=smoothed,
            )
            for text, start, end, speaker, confidence, timing, smoothed in zip(
                self.texts,
                self.starts,
                self.ends,
                self.speakers,
                self.confidences,
                self.timings,
                self.smoothed,
                strict=True,
            )
        )
        method = self.method
        if not used_turns:
            has_labels = any(speaker is not None for speaker in self.speakers)
            method = AlignmentMethod.PROVIDER_LABELS if has_labels else AlignmentMethod.UNATTRIBUTED
        return AlignedSegment(start=self.start, end=self.end, method=method, words=words)
