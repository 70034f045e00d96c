"""Transcript speaker attribution per rendering, and normalization speed, on synthetic, seeded calls.

Ground truth: conversations of known speakers with true word times, in the order a transcript writes
them (sentence after sentence). From each, the script derives what the providers would return —
Whisper-like segments that straddle speaker changes, padded segment ends, jittered word times that are
monotonic like Whisper's (a reply written after the words it overlapped is pushed behind them), some
words without timestamps — and a noisy pyannote diarization: every voice's turns with jittered
boundaries, some turns given to a random speaker, some short turns missed, short spurious "fragment"
speakers; exclusive turns derived from them as pyannote does (the voice actually speaking where turns
overlap, a random hand-over in double talk). Two noise levels (``NOISE``): harsh (the first measurements'
model) and moderate.

Renderings (each its own calls):
* punctuated — two speakers, Whisper's punctuation in the text and the words;
* unpunctuated — the same kind of calls with no punctuation and no capitals at all;
* backchannels — the listener drops "yeah", "mm-hm", "right"... into the speaker's sentences;
* overlap — replies start 0.2-0.8 s before the other speaker finishes (never before the middle of the turn
  they answer);
* three speakers — three-party calls with frequent changes of speaker.
The last three alternate punctuated and unpunctuated calls.

For each it reports the share of words whose true speaker diarization heard within 0.5 s of them (the
ceiling of attribution by time), and the share attributed to their true speaker by
* the segment-level baseline (each segment goes wholly to the speaker overlapping it most),
* word-level max overlap (each word, with the times ``align`` gives it, to the speaker overlapping it most),
* ours: ``build_transcript``, the chain the pipeline ships (align + normalize + resolve_speakers),
and the wall and CPU time of ``build_transcript`` on two-hour calls.

Run: .venv/bin/python bench/transcript_quality.py [--calls 100] [--seed 7] [--repeats 5] [--noise harsh]
     [--only unpunctuated]
"""

from __future__ import annotations

import argparse
import bisect
import difflib
import math
import os
import platform
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from scryon_dagster.domain.calls import Direction
from scryon_dagster.domain.provider_outputs import Diarization, RawTranscript, SpeakerTurn
from scryon_dagster.domain.transcript import NormalizedTranscript, Provenance, SpeakerContext, align, build_transcript
from scryon_dagster.domain.transcript.tokens import token_key

_VOCABULARY_TEXT = (
    "account agenda budget call client contract customer date deadline delivery discount document draft email "
    "estimate follow invoice meeting number offer order payment plan pricing project proposal quote report "
    "review schedule service shipment signature status support team ticket timeline update vendor week "
    "agree check confirm discuss finish handle manage need prepare receive send share sign start talk think "
    "want ready quickly today tomorrow monday friday next later soon early maybe probably definitely really"
)
_VOCABULARY = _VOCABULARY_TEXT.split()
_BACKCHANNELS = ("yeah", "mm-hm", "right", "okay", "uh-huh", "sure")
_PROVENANCE = Provenance("lemonfox", "whisper-1", "pyannote", "precision-2")
_CONTEXT = SpeakerContext("Praveen Kumar", "Ravi Shankar", "+1 555 123 4567", Direction.OUTGOING)
_SPEAKERS = ("SPEAKER_00", "SPEAKER_01", "SPEAKER_02")
_FRAGMENT_SPEAKER = "SPEAKER_09"
_SAME_TURN_MAX_GAP_SECONDS = 0.6
_NEARBY_SECONDS = 0.5
_WHISPER_FRAME_SECONDS = 0.02  # the resolution of Whisper's word timestamps


@dataclass(frozen=True)
class TrueWord:
    text: str
    start: float
    end: float
    speaker: str
    ends_sentence: bool


@dataclass(frozen=True)
class Rendering:
    name: str
    speaker_count: int = 2
    punctuated: Callable[[int], bool] = lambda call: True
    backchannel_share: float = 0.0
    """Share of sentences of five words or more into which the listener drops a backchannel."""
    overlapping_replies: bool = False


def _alternating(call: int) -> bool:
    return call % 2 == 0


