"""Speaker attribution: each word of the drafted segments gets the speaker who was talking when it was said.

1. Each word goes to the speaker whose turns overlap it most (exclusive turns when pyannote gives them; a
   sweep over turns sorted by start with a heap of active turns: O((words + turns) log turns)). A word in a
   gap between turns goes to the nearest turn with a confidence that decays with the distance.
2. Where a reply starts over the end of a turn, both voices are heard (the overlapping turns say so) and
   the exclusive turns give the overlap to one of them. Whisper writes one voice's words, then the other's,
   with monotonic times: a word that continues the fading voice's sentence while that voice is still
   heard stays with it; the reply's first words, squeezed into a few milliseconds behind the word they
   overlapped, go with the reply, and the words written before them with the fading voice (see
   ``_continue_overlapped_speech``, ``_settle_squeezed_replies``).
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

import itertools
import math
from dataclasses import dataclass

from scryon_dagster.domain.provider_outputs import Diarization, SpeakerTurn
from scryon_dagster.domain.transcript.aligned import AlignmentMethod, SegmentDraft, WordTiming
from scryon_dagster.domain.transcript.tokens import ends_sentence
from scryon_dagster.domain.transcript.turns import MIN_WORD_SPAN_SECONDS, TurnIndex

# A "sentence" longer than this is a run-on (punctuation lost), not evidence of a single speaker.
MAX_SMOOTHED_SENTENCE_WORDS = 40
# At a sentence's edge a word is weak evidence of its speaker when that speaker's turns cover less than
# this share of it, or when it lies within this distance of the majority speaker's turn (about twice the
# typical error of a diarization boundary).
WEAK_OVERLAP_SHARE = 0.6
NEAR_TURN_SECONDS = 0.5
# In overlapping speech, a word continues the voice before it when that voice is heard during this share of it.
OVERLAP_CONTINUATION_SHARE = 0.5
# The last words before a reply squeezed behind them that say whose words the text was writing.
FADING_VOICE_WORDS = 5
# A word Whisper timed shorter than this was squeezed in, not heard there (no syllable is this short).
SQUEEZED_WORD_SECONDS = 0.05


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
    index = TurnIndex(turns)
    heard = index if voices is turns else TurnIndex(voices)
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
    _settle_squeezed_replies(word_drafts, heard)
    for draft in word_drafts:
        _smooth(draft, index)
    segment_drafts = [draft for draft in drafts if draft.method is AlignmentMethod.SEGMENT_OVERLAP]
    for draft, (speaker, confidence) in zip(
        segment_drafts, index.attribute([(draft.start, draft.end) for draft in segment_drafts]), strict=True
    ):
        draft.speakers = [speaker] * len(draft.texts)
        draft.confidences = [confidence] * len(draft.texts)
        draft.smoothed = [False] * len(draft.texts)


def _continue_overlapped_speech(draft: SegmentDraft, heard: TurnIndex) -> None:
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
            continue  # no time of its own to be heard in: see _settle_squeezed_replies
        start, end = draft.starts[k], max(draft.ends[k], draft.starts[k] + MIN_WORD_SPAN_SECONDS)
        covered, fading_end = heard.voice_at(previous, start, end)
        if covered < OVERLAP_CONTINUATION_SHARE * (end - start):
            continue
        if fading_end >= heard.voice_at(current, start, end)[1]:
            continue
        _move(draft, k, k + 1, previous, round(min(1.0, covered / (end - start)), 3))


def _settle_squeezed_replies(drafts: list[SegmentDraft], heard: TurnIndex) -> None:
    """Whisper's word times are monotonic: where its timeline runs behind the audio (a reply written after
    the words it overlapped), the reply's first words are squeezed into a few milliseconds right behind the
    word before them, so their times say nothing about who said them; they were said while that word was.
    Where two voices are heard then, the squeezed words are the reply's (the voice that began last, other
    than the one the text was writing), and the words written before them that the exclusive turns gave to
    the reply while the fading voice was still heard go back to it. Across punctuation and segment ends:
    the squeeze itself shows the order in which Whisper wrote the two voices."""
    words = [_WordAt(draft, k) for draft in drafts for k in range(len(draft.texts))]
    for q in range(1, len(words)):
        pushed, before = words[q], words[q - 1]
        if not pushed.squeezed or before.squeezed or before.timing is not WordTiming.PROVIDER:
            continue
        if pushed.start > before.end + MIN_WORD_SPAN_SECONDS:
            continue  # short, but not pushed behind the word before it
        voices = heard.stretches(before.start, max(before.end, pushed.end))
        fading = _fading_voice(words[max(0, q - FADING_VOICE_WORDS) : q])
        if fading not in voices or len(voices) < 2:
            continue
        reply = max((speaker for speaker in voices if speaker != fading), key=lambda speaker: voices[speaker][0])
        first = q
        while first > 0 and words[first - 1].speaker == reply and not words[first - 1].squeezed:
            if not heard.voice_at(fading, *words[first - 1].heard_span)[0]:
                break
            first -= 1
        if first > 0 and words[first - 1].speaker == fading:
            for word in words[first:q]:
                word.move_to(fading)
        for word in itertools.takewhile(lambda word: word.squeezed, words[q:]):
            word.move_to(reply)


def _fading_voice(words: list[_WordAt]) -> str | None:
    """Whose words the text was writing: the speaker of most of the last few words (the exclusive turns may
    have handed the last of them to the reply; the earliest speaker on a tie), back to an earlier squeeze."""
    counts: dict[str, int] = {}
    for word in reversed(words):
        if word.squeezed:
            break
        if word.speaker is not None:
            counts[word.speaker] = counts.get(word.speaker, 0) + 1
    earliest_first = list(reversed(counts))
    return max(earliest_first, key=counts.__getitem__, default=None)


@dataclass(frozen=True, slots=True)
class _WordAt:
    """A word of a draft, seen in the call's word order across drafts."""

    draft: SegmentDraft
    k: int

    @property
    def speaker(self) -> str | None:
        return self.draft.speakers[self.k]

    @property
    def start(self) -> float:
        return self.draft.starts[self.k]

    @property
    def end(self) -> float:
        return self.draft.ends[self.k]

    @property
    def timing(self) -> WordTiming:
        return self.draft.timings[self.k]

    @property
    def squeezed(self) -> bool:
        return _squeezed(self.draft, self.k)

    @property
    def heard_span(self) -> tuple[float, float]:
        return self.start, max(self.end, self.start + MIN_WORD_SPAN_SECONDS)

    def move_to(self, speaker: str) -> None:
        if self.speaker != speaker:
            _move(self.draft, self.k, self.k + 1, speaker, None)


def _squeezed(draft: SegmentDraft, k: int) -> bool:
    return draft.timings[k] is WordTiming.PROVIDER and draft.ends[k] - draft.starts[k] < SQUEEZED_WORD_SECONDS


def _smooth(draft: SegmentDraft, index: TurnIndex) -> None:
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


def _absorb_fragment_runs(draft: SegmentDraft, index: TurnIndex) -> None:
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


def _smooth_sentence_edges(draft: SegmentDraft, index: TurnIndex, start: int, end: int) -> None:
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


def _weak_at_sentence_edge(draft: SegmentDraft, index: TurnIndex, k: int, majority: str) -> bool:
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
