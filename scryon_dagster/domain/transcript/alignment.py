"""Alignment: give every transcript word the speaker who was talking when it was said.

Input is Lemonfox's verbose_json (segments, words per segment and/or at top level, words may lack
timestamps) and, when pyannote ran, its diarization turns (exclusive turns preferred). Output is an
``AlignedTranscript``: the transcript's segments with one ``AlignedWord`` per text token, each carrying a
speaker, a time span and an attribution confidence.

How:
1. Text comes from the segment text (it has Whisper's punctuation, which sentence smoothing and bubble
   splitting need); timestamps come from the provider's words, matched to text tokens in order. Top-level
   words fill segments that have none, mapped by time; per-segment words win, so nothing is counted twice.
2. Tokens without a timestamp borrow their neighbours' (the gap between the previous and the next timed
   token is shared out evenly).
3. Each word goes to the speaker whose turns overlap it most (a sweep over turns sorted by start with a
   heap of active turns: O((words + turns) log turns)). A word in a gap between turns goes to the nearest
   turn with a confidence that decays with the distance.
4. Smoothing moves a word away from its max-overlap speaker only when its own evidence is weak, never when
   it sits well inside a turn of a voice heard at length (see ``_smooth``): words a fragment voice took
   from the middle of another speaker's turn go back to that speaker, and a run of words at the start or
   end of a punctuated sentence that lies close to the sentence's majority speaker's turn joins that
   speaker (a diarization boundary a few hundred milliseconds off moves a word or two, not a sentence).
   Unpunctuated text and run-ons are no evidence of a single speaker, and a run inside a sentence (a
   backchannel, an interruption) is another voice diarization heard: both keep their word-level speaker.
5. A segment without any word timestamps is attributed as a whole (max overlap of the segment).
6. Without diarization turns, Lemonfox's own speaker labels are used (per word when present, else per
   segment), with no confidence (``None``): the provider does not say how sure it is.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from scryon_dagster.domain.provider_outputs import Diarization, RawSegment, RawTranscript, SpeakerTurn, Word
from scryon_dagster.domain.transcript.tokens import ends_sentence, interpolate_tokens, split_text, token_key

# A "sentence" longer than this is a run-on (punctuation lost), not evidence of a single speaker.
MAX_SMOOTHED_SENTENCE_WORDS = 40
# At a sentence's edge a word is weak evidence of its speaker when that speaker's turns cover less than
# this share of it, or when it lies within this distance of the majority speaker's turn (about twice the
# typical error of a diarization boundary).
WEAK_OVERLAP_SHARE = 0.6
NEAR_TURN_SECONDS = 0.5
# A voice never heard for this long at a stretch (pauses shorter than the second figure included) is a
# diarization fragment (over-segmentation).
SUSTAINED_TURN_SECONDS = 2.0
SUSTAINED_MAX_PAUSE_SECONDS = 0.5
# Words in a gap between turns: confidence falls linearly to zero at this distance from the nearest turn.
NEAREST_TURN_HORIZON_SECONDS = 2.0
# A zero-length word is looked up as this small window around its instant.
MIN_WORD_SPAN_SECONDS = 0.02
# Text tokens and provider words are re-synchronised within this look-ahead when they disagree.
RESYNC_LOOKAHEAD = 3


class AlignmentError(ValueError):
    """The raw transcript cannot be aligned (e.g. non-finite times). Never quotes transcript content."""


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


def align(raw: RawTranscript, diarization: Diarization | None) -> AlignedTranscript:
    sources = _source_segments(raw)
    turns = _usable_turns(diarization)
    drafts = [_draft_segment(source) for source in sources]
    if turns:
        _attribute_by_turns(drafts, turns)
    else:
        _attribute_by_provider_labels(drafts)
    segments = tuple(draft.freeze(bool(turns)) for draft in drafts if draft.texts)
    duration = raw.duration if raw.duration is not None and math.isfinite(raw.duration) else None
    if duration is None and segments:
        duration = max(segment.end for segment in segments)
    return AlignedTranscript(
        segments=segments, language=raw.language, duration_seconds=duration, used_diarization=bool(turns)
    )


# ---------------------------------------------------------------------------------------------------
# Source segments: sanitized times, words distributed


@dataclass(slots=True)
class _SourceSegment:
    start: float
    end: float
    text: str
    speaker: str | None
    words: list[Word] = field(default_factory=list)


def _source_segments(raw: RawTranscript) -> list[_SourceSegment]:
    segments = [_sanitized(index, segment) for index, segment in enumerate(raw.segments)]
    segments.sort(key=lambda segment: segment.start)
    top_level = [_clean_word(word) for word in raw.words]
    if not segments:
        if not raw.text.strip() and not top_level:
            return []
        timed = [word for word in top_level if word.start is not None]
        start = timed[0].start if timed and timed[0].start is not None else 0.0
        end = max((word.end or word.start or 0.0 for word in timed), default=raw.duration or start)
        return [_SourceSegment(start, max(start, end), raw.text, None, top_level)]
    _distribute_top_level_words(segments, top_level)
    return segments


def _sanitized(index: int, segment: RawSegment) -> _SourceSegment:
    if not (math.isfinite(segment.start) and math.isfinite(segment.end)):
        raise AlignmentError(f"raw segment {index} has a non-finite start or end time")
    start = max(0.0, segment.start)
    return _SourceSegment(
        start=start,
        end=max(start, segment.end),
        text=segment.text,
        speaker=segment.speaker,
        words=[_clean_word(word) for word in segment.words],
    )


def _clean_word(word: Word) -> Word:
    """Non-finite or negative times count as missing; an end before the start is pulled up to it."""
    start = word.start if word.start is not None and math.isfinite(word.start) and word.start >= 0 else None
    end = word.end if word.end is not None and math.isfinite(word.end) and word.end >= 0 else None
    if start is not None and end is not None and end < start:
        end = start
    if start == word.start and end == word.end:
        return word
    return word.model_copy(update={"start": start, "end": end})


def _distribute_top_level_words(segments: list[_SourceSegment], words: list[Word]) -> None:
    """Give top-level words to the segments that carry none, by time; an untimed word follows the timed
    word before it (or, at the very start, the one after it).

    A word that lands in a segment with its own words is that segment's word twice and is skipped."""
    if all(segment.words for segment in segments) or not words:
        return
    has_own_words = [bool(segment.words) for segment in segments]
    starts = [segment.start for segment in segments]
    targets = [
        _nearest_segment(segments, starts, _midpoint(word)) if word.start is not None or word.end is not None else None
        for word in words
    ]
    first_timed = next((target for target in targets if target is not None), None)
    previous = first_timed
    for word, target in zip(words, targets, strict=True):
        previous = target if target is not None else previous
        if previous is not None and not has_own_words[previous]:
            segments[previous].words.append(word)