RENDERINGS = (
    Rendering("punctuated"),
    Rendering("unpunctuated", punctuated=lambda call: False),
    Rendering("backchannels", punctuated=_alternating, backchannel_share=0.4),
    Rendering("overlap", punctuated=_alternating, overlapping_replies=True),
    Rendering("three speakers", speaker_count=3, punctuated=_alternating),
)


# ---------------------------------------------------------------------------------------------------
# Ground truth and what the providers make of it


def conversation(rng: random.Random, duration_seconds: float, rendering: Rendering) -> list[TrueWord]:
    """True words in the order a transcript writes them: sentence after sentence, so where two voices
    overlap, the words of the voice already talking come first and the reply after them (Whisper decodes
    one stream of text; it does not interleave two speakers word by word)."""
    words: list[TrueWord] = []
    clock = rng.uniform(0.2, 1.0)
    speaker = _SPEAKERS[0]
    last_end: dict[str, float] = {}
    while clock < duration_seconds:
        listener = _next_speaker(rng, speaker, rendering.speaker_count)
        turn_start = clock
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):  # sentences in this turn
            length = rng.choice((1, 2, 3)) if rng.random() < 0.25 else rng.randint(4, 16)
            backchannel_at = (
                rng.randint(2, length - 2) if length >= 5 and rng.random() < rendering.backchannel_share else -1
            )
            previous = ""
            for position in range(length):
                if position == backchannel_at:  # said in a short pause of the speaker's
                    clock += rng.uniform(0.05, 0.25)
                    span = rng.uniform(0.2, 0.4)
                    words.append(TrueWord(rng.choice(_BACKCHANNELS) + ",", clock, clock + span, listener, False))
                    clock += span + rng.uniform(0.05, 0.25)
                text = rng.choice([w for w in _VOCABULARY if w != previous])
                previous = text
                if position == 0:
                    text = text.capitalize()
                last = position == length - 1
                if last:
                    text += rng.choice(".?!") if length > 2 else rng.choice(".?")
                elif rng.random() < 0.08:
                    text += ","
                span = rng.uniform(0.18, 0.45)
                words.append(TrueWord(text, clock, clock + span, speaker, last))
                clock += span + rng.uniform(0.02, 0.14)
            clock += rng.uniform(0.1, 0.5)
        last_end[speaker] = words[-1].end
        speaker = listener
        if rendering.overlapping_replies:
            # A reply answers what it has heard: it starts over the end of the turn, not before the turn's
            # middle, and never before the replier's own previous words are over.
            clock = max(
                words[-1].end - rng.uniform(0.2, 0.8),
                (turn_start + words[-1].end) / 2,
                last_end.get(speaker, 0.0) + rng.uniform(0.05, 0.3),
            )
        else:
            clock += rng.uniform(-0.15, 0.9)  # quick replies sometimes start a little early
            clock = max(clock, words[-1].end + 0.01)
    return words


def _next_speaker(rng: random.Random, speaker: str, speaker_count: int) -> str:
    others = [s for s in _SPEAKERS[:speaker_count] if s != speaker]
    return rng.choice(others) if speaker_count > 2 and rng.random() < 0.5 else others[0]


def _as_heard(word: TrueWord, punctuated: bool) -> str:
    return word.text if punctuated else token_key(word.text)


def whisper_output(rng: random.Random, words: list[TrueWord], *, punctuated: bool) -> dict[str, Any]:
    """Segments cut on sentence ends by elapsed time, regardless of who speaks: many straddle a change."""
    times = _word_timestamps(rng, words)
    segments: list[dict[str, Any]] = []
    current: list[int] = []
    target = rng.uniform(3.0, 10.0)
    for position, word in enumerate(words):
        current.append(position)
        if word.ends_sentence and word.end - words[current[0]].start >= target:
            segments.append(_segment(rng, len(segments), words, times, current, punctuated))
            current, target = [], rng.uniform(3.0, 10.0)
    if current:
        segments.append(_segment(rng, len(segments), words, times, current, punctuated))
    return {
        "task": "transcribe",
        "language": "english",
        "duration": max(word.end for word in words) + 0.5,
        "text": " ".join(s["text"] for s in segments),
        "segments": segments,
    }


