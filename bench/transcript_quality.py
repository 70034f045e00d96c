"""Transcript alignment quality and normalization speed on synthetic, seeded calls.

Ground truth: conversations of known speakers with true word times. From each, the script derives what
the providers would return — Whisper-like segments that straddle speaker changes, padded segment ends,
jittered word times, some words without timestamps, words with or without punctuation — and a noisy
pyannote diarization (turn boundaries jittered with a 0.25 s standard deviation, 3 % of turns given to a wrong speaker,
a third of short backchannels missed, short spurious "fragment" speakers, exclusive turns).

It reports the share of words attributed to their true speaker by
* the segment-level baseline (each segment goes wholly to the speaker overlapping it most),
* ``align`` (word-level overlap + sentence smoothing),
* ``align`` + ``normalize`` (adds fragment-speaker absorption), on the words of the final transcript,
and the wall time of ``build_transcript`` (align + normalize + resolve_speakers) on a two-hour call.

Run: .venv/bin/python bench/transcript_quality.py [--calls 200] [--seed 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from scryon_dagster.domain.calls import Direction
from scryon_dagster.domain.provider_outputs import Diarization, RawTranscript
from scryon_dagster.domain.transcript import (
    Provenance,
    SpeakerContext,
    align,
    build_transcript,
    normalize,
)
from scryon_dagster.domain.transcript.tokens import token_key

_VOCABULARY_TEXT = (
    "account agenda budget call client contract customer date deadline delivery discount document draft email "
    "estimate follow invoice meeting number offer order payment plan pricing project proposal quote report "
    "review schedule service shipment signature status support team ticket timeline update vendor week "
    "agree check confirm discuss finish handle manage need prepare receive send share sign start talk think "
    "want ready quickly today tomorrow monday friday next later soon early maybe probably definitely really"
)
_VOCABULARY = _VOCABULARY_TEXT.split()
_PROVENANCE = Provenance("lemonfox", "whisper-1", "pyannote", "precision-2")
_SPEAKERS = ("SPEAKER_00", "SPEAKER_01", "SPEAKER_02")


@dataclass(frozen=True)
class TrueWord:
    text: str
    start: float
    end: float
    speaker: str
    ends_sentence: bool


def conversation(rng: random.Random, duration_seconds: float, speaker_count: int) -> list[TrueWord]:
    words: list[TrueWord] = []
    clock = rng.uniform(0.2, 1.0)
    speaker = _SPEAKERS[0]
    while clock < duration_seconds:
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):  # sentences in this turn
            length = rng.choice((1, 2, 3)) if rng.random() < 0.25 else rng.randint(4, 16)
            previous = ""
            for position in range(length):
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
        others = [s for s in _SPEAKERS[:speaker_count] if s != speaker]
        speaker = rng.choice(others) if speaker_count > 2 and rng.random() < 0.3 else others[0]
        clock += rng.uniform(-0.15, 0.9)  # quick replies sometimes start a little early
        clock = max(clock, words[-1].end + 0.01)
    return words


def whisper_output(rng: random.Random, words: list[TrueWord], *, punctuated_words: bool) -> dict[str, Any]:
    """Segments cut on sentence ends by elapsed time, regardless of who speaks: many straddle a change."""
    segments: list[dict[str, Any]] = []
    current: list[TrueWord] = []
    target = rng.uniform(3.0, 10.0)
    for word in words:
        current.append(word)
        if word.ends_sentence and current[-1].end - current[0].start >= target:
            segments.append(_segment(rng, len(segments), current, punctuated_words))
            current, target = [], rng.uniform(3.0, 10.0)
    if current:
        segments.append(_segment(rng, len(segments), current, punctuated_words))
    return {
        "task": "transcribe",
        "language": "english",
        "duration": words[-1].end + 0.5,
        "text": " ".join(s["text"] for s in segments),
        "segments": segments,
    }


def _segment(rng: random.Random, index: int, words: list[TrueWord], punctuated: bool) -> dict[str, Any]:
    provider_words = []
    for word in words:
        text = word.text if punctuated else token_key(word.text)
        entry: dict[str, Any] = {"word": text}
        if rng.random() >= 0.05:  # 5 % of words come without timestamps
            entry["start"] = round(max(0.0, word.start + rng.gauss(0, 0.06)), 3)
            entry["end"] = round(max(entry["start"], word.end + rng.gauss(0, 0.06)), 3)
        provider_words.append(entry)
    return {
        "id": index,
        "start": round(max(0.0, words[0].start - rng.uniform(0.0, 0.3)), 3),
        "end": round(words[-1].end + rng.uniform(0.1, 0.6), 3),  # Whisper pads segment ends
        "text": " " + " ".join(word.text for word in words),
        "speaker": None,
        "words": provider_words,
    }


def diarization_output(rng: random.Random, words: list[TrueWord]) -> dict[str, Any]:
    turns: list[list[Any]] = []
    for word in words:
        if turns and turns[-1][0] == word.speaker and word.start - turns[-1][2] < 0.6:
            turns[-1][2] = word.end
        else:
            turns.append([word.speaker, word.start, word.end])
    noisy: list[list[Any]] = []
    speakers = sorted({turn[0] for turn in turns})
    for speaker, start, end in turns:
        if end - start < 0.8 and rng.random() < 0.3:
            continue  # short backchannels are often missed
        if rng.random() < 0.03:
            speaker = rng.choice(speakers)  # speaker confusion: a turn labelled as someone else
        start, end = start + rng.gauss(0, 0.25), end + rng.gauss(0, 0.25)
        if end - start < 0.1:
            continue
        if end - start > 4 and rng.random() < 0.08:  # over-segmentation: a spurious fragment speaker
            middle = rng.uniform(start + 1, end - 1.5)
            fragment_end = middle + rng.uniform(0.3, 1.0)
            noisy += [[speaker, start, middle], ["SPEAKER_09", middle, fragment_end], [speaker, fragment_end, end]]
        else:
            noisy.append([speaker, start, end])
    noisy.sort(key=lambda turn: turn[1])
    exclusive: list[list[Any]] = []
    for speaker, start, end in noisy:
        if exclusive and start < exclusive[-1][2]:
            exclusive[-1][2] = max(exclusive[-1][1], start)
        exclusive.append([speaker, start, end])
    as_json = [{"speaker": s, "start": round(a, 3), "end": round(b, 3)} for s, a, b in exclusive if b > a]
    return {"diarization": as_json, "exclusiveDiarization": as_json}


def baseline_attribution(raw: RawTranscript, diarization: Diarization) -> list[str]:
    """The reference's fallback: every word of a segment gets the speaker overlapping the segment most."""
    turns = diarization.turns_for_alignment
    speakers: list[str] = []
    for segment in raw.segments:
        overlap: dict[str, float] = {}
        for turn in turns:
            shared = min(segment.end, turn.end) - max(segment.start, turn.start)
            if shared > 0:
                overlap[turn.speaker] = overlap.get(turn.speaker, 0.0) + shared
        best = max(overlap, key=lambda s: overlap[s]) if overlap else ""
        speakers.extend([best] * len(segment.text.split()))
    return speakers