def _midpoint(word: Word) -> float:
    start = word.start if word.start is not None else word.end
    end = word.end if word.end is not None else word.start
    return ((start or 0.0) + (end or 0.0)) / 2


def _nearest_segment(segments: list[_SourceSegment], starts: list[float], instant: float) -> int:
    """The segment containing ``instant`` (the later one where two overlap), else the closest one."""
    after = bisect.bisect_right(starts, instant)
    candidates = [index for index in (after - 2, after - 1, after) if 0 <= index < len(segments)]

    def distance(index: int) -> tuple[float, int]:
        segment = segments[index]
        gap = max(segment.start - instant, instant - segment.end, 0.0)
        return gap, -index

    return min(candidates, key=distance)


# ---------------------------------------------------------------------------------------------------
# Draft segments: tokens with times, then speakers


@dataclass(slots=True)
class _Draft:
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


def _draft_segment(source: _SourceSegment) -> _Draft:
    texts = split_text(source.text) or split_text(_joined_words(source.words))
    if not source.words or not any(w.start is not None or w.end is not None for w in source.words):
        return _interpolated_draft(source, texts)
    matches = _match_tokens_to_words(texts, source.words)
    starts: list[float | None] = []
    ends: list[float | None] = []
    speakers: list[str | None] = []
    for match in matches:
        if match is None:
            starts.append(None)
            ends.append(None)
            speakers.append(source.speaker)
            continue
        first, last, share_index, share_count = match
        first_word, last_word = source.words[first], source.words[last]
        start, end = first_word.start, last_word.end
        if share_count > 1 and start is not None and end is not None:
            # several text tokens share one provider word: split its span evenly
            step = (end - start) / share_count
            start, end = start + step * share_index, start + step * (share_index + 1)
        starts.append(start)
        ends.append(end)
        speakers.append(first_word.speaker or source.speaker)
    filled_starts, filled_ends, timings = _borrow_missing_times(starts, ends, source.start, source.end)
    return _Draft(
        start=source.start,
        end=source.end,
        method=AlignmentMethod.WORD_OVERLAP,
        texts=texts,
        starts=filled_starts,
        ends=filled_ends,
        timings=timings,
        provider_speakers=speakers,
    )