def _word_timestamps(rng: random.Random, words: list[TrueWord]) -> list[tuple[float, float] | None]:
    """Whisper-like word times: the true times jittered (sigma 0.06 s), 5 % of words without any, and
    monotonic like the DTW alignment Whisper derives them from — a word never starts before the previous
    one ends, so where two voices overlap the later-written voice's words are pushed past the earlier
    one's."""
    times: list[tuple[float, float] | None] = []
    previous_end = 0.0
    for word in words:
        if rng.random() < 0.05:
            times.append(None)
            continue
        start = round(max(word.start + rng.gauss(0, 0.06), previous_end), 3)
        end = round(max(word.end + rng.gauss(0, 0.06), start + _WHISPER_FRAME_SECONDS), 3)
        times.append((start, end))
        previous_end = end
    return times


def _segment(
    rng: random.Random,
    index: int,
    words: list[TrueWord],
    times: list[tuple[float, float] | None],
    positions: list[int],
    punctuated: bool,
) -> dict[str, Any]:
    provider_words = []
    for position in positions:
        entry: dict[str, Any] = {"word": _as_heard(words[position], punctuated)}
        timed = times[position]
        if timed is not None:
            entry["start"], entry["end"] = timed
        provider_words.append(entry)
    timed_spans = [times[p] for p in positions if times[p] is not None] or [
        (words[positions[0]].start, words[positions[-1]].end)
    ]
    return {
        "id": index,
        "start": round(max(0.0, timed_spans[0][0] - rng.uniform(0.0, 0.3)), 3),
        "end": round(max(end for _, end in timed_spans) + rng.uniform(0.1, 0.6), 3),  # Whisper pads segment ends
        "text": " " + " ".join(_as_heard(words[position], punctuated) for position in positions),
        "speaker": None,
        "words": provider_words,
    }


@dataclass(frozen=True)
class DiarizationNoise:
    boundary_sigma_seconds: float
    confused_turn_share: float
    """Turns labelled with a speaker drawn at random (the right one or not)."""
    missed_short_turn_share: float
    """Turns under 0.8 s (backchannels, one-word replies) not heard at all."""
    fragment_share: float
    """Turns over 4 s with a spurious fragment speaker inside."""


NOISE = {
    # The noise model of the first measurements (2026-11-28).
    "harsh": DiarizationNoise(0.25, 0.03, 0.3, 0.08),
    # Calibrated so that word-level max overlap scores about 0.99 on punctuated calls, as it does on the
    # held-out corpus of real calls that issue 15 reports.
    "moderate": DiarizationNoise(0.1, 0.01, 0.15, 0.03),
}


def diarization_output(rng: random.Random, words: list[TrueWord], noise: DiarizationNoise) -> dict[str, Any]:
    voices: dict[str, list[list[float]]] = {}
    for word in sorted(words, key=lambda word: word.start):
        spans = voices.setdefault(word.speaker, [])
        if spans and word.start - spans[-1][1] < _SAME_TURN_MAX_GAP_SECONDS:
            spans[-1][1] = max(spans[-1][1], word.end)
        else:
            spans.append([word.start, word.end])
    turns = sorted(((speaker, a, b) for speaker, spans in voices.items() for a, b in spans), key=lambda t: t[1])
    speakers = sorted(voices)
    noisy: list[_NoisyTurn] = []
    for voice, start, end in turns:
        if end - start < 0.8 and rng.random() < noise.missed_short_turn_share:
            continue
        speaker = rng.choice(speakers) if rng.random() < noise.confused_turn_share else voice
        start = start + rng.gauss(0, noise.boundary_sigma_seconds)
        end = end + rng.gauss(0, noise.boundary_sigma_seconds)
        if end - start < 0.1:
            continue
        if end - start > 4 and rng.random() < noise.fragment_share:
            middle = rng.uniform(start + 1, end - 1.5)
            fragment_end = middle + rng.uniform(0.3, 1.0)
            noisy += [
                _NoisyTurn(speaker, start, middle, voice),
                _NoisyTurn(_FRAGMENT_SPEAKER, middle, fragment_end, voice),
                _NoisyTurn(speaker, fragment_end, end, voice),
            ]
        else:
            noisy.append(_NoisyTurn(speaker, start, end, voice))
    noisy.sort(key=lambda turn: turn.start)
    as_json = [{"speaker": t.speaker, "start": round(t.start, 3), "end": round(t.end, 3)} for t in noisy]
    exclusive = [
        {"speaker": s, "start": round(a, 3), "end": round(b, 3)}
        for s, a, b in _exclusive(rng, noisy, _speech(words))
        if round(b - a, 3) > 0
    ]
    return {"diarization": as_json, "exclusiveDiarization": exclusive}


