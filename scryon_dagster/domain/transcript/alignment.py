"""Alignment: give every transcript word the speaker who was talking when it was said.

Input is Lemonfox's verbose_json (segments, words per segment and/or at top level, words may lack
timestamps) and, when pyannote ran, its diarization turns (exclusive and overlapping). Output is an
``AlignedTranscript``: the transcript's segments with one ``AlignedWord`` per text token, each carrying a
speaker, a time span and an attribution confidence.

How:
1. Text comes from the segment text (it has Whisper's punctuation, which sentence smoothing and bubble
   splitting need); timestamps come from the provider's words, matched to text tokens in order. Top-level
   words fill segments that have none, mapped by time; per-segment words win, so nothing is counted twice.
2. Tokens without a timestamp borrow their neighbours' (the gap between the previous and the next timed
   token is shared out evenly).
3. Speakers come from ``attribution``: word-level overlap with the diarization turns, overlapping speech
   and weak evidence settled from the words around, or the provider's own labels without diarization.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

from scryon_dagster.domain.provider_outputs import Diarization, RawSegment, RawTranscript, Word
from scryon_dagster.domain.transcript.aligned import AlignedTranscript, AlignmentMethod, SegmentDraft, WordTiming
from scryon_dagster.domain.transcript.attribution import attribute_speakers
from scryon_dagster.domain.transcript.tokens import interpolate_tokens, split_text, token_key

# Text tokens and provider words are re-synchronised within this look-ahead when they disagree.
RESYNC_LOOKAHEAD = 3


class AlignmentError(ValueError):
    """The raw transcript cannot be aligned (e.g. non-finite times). Never quotes transcript content."""


def align(raw: RawTranscript, diarization: Diarization | None) -> AlignedTranscript:
    drafts = [_draft_segment(source) for source in _source_segments(raw)]
    used_turns = attribute_speakers(drafts, diarization)
    segments = tuple(draft.freeze(used_turns) for draft in drafts if draft.texts)
    duration = raw.duration if raw.duration is not None and math.isfinite(raw.duration) else None
    if duration is None and segments:
        duration = max(segment.end for segment in segments)
    return AlignedTranscript(
        segments=segments, language=raw.language, duration_seconds=duration, used_diarization=used_turns
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


def _draft_segment(source: _SourceSegment) -> SegmentDraft:
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
    return SegmentDraft(
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


def _interpolated_draft(source: _SourceSegment, texts: list[str]) -> SegmentDraft:
    tokens = interpolate_tokens(texts, source.start, source.end, None)
    return SegmentDraft(
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