def _joined_words(words: list[Word]) -> str:
    # OpenAI-style words carry their leading space; others are bare and need one between them.
    if any(word.word[:1].isspace() for word in words):
        return "".join(word.word for word in words)
    return " ".join(word.word for word in words)


def _interpolated_draft(source: _SourceSegment, texts: list[str]) -> _Draft:
    tokens = interpolate_tokens(texts, source.start, source.end, None)
    return _Draft(
        start=source.start,
        end=source.end,
        method=AlignmentMethod.SEGMENT_OVERLAP,
        texts=texts,
        starts=[token.start for token in tokens],
        ends=[token.end for token in tokens],
        timings=[WordTiming.INTERPOLATED] * len(texts),
        provider_speakers=[source.speaker] * len(texts),
    )


_Match = tuple[int, int, int, int] | None
"""(first word, last word, index among tokens sharing the word, number of tokens sharing it) or None."""


def _match_tokens_to_words(texts: list[str], words: list[Word]) -> list[_Match]:
    """Pair text tokens with provider words in order, tolerating split/merged tokens and small disagreements."""
    token_keys = [token_key(text) for text in texts]
    word_keys = [token_key(word.word) for word in words]
    matches: list[_Match] = [None] * len(texts)
    i = j = 0
    while i < len(texts):
        if j >= len(words):
            break
        tk, wk = token_keys[i], word_keys[j]
        if not tk:  # punctuation-only token: borrows its time
            i += 1
            continue
        if not wk:
            j += 1
            continue
        if tk == wk:
            matches[i] = (j, j, 0, 1)
            i, j = i + 1, j + 1
            continue
        merged_end = _merged_words_end(tk, word_keys, j)
        if merged_end is not None:
            matches[i] = (j, merged_end, 0, 1)
            i, j = i + 1, merged_end + 1
            continue
        split_end = _merged_words_end(wk, token_keys, i)
        if split_end is not None:
            count = split_end - i + 1
            for offset in range(count):
                matches[i + offset] = (j, j, offset, count)
            i, j = split_end + 1, j + 1
            continue
        ahead = _find_ahead(word_keys, j + 1, tk)
        if ahead is not None:
            j = ahead
            continue
        if _find_ahead(token_keys, i + 1, wk) is not None:
            i += 1  # this token has no provider word; it borrows a time
            continue
        matches[i] = (j, j, 0, 1)  # a substitution ("5" vs "five"): pair them positionally
        i, j = i + 1, j + 1
    return matches