@dataclass(frozen=True)
class _NoisyTurn:
    speaker: str
    """The label diarization gives the turn (maybe the wrong speaker, maybe a fragment voice)."""
    start: float
    end: float
    voice: str
    """Whose speech the turn was made from."""


def _speech(words: list[TrueWord]) -> dict[str, tuple[list[float], list[float]]]:
    """Each voice's actual speech: its words, the short pauses between them (under 0.15 s) bridged."""
    speech: dict[str, tuple[list[float], list[float]]] = {}
    for word in sorted(words, key=lambda word: word.start):
        starts, ends = speech.setdefault(word.speaker, ([], []))
        if ends and word.start - ends[-1] < 0.15:
            ends[-1] = max(ends[-1], word.end)
        else:
            starts.append(word.start)
            ends.append(word.end)
    return speech


def _speaking_since(speech: tuple[list[float], list[float]], instant: float) -> float | None:
    """When the stretch of speech going on at ``instant`` began; None in a pause."""
    starts, ends = speech
    position = bisect.bisect_right(starts, instant) - 1
    return starts[position] if position >= 0 and ends[position] > instant else None


def _exclusive(
    rng: random.Random, turns: list[_NoisyTurn], speech: dict[str, tuple[list[float], list[float]]]
) -> list[tuple[str, float, float]]:
    """One speaker per instant, the way pyannote derives its exclusive diarization: frame by frame, the
    speaker its segmentation scores highest among the active ones (``count`` clipped to 1 before
    ``reconstruct``). Where turns overlap, that is the voice actually speaking (the other is in a pause its
    turn bridges); where both speak at once, the voice that was speaking first until a point drawn at
    random in the double talk (its score fading as the other's rises), then the other; where neither
    speaks, whoever had the instant before.

    ``turns`` sorted by start."""
    instants = sorted({t for turn in turns for t in (turn.start, turn.end)})
    exclusive: list[tuple[str, float, float]] = []
    active: list[_NoisyTurn] = []
    next_turn = 0
    winner: _NoisyTurn | None = None

    def emit(turn: _NoisyTurn, left: float, right: float) -> None:
        if exclusive and exclusive[-1][0] == turn.speaker and exclusive[-1][2] == left:
            exclusive[-1] = (turn.speaker, exclusive[-1][1], right)
        else:
            exclusive.append((turn.speaker, left, right))

    for left, right in pairwise(instants):
        while next_turn < len(turns) and turns[next_turn].start <= left:
            active.append(turns[next_turn])
            next_turn += 1
        active = [turn for turn in active if turn.end >= right]
        if not active:
            continue
        if len(active) == 1:
            winner = active[0]
            emit(winner, left, right)
            continue
        cuts = {left, right}
        for voice in {turn.voice for turn in active}:
            starts, ends = speech[voice]
            first = bisect.bisect_left(ends, left)
            last = bisect.bisect_right(starts, right)
            cuts.update(t for t in (*starts[first:last], *ends[first:last]) if left < t < right)
        for a, b in pairwise(sorted(cuts)):
            middle = (a + b) / 2
            since = {id(turn): _speaking_since(speech[turn.voice], middle) for turn in active}
            speaking = sorted(
                (turn for turn in active if since[id(turn)] is not None), key=lambda turn: since[id(turn)] or 0.0
            )
            if len(speaking) == 1:
                winner = speaking[0]
            elif not speaking:
                winner = winner if winner in active else max(active, key=lambda turn: turn.start)
            else:
                crossover = rng.uniform(a, b)
                emit(speaking[0], a, crossover)
                winner, a = speaking[-1], crossover
            emit(winner, a, b)
    return exclusive


# ---------------------------------------------------------------------------------------------------
# Attributions


