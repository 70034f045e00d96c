"""Speaker attribution: each word of the drafted segments gets the speaker who was talking when it was said.

1. Each word goes to the speaker whose turns overlap it most (exclusive turns when pyannote gives them; a
   sweep over turns sorted by start with a heap of active turns: O((words + turns) log turns)). A word in a
   gap between turns goes to the nearest turn with a confidence that decays with the distance.
2. Where a reply starts over the end of a turn, both voices are heard (the overlapping turns say so) and
   the exclusive turns give the overlap to one of them. Whisper writes one voice's words, then the other's,
   with monotonic times: a word that continues the fading voice's sentence while that voice is still
   heard stays with it, and the reply's first words, squeezed into a few milliseconds behind them, go
   with the reply (see ``_continue_overlapped_speech``, ``_follow_squeezed_words``).
3. Smoothing moves a word away from its max-overlap speaker only when its own evidence is weak, never when
   it sits well inside a turn of a voice heard at length (see ``_smooth``): words a fragment voice took
   from the middle of another speaker's turn go back to that speaker, and a run of words at the start or
   end of a punctuated sentence that lies close to the sentence's majority speaker's turn joins that
   speaker (a diarization boundary a few hundred milliseconds off moves a word or two, not a sentence).
   Unpunctuated text and run-ons are no evidence of a single speaker, and a run inside a sentence (a
   backchannel, an interruption) is another voice diarization heard: both keep their word-level speaker.
4. A segment without any word timestamps is attributed as a whole (max overlap of the segment).
5. Without diarization turns, Lemonfox's own speaker labels are used (per word when present, else per
   segment), with no confidence (``None``): the provider does not say how sure it is.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Sequence

from scryon_dagster.domain.provider_outputs import Diarization, SpeakerTurn
from scryon_dagster.domain.transcript.aligned import AlignmentMethod, SegmentDraft, WordTiming
from scryon_dagster.domain.transcript.tokens import ends_sentence

# A "sentence" longer than this is a run-on (punctuation lost), not evidence of a single speaker.
MAX_SMOOTHED_SENTENCE_WORDS = 40
# At a sentence's edge a word is weak evidence of its speaker when that speaker's turns cover less than
# this share of it, or when it lies within this distance of the majority speaker's turn (about twice the
# typical error of a diarization boundary).
WEAK_OVERLAP_SHARE = 0.6
NEAR_TURN_SECONDS = 0.5
# In overlapping speech, a word continues the voice before it when that voice is heard during this share of it.
OVERLAP_CONTINUATION_SHARE = 0.5
# A word Whisper timed shorter than this was squeezed in, not heard there (no syllable is this short).
SQUEEZED_WORD_SECONDS = 0.05
# A voice never heard for this long at a stretch (pauses shorter than the second figure included) is a
# diarization fragment (over-segmentation).
SUSTAINED_TURN_SECONDS = 2.0
SUSTAINED_MAX_PAUSE_SECONDS = 0.5
# Words in a gap between turns: confidence falls linearly to zero at this distance from the nearest turn.
NEAREST_TURN_HORIZON_SECONDS = 2.0
# A zero-length word is looked up as this small window around its instant.
MIN_WORD_SPAN_SECONDS = 0.02


def attribute_speakers(drafts: list[SegmentDraft], diarization: Diarization | None) -> bool:
    """Fill in every draft's speakers, confidences and smoothing flags; True when diarization turns were used
    (else the provider's own labels were)."""
    turns = _usable_turns(diarization)
    if not turns:
        _attribute_by_provider_labels(drafts)
        return False
    _attribute_by_turns(drafts, turns, _voices(diarization, turns))
    return True


def _usable_turns(diarization: Diarization | None) -> list[SpeakerTurn]:
    return _usable(diarization.turns_for_alignment) if diarization is not None else []


def _voices(diarization: Diarization | None, turns: list[SpeakerTurn]) -> list[SpeakerTurn]:
    """Every voice's own turns, overlaps kept: where exclusive turns hand an overlap to one voice, these still
    say who else was heard there."""
    if diarization is None or not diarization.exclusive_diarization:
        return turns
    return _usable(diarization.diarization) or turns


def _usable(turns: list[SpeakerTurn]) -> list[SpeakerTurn]:
    usable = [turn for turn in turns if math.isfinite(turn.start) and math.isfinite(turn.end) and turn.end > turn.start]
    usable.sort(key=lambda turn: (turn.start, turn.end))
    return usable


def _attribute_by_provider_labels(drafts: list[SegmentDraft]) -> None:
    for draft in drafts:
        draft.speakers = list(draft.provider_speakers)
        draft.confidences = [None] * len(draft.texts)
        draft.smoothed = [False] * len(draft.texts)


def _attribute_by_turns(drafts: list[SegmentDraft], turns: list[SpeakerTurn], voices: list[SpeakerTurn]) -> None:
    index = _TurnIndex(turns)
    heard = index if voices is turns else _TurnIndex(voices)
    word_drafts = [draft for draft in drafts if draft.method is AlignmentMethod.WORD_OVERLAP]
    spans = [(start, end) for draft in word_drafts for start, end in zip(draft.starts, draft.ends, strict=True)]
    attributions = index.attribute(spans)
    offset = 0
    for draft in word_drafts:
        count = len(draft.texts)
        chunk = attributions[offset : offset + count]
        offset += count
        draft.speakers = [speaker for speaker, _ in chunk]
        draft.confidences = [confidence for _, confidence in chunk]
        draft.smoothed = [False] * count
        _continue_overlapped_speech(draft, heard)
        _follow_squeezed_words(draft, heard)
        _smooth(draft, index)
    segment_drafts = [draft for draft in drafts if draft.method is AlignmentMethod.SEGMENT_OVERLAP]
    for draft, (speaker, confidence) in zip(
        segment_drafts, index.attribute([(draft.start, draft.end) for draft in segment_drafts]), strict=True
    ):
        draft.speakers = [speaker] * len(draft.texts)
        draft.confidences = [confidence] * len(draft.texts)
        draft.smoothed = [False] * len(draft.texts)


class _TurnIndex:
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


def _continue_overlapped_speech(draft: SegmentDraft, heard: _TurnIndex) -> None:
    """Where a reply starts over the end of a turn, both voices are heard and the word-level speaker is
    whoever the exclusive turns gave the overlap to. Whisper writes one voice, then the other, so a word
    that follows a word of the fading voice within its sentence, said mostly while that voice is still
    heard, is that voice's: the change of speaker comes once it has stopped. A voice heard only inside the
    other's stretch of speech (a backchannel in a pause) is not a reply, and keeps its words."""
    speakers = draft.speakers
    for k in range(1, len(speakers)):
        previous, current = speakers[k - 1], speakers[k]
        if previous is None or current is None or previous == current or ends_sentence(draft.texts[k - 1]):
            continue
        if _squeezed(draft, k):
            continue  # no time of its own to be heard in: see _follow_squeezed_words
        start, end = draft.starts[k], max(draft.ends[k], draft.starts[k] + MIN_WORD_SPAN_SECONDS)
        covered, fading_end = heard.voice_at(previous, start, end)
        if covered < OVERLAP_CONTINUATION_SHARE * (end - start):
            continue
        if fading_end >= heard.voice_at(current, start, end)[1]:
            continue
        _move(draft, k, k + 1, previous, round(min(1.0, covered / (end - start)), 3))


def _follow_squeezed_words(draft: SegmentDraft, heard: _TurnIndex) -> None:
    """Whisper's word times are monotonic: where its timeline runs behind the audio (a reply written after
    the words it overlapped), the reply's first words are squeezed into a few milliseconds at the end of the
    words before them, so their times say nothing about who said them. Such a word, where the voice of the
    word after it is heard, takes that word's speaker (within a sentence; the word after it may itself be
    squeezed and have taken its speaker from further on)."""
    speakers = draft.speakers
    for k in range(len(speakers) - 2, -1, -1):
        following = speakers[k + 1]
        if following is None or following == speakers[k] or not _squeezed(draft, k):
            continue
        instant = (draft.starts[k] + draft.ends[k]) / 2
        window = (instant - MIN_WORD_SPAN_SECONDS / 2, instant + MIN_WORD_SPAN_SECONDS / 2)
        if ends_sentence(draft.texts[k]) or not heard.voice_at(following, *window)[0]:
            continue
        _move(draft, k, k + 1, following, None)


def _squeezed(draft: SegmentDraft, k: int) -> bool:
    return draft.timings[k] is WordTiming.PROVIDER and draft.ends[k] - draft.starts[k] < SQUEEZED_WORD_SECONDS


def _smooth(draft: SegmentDraft, index: _TurnIndex) -> None:
    """Move a word to a speaker other than the one its overlap chose only when its own evidence is weak.

    1. A run of words given to a fragment voice between two words of one speaker goes to that speaker,
       punctuated or not: it is what over-segmentation produces, and the turn around it is real.
    2. Within a sentence, a run at its start or end that sits close to the majority speaker's turn (or that
       overlaps its own speaker's turns little, or has no timestamp of its own) goes to the majority
       speaker: a diarization boundary a little off moves a word or two, not a sentence. A run inside the
       sentence stays: diarization heard another voice there (a backchannel, an interruption)."""
    _absorb_fragment_runs(draft, index)
    for start, end in _sentences(draft.texts):
        _smooth_sentence_edges(draft, index, start, end)


def _absorb_fragment_runs(draft: SegmentDraft, index: _TurnIndex) -> None:
    speakers = draft.speakers
    for run_start, run_end in _runs(speakers, 0, len(speakers)):
        if run_start == 0 or run_end == len(speakers) or speakers[run_start] in index.sustained_speakers:
            continue
        around = speakers[run_start - 1]
        if around is not None and around == speakers[run_end]:
            _move(draft, run_start, run_end, around, None)


def _sentences(texts: list[str]) -> list[tuple[int, int]]:
    """Stretches Whisper closed with terminal punctuation, of at most ``MAX_SMOOTHED_SENTENCE_WORDS`` words:
    evidence that one speaker said them. Unpunctuated text and run-ons are no such evidence."""
    sentences: list[tuple[int, int]] = []
    start = 0
    for position, text in enumerate(texts):
        if ends_sentence(text):
            if position + 1 - start <= MAX_SMOOTHED_SENTENCE_WORDS:
                sentences.append((start, position + 1))
            start = position + 1
    return sentences


def _smooth_sentence_edges(draft: SegmentDraft, index: _TurnIndex, start: int, end: int) -> None:
    runs = _runs(draft.speakers, start, end)
    if len(runs) <= 1:
        return
    words: dict[str | None, tuple[int, float, int]] = {}
    for k in range(start, end):
        count, mass, first = words.get(draft.speakers[k], (0, 0.0, k))
        words[draft.speakers[k]] = (count + 1, mass + (draft.confidences[k] or 0.0), first)
    majority = max(words, key=lambda s: (words[s][0], words[s][1], -words[s][2]))
    if majority is None:
        return
    share = round(words[majority][0] / (end - start), 3)
    for run_start, run_end in (runs[0], runs[-1]):
        if draft.speakers[run_start] != majority and all(
            _weak_at_sentence_edge(draft, index, k, majority) for k in range(run_start, run_end)
        ):
            _move(draft, run_start, run_end, majority, share)


def _weak_at_sentence_edge(draft: SegmentDraft, index: _TurnIndex, k: int, majority: str) -> bool:
    confidence = draft.confidences[k]
    if confidence is None or confidence < WEAK_OVERLAP_SHARE or draft.timings[k] is not WordTiming.PROVIDER:
        return True
    if _squeezed(draft, k):
        return True
    if draft.speakers[k] not in index.sustained_speakers:
        return True
    return index.distance_to_speaker(majority, draft.starts[k], draft.ends[k]) <= NEAR_TURN_SECONDS


def _runs(speakers: list[str | None], start: int, end: int) -> list[tuple[int, int]]:
    """Maximal runs of one speaker within [start, end), as (first, past-the-end) positions."""
    runs: list[tuple[int, int]] = []
    run_start = start
    for k in range(start + 1, end + 1):
        if k == end or speakers[k] != speakers[run_start]:
            runs.append((run_start, k))
            run_start = k
    return runs


def _move(draft: SegmentDraft, start: int, end: int, speaker: str, confidence: float | None) -> None:
    for k in range(start, end):
        draft.speakers[k] = speaker
        draft.confidences[k] = confidence
        draft.smoothed[k] = True