def _merged_words_end(target: str, keys: list[str], start: int) -> int | None:
    """Index of the last key such that keys[start..end] concatenate to ``target`` (at least two keys)."""
    if not keys[start] or not target.startswith(keys[start]) or target == keys[start]:
        return None
    accumulated = keys[start]
    end = start
    while end + 1 < len(keys) and len(accumulated) < len(target):
        end += 1
        accumulated += keys[end]
        if not target.startswith(accumulated):
            return None
    return end if accumulated == target else None


def _find_ahead(keys: list[str], start: int, target: str) -> int | None:
    for index in range(start, min(len(keys), start + RESYNC_LOOKAHEAD)):
        if keys[index] == target:
            return index
    return None


def _borrow_missing_times(
    starts: list[float | None], ends: list[float | None], segment_start: float, segment_end: float
) -> tuple[list[float], list[float], list[WordTiming]]:
    """Fill missing times from neighbours and make starts non-decreasing with end >= start."""
    count = len(starts)
    timings = [
        WordTiming.PROVIDER if starts[i] is not None and ends[i] is not None else WordTiming.BORROWED
        for i in range(count)
    ]
    # A word with only one of its two times keeps it; the other collapses onto it.
    for i in range(count):
        if starts[i] is None and ends[i] is not None:
            starts[i] = ends[i]
        elif ends[i] is None and starts[i] is not None:
            ends[i] = starts[i]
    out_starts: list[float] = [0.0] * count
    out_ends: list[float] = [0.0] * count
    i = 0
    previous_end = segment_start
    while i < count:
        start_i, end_i = starts[i], ends[i]
        if start_i is not None and end_i is not None:
            start = max(start_i, out_starts[i - 1] if i else start_i)
            out_starts[i], out_ends[i] = start, max(end_i, start)
            previous_end = out_ends[i]
            i += 1
            continue
        run_end = i
        while run_end < count and starts[run_end] is None:
            run_end += 1
        next_start = starts[run_end] if run_end < count else None
        right = next_start if next_start is not None else max(segment_end, previous_end)
        left = previous_end
        right = max(right, left)
        step = (right - left) / (run_end - i)
        for k in range(i, run_end):
            out_starts[k] = left + step * (k - i)
            out_ends[k] = left + step * (k - i + 1)
        previous_end = right
        i = run_end
    return out_starts, out_ends, timings


# ---------------------------------------------------------------------------------------------------
# Speaker attribution


def _usable_turns(diarization: Diarization | None) -> list[SpeakerTurn]:
    if diarization is None:
        return []
    turns = [
        turn
        for turn in diarization.turns_for_alignment
        if math.isfinite(turn.start) and math.isfinite(turn.end) and turn.end > turn.start
    ]
    turns.sort(key=lambda turn: (turn.start, turn.end))
    return turns


def _attribute_by_provider_labels(drafts: list[_Draft]) -> None:
    for draft in drafts:
        draft.speakers = list(draft.provider_speakers)
        draft.confidences = [None] * len(draft.texts)
        draft.smoothed = [False] * len(draft.texts)


def _attribute_by_turns(drafts: list[_Draft], turns: list[SpeakerTurn]) -> None:
    index = _TurnIndex(turns)
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


def _smooth(draft: _Draft, index: _TurnIndex) -> None:
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


def _absorb_fragment_runs(draft: _Draft, index: _TurnIndex) -> None:
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


def _smooth_sentence_edges(draft: _Draft, index: _TurnIndex, start: int, end: int) -> None:
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


def _weak_at_sentence_edge(draft: _Draft, index: _TurnIndex, k: int, majority: str) -> bool:
    confidence = draft.confidences[k]
    if confidence is None or confidence < WEAK_OVERLAP_SHARE or draft.timings[k] is not WordTiming.PROVIDER:
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


def _move(draft: _Draft, start: int, end: int, speaker: str, confidence: float | None) -> None:
    for k in range(start, end):
        draft.speakers[k] = speaker
        draft.confidences[k] = confidence
        draft.smoothed[k] = True