def segment_level(raw: RawTranscript, diarization: Diarization) -> list[str | None]:
    """The reference's fallback: every word of a segment gets the speaker overlapping the segment most."""
    turns = diarization.turns_for_alignment
    speakers: list[str | None] = []
    for segment in raw.segments:
        overlap: dict[str, float] = {}
        for turn in turns:
            shared = min(segment.end, turn.end) - max(segment.start, turn.start)
            if shared > 0:
                overlap[turn.speaker] = overlap.get(turn.speaker, 0.0) + shared
        best = max(overlap, key=lambda s: overlap[s]) if overlap else None
        speakers.extend([best] * len(segment.text.split()))
    return speakers


def word_level(raw: RawTranscript, diarization: Diarization) -> list[str | None]:
    """Each word (times as ``align`` gives them) to the speaker whose turns overlap it most; a word in a gap
    to the nearest turn. No smoothing."""
    turns = sorted(diarization.turns_for_alignment, key=lambda turn: turn.start)
    starts = [turn.start for turn in turns]
    longest = max((turn.end - turn.start for turn in turns), default=0.0)
    return [_max_overlap(turns, starts, longest, start, end) for start, end in _word_times(raw, diarization)]


def heard_nearby(raw: RawTranscript, diarization: Diarization, truth: list[TrueWord]) -> int:
    """Words whose true speaker diarization heard (any turn, overlaps kept) within 0.5 s of the word's time:
    the ceiling of any attribution that goes by time. The others lie in a turn given to the wrong speaker or
    in speech diarization missed."""
    voices: dict[str, list[tuple[float, float]]] = {}
    for turn in sorted(diarization.diarization, key=lambda turn: turn.start):
        voices.setdefault(turn.speaker, []).append((turn.start - _NEARBY_SECONDS, turn.end + _NEARBY_SECONDS))
    heard = 0
    for (start, end), word in zip(_word_times(raw, diarization), truth, strict=True):
        spans = voices.get(word.speaker, [])
        last = bisect.bisect_left(spans, (end, math.inf))
        heard += any(span_end > start for _, span_end in spans[max(0, last - 8) : last])
    return heard


def _word_times(raw: RawTranscript, diarization: Diarization) -> list[tuple[float, float]]:
    return [(word.start, word.end) for segment in align(raw, diarization).segments for word in segment.words]


def _max_overlap(turns: list[SpeakerTurn], starts: list[float], longest: float, start: float, end: float) -> str:
    first = bisect.bisect_left(starts, start - longest)
    last = bisect.bisect_right(starts, end)
    overlap: dict[str, float] = {}
    for turn in turns[first:last]:
        shared = min(end, turn.end) - max(start, turn.start)
        if shared > 0:
            overlap[turn.speaker] = overlap.get(turn.speaker, 0.0) + shared
    if overlap:
        return max(overlap, key=lambda s: overlap[s])
    middle = (start + end) / 2
    return min(turns, key=lambda turn: max(turn.start - middle, middle - turn.end)).speaker


def ours(raw: RawTranscript, diarization: Diarization) -> NormalizedTranscript:
    return build_transcript(
        "bench", raw, diarization, _CONTEXT, None, provenance=_PROVENANCE, created_at=datetime.now(UTC)
    )


def correct_words(predicted: list[str | None], truth: list[TrueWord]) -> int:
    assert len(predicted) == len(truth), "word-for-word attributions must keep every word"
    return sum(p == t.speaker for p, t in zip(predicted, truth, strict=True))


def correct_transcript_words(transcript: NormalizedTranscript, truth: list[TrueWord]) -> tuple[int, int]:
    """(words on their true speaker, words compared). Normalization may drop a word (a stutter, a
    near-duplicate): transcript words are paired with true words by a diff of their text, and a true word
    left without a partner counts as wrong."""
    source = {speaker.speaker_id: speaker.source_speaker_id for speaker in transcript.speakers}
    said = [
        (token_key(text), source[segment.speaker_id])
        for segment in transcript.segments
        for text in segment.text.split()
    ]
    matcher = difflib.SequenceMatcher(
        None, [token_key(word.text) for word in truth], [key for key, _ in said], autojunk=False
    )
    correct = 0
    for block in matcher.get_matching_blocks():
        for offset in range(block.size):
            correct += said[block.b + offset][1] == truth[block.a + offset].speaker
    return correct, len(truth)