def accuracy(predicted: list[str | None], truth: list[TrueWord]) -> tuple[int, int]:
    if len(predicted) != len(truth):
        return 0, 0
    return sum(p == t.speaker for p, t in zip(predicted, truth, strict=True)), len(truth)


def measure_quality(calls: int, seed: int) -> tuple[dict[str, float], int]:
    """Accuracy per method and the number of calls compared (a call whose word count changed in
    normalization cannot be compared word for word and is left out of every method's figure)."""
    rng = random.Random(seed)
    totals = {"baseline": [0, 0], "aligned": [0, 0], "normalized": [0, 0]}
    compared = 0
    for call in range(calls):
        speaker_count = 3 if call % 10 == 0 else 2
        truth = conversation(rng, rng.uniform(60, 600), speaker_count)
        raw = RawTranscript.model_validate(whisper_output(rng, truth, punctuated_words=call % 2 == 0))
        diarization = Diarization.model_validate(diarization_output(rng, truth))
        results = {
            "baseline": accuracy(list(baseline_attribution(raw, diarization)), truth),
            "aligned": accuracy(_aligned_speakers(raw, diarization), truth),
            "normalized": accuracy(_normalized_speakers(raw, diarization), truth),
        }
        if any(total == 0 for _, total in results.values()):
            continue
        compared += 1
        for name, (correct, total) in results.items():
            totals[name][0] += correct
            totals[name][1] += total
    return {name: correct / total for name, (correct, total) in totals.items() if total}, compared


def _aligned_speakers(raw: RawTranscript, diarization: Diarization) -> list[str | None]:
    aligned = align(raw, diarization)
    return [word.speaker for segment in aligned.segments for word in segment.words]


def _normalized_speakers(raw: RawTranscript, diarization: Diarization) -> list[str | None]:
    transcript = normalize("bench", align(raw, diarization), provenance=_PROVENANCE, created_at=datetime.now(UTC))
    source = {speaker.speaker_id: speaker.source_speaker_id for speaker in transcript.speakers}
    return [source[segment.speaker_id] for segment in transcript.segments for _ in segment.text.split()]


def measure_speed(seed: int, repeats: int) -> tuple[int, int, float, float]:
    rng = random.Random(seed)
    truth = conversation(rng, 2 * 3600, 2)
    raw = RawTranscript.model_validate(whisper_output(rng, truth, punctuated_words=True))
    diarization = Diarization.model_validate(diarization_output(rng, truth))
    context = SpeakerContext("Praveen Kumar", "Ravi Shankar", "+1 555 123 4567", Direction.OUTGOING)
    timings = []
    transcript = None
    for _ in range(repeats):
        started = time.perf_counter()
        transcript = build_transcript(
            "bench", raw, diarization, context, None, provenance=_PROVENANCE, created_at=datetime.now(UTC)
        )
        timings.append(time.perf_counter() - started)
    assert transcript is not None
    return len(truth), len(transcript.segments), statistics.median(timings), min(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    quality, compared = measure_quality(args.calls, args.seed)
    words, segments, median, best = measure_speed(args.seed, args.repeats)
    print(
        f"date: {datetime.now(UTC).date().isoformat()}  machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    print(f"calls: {compared} of {args.calls} compared (seed {args.seed})")
    print("| attribution | words on the true speaker |")
    print("|---|---|")
    print(f"| segment-level max overlap (baseline) | {quality['baseline']:.2%} |")
    print(f"| align (word-level + sentence smoothing) | {quality['aligned']:.2%} |")
    print(f"| align + normalize (+ fragment absorption) | {quality['normalized']:.2%} |")
    print(
        f"two-hour call: {words} words -> {segments} segments; build_transcript median {median:.2f} s "
        f"(best {best:.2f} s of {args.repeats})"
    )


if __name__ == "__main__":
    main()
