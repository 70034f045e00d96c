"""Provider outputs derived from a timed conversation, in the providers' documented shapes.

Imperfections real providers show are reproduced on purpose, deterministically per seed: Whisper
segments that straddle a speaker change, word times that wander a few hundredths, the odd word
without timestamps, diarization boundaries that overlap a little and a short spurious "fragment"
speaker when the speaker count is not capped.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scryon_dagster.simulator.conversation import Conversation, TimedWord

_LANGUAGE_NAMES = {"en": "english", "de": "german", "fr": "french", "es": "spanish", "it": "italian"}
_MAX_SEGMENT_WORDS = 14


def _rng(seed: int, kind: str, conversation: Conversation) -> random.Random:
    return random.Random(f"{seed}:{kind}:{round(conversation.duration * 100)}")


def _sentences(words: Sequence[TimedWord]) -> list[list[TimedWord]]:
    sentences: list[list[TimedWord]] = [[]]
    for word in words:
        sentences[-1].append(word)
        if word.ends_sentence:
            sentences.append([])
    return [sentence for sentence in sentences if sentence]


def _speaker_labels(order: Sequence[int], max_speakers: int | None) -> dict[int, str]:
    """SPEAKER_00.. in order of first appearance; speakers beyond the cap share the last label."""
    labels: dict[int, str] = {}
    for speaker in order:
        if speaker not in labels:
            index = len(labels)
            if max_speakers is not None:
                index = min(index, max_speakers - 1)
            labels[speaker] = f"SPEAKER_{index:02d}"
    return labels


def render_transcript(
    conversation: Conversation,
    *,
    speaker_labels: bool,
    word_timestamps: bool,
    language: str | None,
    max_speakers: int | None,
    seed: int,
) -> dict[str, Any]:
    """Lemonfox ``verbose_json``: segments (with words when asked for) and top-level words."""
    rng = _rng(seed, "transcript", conversation)
    per_turn = [
        [[(word, turn.speaker) for word in sentence] for sentence in _sentences(turn.words)]
        for turn in conversation.turns
    ]
    for index in range(len(per_turn) - 1):
        following = per_turn[index + 1]
        gap = conversation.turns[index + 1].start - conversation.turns[index].end
        # Whisper cuts at pauses, not at speaker changes: a quick short reply joins the segment before it.
        if len(following) > 1 and len(following[0]) <= 4 and gap < 1.2 and rng.random() < 0.35:
            per_turn[index][-1] = per_turn[index][-1] + following.pop(0)
    chunks: list[list[tuple[TimedWord, int]]] = []
    for sentences in per_turn:
        current: list[tuple[TimedWord, int]] = []
        for sentence in sentences:
            if current and len(current) + len(sentence) > _MAX_SEGMENT_WORDS:
                chunks.append(current)
                current = []
            current = current + sentence
        if current:
            chunks.append(current)
    labels = _speaker_labels([turn.speaker for turn in conversation.turns], max_speakers)
    segments, all_words = [], []
    for number, chunk in enumerate(chunks):
        speaker = Counter(speaker for _, speaker in chunk).most_common(1)[0][0]
        words = [_word_entry(word, rng) for word, _ in chunk if word.bare]
        start, end = round(chunk[0][0].start, 2), round(chunk[-1][0].end, 2)
        segment: dict[str, Any] = {
            "id": number,
            "seek": int(start * 100),
            "start": start,
            "end": end,
            "text": " " + " ".join(word.text for word, _ in chunk),
            "temperature": 0.0,
            "avg_logprob": round(-rng.uniform(0.12, 0.45), 4),
            "compression_ratio": round(rng.uniform(1.2, 1.7), 4),
            "no_speech_prob": round(rng.uniform(0.0, 0.05), 4),
            "speaker": labels[speaker] if speaker_labels else None,
        }
        if word_timestamps:
            segment["words"] = words
            all_words.extend(words)
        segments.append(segment)
    transcript: dict[str, Any] = {
        "task": "transcribe",
        "language": _LANGUAGE_NAMES.get(language or "en", language),
        "duration": round(conversation.duration, 2),
        "text": "".join(segment["text"] for segment in segments).strip(),
        "segments": segments,
    }
    if word_timestamps:
        transcript["words"] = all_words
    return transcript


def _word_entry(word: TimedWord, rng: random.Random) -> dict[str, Any]:
    if rng.random() < 0.03:
        return {"word": word.bare}
    start = max(0.0, word.start + rng.uniform(-0.04, 0.04))
    end = max(start + 0.02, word.end + rng.uniform(-0.04, 0.04))
    return {"word": word.bare, "start": round(start, 2), "end": round(end, 2)}


@dataclass(frozen=True)
class _Turn:
    speaker: int
    start: float
    end: float


def _diarized_turns(
    conversation: Conversation, *, max_speakers: int | None, seed: int
) -> tuple[list[_Turn], dict[int, str]]:
    rng = _rng(seed, "diarization", conversation)
    turns = [
        _Turn(
            turn.speaker,
            max(0.0, turn.start + rng.uniform(-0.12, 0.08)),
            min(conversation.duration, turn.end + rng.uniform(-0.05, 0.25)),
        )
        for turn in conversation.turns
    ]
    long_turns = [turn for turn in turns if turn.end - turn.start > 3.0]
    uncapped = max_speakers is None or conversation.speaker_count < max_speakers
    # Over-segmentation: a breath or line noise inside a long turn becomes a short extra speaker.
    if uncapped and long_turns and rng.random() < 0.7:
        host = rng.choice(long_turns)
        start = rng.uniform(host.start + 0.3, host.end - 1.0)
        turns.append(_Turn(conversation.speaker_count, start, start + rng.uniform(0.25, 0.6)))
    turns.sort(key=lambda turn: turn.start)
    return turns, _speaker_labels([turn.speaker for turn in turns], max_speakers)


def _turn_dicts(turns: Sequence[_Turn], labels: dict[int, str]) -> list[dict[str, Any]]:
    return [
        {"speaker": labels[turn.speaker], "start": round(turn.start, 3), "end": round(turn.end, 3)} for turn in turns
    ]


def _exclusive(turns: Sequence[_Turn]) -> list[_Turn]:
    """No overlaps: wherever turns overlap, the one that started last is the one speaking."""
    boundaries = sorted({point for turn in turns for point in (turn.start, turn.end)})
    result: list[_Turn] = []
    for start, end in itertools.pairwise(boundaries):
        active = [turn for turn in turns if turn.start <= start and turn.end >= end]
        if not active:
            continue
        speaker = max(active, key=lambda turn: turn.start).speaker
        if result and result[-1].speaker == speaker and abs(result[-1].end - start) < 1e-9:
            result[-1] = _Turn(speaker, result[-1].start, end)
        else:
            result.append(_Turn(speaker, start, end))
    return result


def render_diarization(
    conversation: Conversation, *, max_speakers: int | None, exclusive: bool, seed: int
) -> dict[str, Any]:
    """pyannoteAI diarization job output (``exclusiveDiarization`` only when asked for)."""
    turns, labels = _diarized_turns(conversation, max_speakers=max_speakers, seed=seed)
    output: dict[str, Any] = {"diarization": _turn_dicts(turns, labels)}
    if exclusive:
        output["exclusiveDiarization"] = _turn_dicts(_exclusive(turns), labels)
    return output


def render_identification(
    conversation: Conversation,
    *,
    voiceprint_labels: Sequence[str],
    max_speakers: int | None,
    threshold: float,
    seed: int,
) -> dict[str, Any]:
    """pyannoteAI identify job output; the recording user's voice scores high against the first
    voiceprint, everything else low. Matching is exclusive: each label goes to at most one speaker."""
    turns, labels = _diarized_turns(conversation, max_speakers=max_speakers, seed=seed)
    rng = _rng(seed, "identify", conversation)
    user_label = labels.get(conversation.user_speaker) if conversation.user_speaker is not None else None
    diarized = sorted(set(labels.values()))
    confidence = {
        speaker: {
            label: rng.randint(78, 95) if index == 0 and speaker == user_label else rng.randint(4, 38)
            for index, label in enumerate(voiceprint_labels)
        }
        for speaker in diarized
    }
    matches: dict[str, str] = {}
    pairs = sorted(
        ((score, speaker, label) for speaker, scores in confidence.items() for label, score in scores.items()),
        reverse=True,
    )
    for score, speaker, label in pairs:
        if score >= threshold and speaker not in matches and label not in matches.values():
            matches[speaker] = label
    exclusive_turns = _exclusive(turns)
    return {
        "diarization": _turn_dicts(turns, labels),
        "identification": [
            {
                "speaker": matches.get(labels[turn.speaker], labels[turn.speaker]),
                "start": round(turn.start, 3),
                "end": round(turn.end, 3),
                "diarizationSpeaker": labels[turn.speaker],
                "match": matches.get(labels[turn.speaker]),
            }
            for turn in exclusive_turns
        ],
        "voiceprints": [
            {"speaker": speaker, "match": matches.get(speaker), "confidence": confidence[speaker]}
            for speaker in diarized
        ],
    }


def render_voiceprint(conversation: Conversation, *, seed: int) -> dict[str, Any]:
    """An opaque voiceprint blob, stable for the same audio."""
    material = b""
    block = f"{seed}:voiceprint:{round(conversation.duration * 100)}".encode()
    while len(material) < 256:
        block = hashlib.sha256(block).digest()
        material += block
    return {"voiceprint": base64.b64encode(material).decode()}