@dataclass
class Score:
    correct: int = 0
    total: int = 0
    per_call: list[float] = field(default_factory=list)

    def add(self, correct: int, total: int) -> None:
        self.correct += correct
        self.total += total
        self.per_call.append(correct / total)

    @property
    def share(self) -> float:
        return self.correct / self.total

    @property
    def worst_call(self) -> float:
        return min(self.per_call)


def measure_rendering(rendering: Rendering, noise: DiarizationNoise, calls: int, seed: int) -> dict[str, Score]:
    rng = random.Random(f"{seed}:{rendering.name}")
    scores = {"heard": Score(), "segment": Score(), "word": Score(), "ours": Score()}
    for call in range(calls):
        truth = conversation(rng, rng.uniform(60, 600), rendering)
        raw = RawTranscript.model_validate(whisper_output(rng, truth, punctuated=rendering.punctuated(call)))
        diarization = Diarization.model_validate(diarization_output(rng, truth, noise))
        scores["heard"].add(heard_nearby(raw, diarization, truth), len(truth))
        scores["segment"].add(correct_words(segment_level(raw, diarization), truth), len(truth))
        scores["word"].add(correct_words(word_level(raw, diarization), truth), len(truth))
        scores["ours"].add(*correct_transcript_words(ours(raw, diarization), truth))
    return scores


@dataclass(frozen=True)
class Speed:
    words: int
    segments: int
    median_wall_seconds: float
    best_wall_seconds: float
    median_cpu_seconds: float
    """CPU time of this process: on a shared machine, less disturbed by other processes than wall time."""


def measure_speed(seed: int, repeats: int, *, punctuated: bool) -> Speed:
    rng = random.Random(seed)
    truth = conversation(rng, 2 * 3600, RENDERINGS[0])
    raw = RawTranscript.model_validate(whisper_output(rng, truth, punctuated=punctuated))
    diarization = Diarization.model_validate(diarization_output(rng, truth, NOISE["harsh"]))
    wall: list[float] = []
    cpu: list[float] = []
    segments = 0
    for _ in range(repeats):
        wall_started, cpu_started = time.perf_counter(), time.process_time()
        segments = len(ours(raw, diarization).segments)
        wall.append(time.perf_counter() - wall_started)
        cpu.append(time.process_time() - cpu_started)
    return Speed(len(truth), segments, statistics.median(wall), min(wall), statistics.median(cpu))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--calls", type=int, default=100, help="calls per rendering")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", choices=[r.name for r in RENDERINGS], action="append", help="renderings to run")
    parser.add_argument("--noise", choices=sorted(NOISE), action="append", help="diarization noise (default: all)")
    args = parser.parse_args()

    print(
        f"date: {datetime.now(UTC).date().isoformat()}  machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}  calls per rendering: {args.calls}  seed: {args.seed}"
    )
    print(
        "| diarization noise | rendering | words | true speaker heard within 0.5 s | segment-level max overlap "
        "| word-level max overlap | ours | ours, mean per call | ours, worst call |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for noise_name in args.noise or NOISE:
        for rendering in RENDERINGS:
            if args.only and rendering.name not in args.only:
                continue
            scores = measure_rendering(rendering, NOISE[noise_name], args.calls, args.seed)
            ours_score = scores["ours"]
            print(
                f"| {noise_name} | {rendering.name} | {ours_score.total:,} | {scores['heard'].share:.2%} "
                f"| {scores['segment'].share:.2%} "
                f"| {scores['word'].share:.2%} | **{ours_score.share:.2%}** "
                f"| {statistics.mean(ours_score.per_call):.2%} | {ours_score.worst_call:.2%} |",
                flush=True,
            )
    for punctuated in (True, False):
        speed = measure_speed(args.seed, args.repeats, punctuated=punctuated)
        print(
            f"two-hour call, {'punctuated' if punctuated else 'unpunctuated'}: {speed.words:,} words -> "
            f"{speed.segments:,} segments; build_transcript median {speed.median_wall_seconds:.2f} s "
            f"(best {speed.best_wall_seconds:.2f} s of {args.repeats}), median CPU {speed.median_cpu_seconds:.2f} s"
        )


if __name__ == "__main__":
    main()
