"""Diarization turns indexed for attribution: which speaker overlaps a word most (a sweep over turns
sorted by start with a heap of active turns: O((words + turns) log turns)), the nearest turn to a word in a
gap, and which voices are heard at a moment and for how long."""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Sequence

from scryon_dagster.domain.provider_outputs import SpeakerTurn

# A voice never heard for this long at a stretch (pauses shorter than the second figure included) is a
# diarization fragment (over-segmentation).
SUSTAINED_TURN_SECONDS = 2.0
SUSTAINED_MAX_PAUSE_SECONDS = 0.5
# Words in a gap between turns: confidence falls linearly to zero at this distance from the nearest turn.
NEAREST_TURN_HORIZON_SECONDS = 2.0
# A zero-length word is looked up as this small window around its instant.
MIN_WORD_SPAN_SECONDS = 0.02


class TurnIndex:
    """Diarization turns sorted by start, queried by a sweep (spans in start order) or by nearest gap."""

    def __init__(self, turns: list[SpeakerTurn]) -> None:
        self.turns = turns
        self.starts = [turn.start for turn in turns]
        # furthest-reaching turn among the first k+1 turns: the nearest turn ending before a point
        self.reach: list[int] = []
        best = 0
        for position, turn in enumerate(turns):
            if turn.end > turns[best].end:
                best = position
            self.reach.append(best)
        # per speaker, the union of their turns as disjoint sorted intervals: distance queries by bisect
        self.spans_by_speaker: dict[str, tuple[list[float], list[float]]] = {}
        for turn in turns:
            starts, ends = self.spans_by_speaker.setdefault(turn.speaker, ([], []))
            if ends and turn.start <= ends[-1]:
                ends[-1] = max(ends[-1], turn.end)
            else:
                starts.append(turn.start)
                ends.append(turn.end)
        # A voice never heard for long, when others are, is what over-segmentation produces (a "fragment").
        self.sustained_speakers = {
            speaker
            for speaker, (starts, ends) in self.spans_by_speaker.items()
            if _longest_stretch(starts, ends) >= SUSTAINED_TURN_SECONDS
        } or set(self.spans_by_speaker)

    def distance_to_speaker(self, speaker: str, start: float, end: float) -> float:
        """Seconds between [start, end] and the nearest turn of ``speaker`` (0 when they overlap)."""
        starts, ends = self.spans_by_speaker.get(speaker, ([], []))
        after = bisect.bisect_left(starts, end)
        distance = math.inf
        if after < len(starts):
            distance = starts[after] - end
        if after > 0:
            distance = min(distance, max(0.0, start - ends[after - 1]))
        return distance

    def voice_at(self, speaker: str, start: float, end: float) -> tuple[float, float]:
        """(seconds of [start, end] during which ``speaker`` is heard, when that stretch of their voice ends);
        (0, -inf) when they are not heard then."""
        starts, ends = self.spans_by_speaker.get(speaker, ([], []))
        position = bisect.bisect_left(ends, start)
        covered, voice_end = 0.0, -math.inf
        while position < len(starts) and starts[position] < end:
            covered += min(end, ends[position]) - max(start, starts[position])
            voice_end = ends[position]
            position += 1
        return covered, voice_end

    def stretches(self, start: float, end: float) -> dict[str, tuple[float, float]]:
        """Every voice heard during [start, end], with when its stretch of speech heard then began and ended."""
        found: dict[str, tuple[float, float]] = {}
        for speaker, (starts, ends) in self.spans_by_speaker.items():
            first = bisect.bisect_left(ends, start)
            past = bisect.bisect_left(starts, end, lo=first)
            if first < past:
                found[speaker] = (starts[first], ends[past - 1])
        return found

    def attribute(self, spans: Sequence[tuple[float, float]]) -> list[tuple[str, float]]:
        order = sorted(range(len(spans)), key=lambda k: spans[k][0])
        results: list[tuple[str, float]] = [("", 0.0)] * len(spans)
        active: list[tuple[float, int]] = []  # heap of (end, turn position)
        next_turn = 0
        for k in order:
            start, end = spans[k]
            if end - start < MIN_WORD_SPAN_SECONDS:
                middle = (start + end) / 2
                start, end = middle - MIN_WORD_SPAN_SECONDS / 2, middle + MIN_WORD_SPAN_SECONDS / 2
            while next_turn < len(self.turns) and self.turns[next_turn].start < end:
                heapq.heappush(active, (self.turns[next_turn].end, next_turn))
                next_turn += 1
            while active and active[0][0] <= start:
                heapq.heappop(active)
            results[k] = self._by_overlap(start, end, active) or self._by_nearest(start, end)
        return results

    def _by_overlap(self, start: float, end: float, active: list[tuple[float, int]]) -> tuple[str, float] | None:
        overlap_by_speaker: dict[str, float] = {}
        first_seen: dict[str, int] = {}
        for _, position in active:
            turn = self.turns[position]
            overlap = min(end, turn.end) - max(start, turn.start)
            if overlap > 0:
                overlap_by_speaker[turn.speaker] = overlap_by_speaker.get(turn.speaker, 0.0) + overlap
                first_seen[turn.speaker] = min(first_seen.get(turn.speaker, position), position)
        if not overlap_by_speaker:
            return None
        speaker = max(overlap_by_speaker, key=lambda s: (overlap_by_speaker[s], -first_seen[s]))
        total = sum(overlap_by_speaker.values())
        confidence = overlap_by_speaker[speaker] / max(end - start, total)
        return speaker, round(min(1.0, confidence), 3)

    def _by_nearest(self, start: float, end: float) -> tuple[str, float]:
        before_index = bisect.bisect_right(self.starts, start) - 1
        after_index = bisect.bisect_left(self.starts, end)
        candidates: list[tuple[float, int, str]] = []
        if before_index >= 0:
            turn = self.turns[self.reach[before_index]]
            candidates.append((max(0.0, start - turn.end), 0, turn.speaker))
        if after_index < len(self.turns):
            turn = self.turns[after_index]
            candidates.append((max(0.0, turn.start - end), 1, turn.speaker))
        gap, _, speaker = min(candidates)
        confidence = 0.5 * max(0.0, 1.0 - gap / NEAREST_TURN_HORIZON_SECONDS)
        return speaker, round(confidence, 3)


def _longest_stretch(starts: list[float], ends: list[float]) -> float:
    """The longest stretch of speech in sorted disjoint spans, pauses under ``SUSTAINED_MAX_PAUSE_SECONDS``
    included: diarization may chop one voice's speech into short turns."""
    longest = 0.0
    stretch_start = starts[0]
    for position in range(len(starts)):
        if position and starts[position] - ends[position - 1] >= SUSTAINED_MAX_PAUSE_SECONDS:
            stretch_start = starts[position]
        longest = max(longest, ends[position] - stretch_start)
    return longest
