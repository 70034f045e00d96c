"""Timed conversations: who says which word when.

A script (lines of text per speaker) is laid out on a timeline at a natural speaking pace. The same
timeline drives the synthesized sample audio and every simulated provider output, so transcripts,
diarization and identification agree with the audio they describe. Audio the simulator does not
recognise gets a synthetic two-party conversation sized to its duration.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

LEAD_IN_SECONDS = 0.6
TAIL_SECONDS = 0.9
_SENTENCE_END = re.compile(r"[.?!]$")


@dataclass(frozen=True)
class Line:
    """One turn of a script: a speaker (0-based index) and what they say."""

    speaker: int
    text: str


@dataclass(frozen=True)
class TimedWord:
    text: str
    """The word as spoken, with its trailing punctuation."""
    start: float
    end: float

    @property
    def bare(self) -> str:
        """The word without surrounding punctuation, as Whisper reports words."""
        return self.text.strip(".,?!;:\"'")

    @property
    def ends_sentence(self) -> bool:
        return bool(_SENTENCE_END.search(self.text))


@dataclass(frozen=True)
class TimedTurn:
    speaker: int
    words: tuple[TimedWord, ...]

    @property
    def start(self) -> float:
        return self.words[0].start

    @property
    def end(self) -> float:
        return self.words[-1].end


@dataclass(frozen=True)
class Conversation:
    turns: tuple[TimedTurn, ...]
    duration: float
    user_speaker: int | None
    """The speaker who recorded the call (scores high against the user's voiceprint), if present."""

    @property
    def speaker_count(self) -> int:
        return len({turn.speaker for turn in self.turns})


def _word_seconds(word: str) -> float:
    letters = sum(character.isalnum() for character in word)
    return min(0.75, max(0.18, 0.12 + 0.055 * letters))


def _pause_after(word: str) -> float:
    if _SENTENCE_END.search(word):
        return 0.32
    if word.endswith((",", ";", ":")):
        return 0.2
    return 0.07


def lay_out(
    lines: Iterable[Line],
    *,
    seed: int,
    user_speaker: int | None,
    fit_within: float | None = None,
) -> Conversation:
    """Place the lines on a timeline, deterministically for a seed.

    With ``fit_within`` the conversation lasts exactly that many seconds: the first line that would
    not end (plus the tail silence) in time is cut after its last word that does, and nothing follows.
    """
    rng = random.Random(seed)
    cursor = LEAD_IN_SECONDS
    turns: list[TimedTurn] = []
    for line in lines:
        words: list[TimedWord] = []
        position = cursor
        for token in line.text.split():
            length = _word_seconds(token) * rng.uniform(0.9, 1.1)
            words.append(TimedWord(token, round(position, 3), round(position + length, 3)))
            position += length + _pause_after(token)
        if fit_within is not None and words and words[-1].end + TAIL_SECONDS > fit_within:
            # The recording ends mid-turn: keep what was said before the cut, then stop.
            spoken = tuple(word for word in words if word.end + TAIL_SECONDS <= fit_within)
            if spoken:
                turns.append(TimedTurn(line.speaker, spoken))
            break
        if not words:
            continue
        turns.append(TimedTurn(line.speaker, tuple(words)))
        cursor = words[-1].end + rng.uniform(0.45, 0.95)
    natural = round((turns[-1].end if turns else 0.0) + TAIL_SECONDS, 2)
    return Conversation(
        turns=tuple(turns),
        duration=fit_within if fit_within is not None else natural,
        user_speaker=user_speaker,
    )


_FILLER_SENTENCES = (
    "Thanks for getting back to me so quickly.",
    "I wanted to go over the schedule for next week.",
    "That sounds reasonable to me.",
    "Could you send me the updated document afterwards?",
    "Sure, I can do that later today.",
    "We still need to confirm the delivery window.",
    "Let me check the details and get back to you.",
    "The first draft is almost ready.",
    "Does the afternoon work better for you?",
    "I think we covered the main points.",
    "There is one more question about the budget.",
    "We can revisit that at the next meeting.",
    "Okay, that makes sense.",
    "I will update the team after this call.",
    "Please let me know if anything changes.",
    "Right, good point.",
    "The numbers look better than last month.",
    "I agree, let's keep it simple.",
)


def _synthetic_lines(rng: random.Random) -> Iterator[Line]:
    speaker = 0
    while True:
        sentences = rng.sample(_FILLER_SENTENCES, rng.choice((1, 1, 2, 2, 3)))
        yield Line(speaker, " ".join(sentences))
        speaker = 1 - speaker


@functools.lru_cache(maxsize=256)
def synthetic_conversation(duration_seconds: float) -> Conversation:
    """A neutral two-party conversation (no names, no numbers) filling ``duration_seconds``.

    Seeded by the duration, so the same audio always gets the same conversation; very short audio
    gets an empty one.
    """
    seed = round(duration_seconds * 100)
    return lay_out(
        _synthetic_lines(random.Random(seed)),
        seed=seed,
        user_speaker=0,
        fit_within=duration_seconds,
    )
