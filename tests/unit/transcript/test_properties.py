"""Properties of alignment + normalization + naming over generated calls."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from scryon_dagster.domain.calls import Direction
from scryon_dagster.domain.provider_outputs import Diarization, RawTranscript
from scryon_dagster.domain.transcript import (
    NormalizedTranscript,
    Role,
    SpeakerContext,
    align,
    normalize,
    renormalize,
    resolve_speakers,
)
from scryon_dagster.domain.transcript.bubbles import BUBBLE_MAX_CHARS
from scryon_dagster.domain.transcript.tokens import token_key
from tests.unit.transcript.builders import CALL_ID, CREATED_AT, PROVENANCE

SETTINGS = settings(max_examples=150, deadline=None)
SPEAKERS = ("SPEAKER_00", "SPEAKER_01", "SPEAKER_02")
# A run of digits, possibly with phone separators between them ("555-123 4567").
DIGIT_RUN = re.compile(r"\d(?:[\s().\-]*\d)*")


@dataclass(frozen=True)
class GeneratedCall:
    raw: RawTranscript
    diarization: Diarization | None
    words: list[str]
    """Every spoken token, in time order."""
    phones: list[str]
    """Digits of every phone number spoken."""


def word_text(index: int) -> str:
    """A unique, letters-only token ("zqab") that no cleanup or name rule can mistake for anything."""
    letters = ""
    index += 26
    while index:
        index, remainder = divmod(index, 26)
        letters = string.ascii_lowercase[remainder] + letters
    return "zq" + letters


PHONE_FORMATS = (
    lambda d: [f"{d[:3]}-{d[3:6]}-{d[6:]}"],
    lambda d: [f"({d[:3]})", d[3:6], d[6:]],
    lambda d: [d],
    lambda d: [f"+1 {d[:3]}".split()[0], d[:3], f"{d[3:6]}.{d[6:]}"],
)


# Whisper's habits: stutters, loops, tags, filler — drawn from a tiny vocabulary so repetitions happen.
NOISY_WORDS = ("the", "the", "I", "okay", "okay.", "thank", "you.", "yes?", "[MUSIC]", "(laughs)", "♪", "...", "uh")


@st.composite
def calls(draw: st.DrawFn, *, phones: bool = False, noisy: bool = False) -> GeneratedCall:
    speaker_count = draw(st.integers(1, 3))
    utterances = draw(st.integers(1, 10))
    tokens: list[tuple[str, str, bool]] = []  # (text, speaker, is_word)
    phone_digits: list[str] = []
    for _ in range(utterances):
        speaker = draw(st.sampled_from(SPEAKERS[:speaker_count]))
        for _ in range(draw(st.integers(1, 20))):
            if phones and draw(st.integers(0, 9)) == 0:
                digits = draw(st.text("0123456789", min_size=10, max_size=10))
                phone_digits.append(digits)
                formatter = draw(st.sampled_from(PHONE_FORMATS))
                tokens.extend((part, speaker, False) for part in formatter(digits))
                continue
            if noisy and draw(st.booleans()):
                tokens.append((draw(st.sampled_from(NOISY_WORDS)), speaker, False))
                continue
            punctuation = draw(st.sampled_from(["", "", "", ",", ".", "?"]))
            tokens.append((word_text(len(tokens)) + punctuation, speaker, True))
        last_text, last_speaker, last_is_word = tokens[-1]
        if last_is_word and not last_text.endswith((".", "?")):
            tokens[-1] = (last_text + ".", last_speaker, True)

    spans = draw(st.lists(st.floats(0.05, 0.8), min_size=len(tokens), max_size=len(tokens)))
    pauses = draw(st.lists(st.floats(0.0, 4.0), min_size=len(tokens), max_size=len(tokens)))
    times: list[tuple[float, float]] = []
    clock = 0.0
    for span, pause in zip(spans, pauses, strict=True):
        times.append((round(clock, 3), round(clock + span, 3)))
        clock += span + (pause if pause > 3.0 else pause / 20)
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(tokens) - 1)), max_size=len(tokens) // 3)))
    untimed = draw(st.sets(st.integers(0, len(tokens) - 1), max_size=len(tokens) // 4))

    segments: list[dict[str, Any]] = []
    for start, end in pairwise([0, *[c for c in cuts if 0 < c < len(tokens)], len(tokens)]):
        chunk = range(start, end)
        if not chunk:
            continue
        words = []
        for i in chunk:
            word: dict[str, Any] = {"word": tokens[i][0]}
            if i not in untimed:
                word["start"], word["end"] = times[i]
            words.append(word)
        segments.append(
            {
                "start": times[start][0],
                "end": times[end - 1][1],
                "text": " " + " ".join(tokens[i][0] for i in chunk),
                "speaker": tokens[start][1],
                "words": words,
            }
        )
    diarization = None
    if draw(st.booleans()):
        turns = [{"speaker": tokens[i][1], "start": times[i][0], "end": times[i][1]} for i in range(len(tokens))]
        diarization = Diarization.model_validate({"diarization": turns, "exclusiveDiarization": turns})
    emit_twice = noisy and bool(segments) and draw(st.booleans())
    if emit_twice:
        repeated = draw(st.integers(0, len(segments) - 1))
        segments.insert(repeated + 1, dict(segments[repeated]))  # Whisper emitted a segment twice
    raw = RawTranscript.model_validate({"language": "en", "segments": segments})
    return GeneratedCall(raw, diarization, [text for text, _, is_word in tokens if is_word], phone_digits)


def normalized(call: GeneratedCall) -> NormalizedTranscript:
    return normalize(CALL_ID, align(call.raw, call.diarization), provenance=PROVENANCE, created_at=CREATED_AT)


@SETTINGS
@given(st.booleans().flatmap(lambda noisy: calls(noisy=noisy)))
def test_normalization_is_deterministic(call: GeneratedCall) -> None:
    assert normalized(call) == normalized(call)


@SETTINGS
@given(calls())
def test_every_word_appears_in_exactly_one_segment_in_order(call: GeneratedCall) -> None:
    transcript = normalized(call)

    output = [token_key(word) for segment in transcript.segments for word in segment.text.split()]
    assert output == [token_key(word) for word in call.words]


@SETTINGS
@given(st.booleans().flatmap(lambda noisy: calls(noisy=noisy)))
def test_segments_are_ordered_non_overlapping_and_bounded(call: GeneratedCall) -> None:
    transcript = normalized(call)

    for segment in transcript.segments:
        assert 0 <= segment.start_seconds <= segment.end_seconds
        assert 0 < len(segment.text) <= BUBBLE_MAX_CHARS
        assert segment.text == segment.text.strip()
    for earlier, later in pairwise(transcript.segments):
        assert earlier.end_seconds <= later.start_seconds
    assert [segment.id for segment in transcript.segments] == [
        f"seg_{n:04d}" for n in range(1, len(transcript.segments) + 1)
    ]


@SETTINGS
@given(calls())
def test_speaker_ids_follow_first_appearance(call: GeneratedCall) -> None:
    transcript = normalized(call)

    first_seen = list(dict.fromkeys(segment.speaker_id for segment in transcript.segments))
    assert first_seen == [f"spk_{n}" for n in range(1, len(first_seen) + 1)]
    assert [speaker.speaker_id for speaker in transcript.speakers] == first_seen
    assert [speaker.label for speaker in transcript.speakers] == [f"Speaker {n}" for n in range(1, len(first_seen) + 1)]


@SETTINGS
@given(st.booleans().flatmap(lambda noisy: calls(phones=True, noisy=noisy)))
def test_normalizing_a_normalized_transcript_changes_nothing(call: GeneratedCall) -> None:
    transcript = normalized(call)

    assert renormalize(transcript) == transcript
    reparsed = NormalizedTranscript.parse(transcript.to_json_bytes())
    assert renormalize(reparsed) == transcript


@SETTINGS
@given(calls(phones=True))
def test_no_phone_number_shows_more_than_four_digits(call: GeneratedCall) -> None:
    transcript = normalized(call)

    for text in (transcript.clean_text, *(segment.text for segment in transcript.segments)):
        for run in DIGIT_RUN.findall(text):
            assert sum(ch.isdigit() for ch in run) <= 4, "a phone-number digit run survived"
    for digits in call.phones:
        assert digits[:5] not in transcript.clean_text.replace(" ", "")


@SETTINGS
@given(
    calls(phones=True),
    st.sampled_from(list(Direction)),
    st.sampled_from([None, "Praveen Kumar"]),
    st.sampled_from([None, "Ravi"]),
    st.sampled_from([None, "+1 (555) 010-4477"]),
)
def test_naming_is_deterministic_idempotent_and_keeps_the_hard_rules(
    call: GeneratedCall, direction: Direction, user: str | None, contact: str | None, phone: str | None
) -> None:
    context = SpeakerContext(user, contact, phone, direction)
    transcript = resolve_speakers(normalized(call), context, None)

    assert resolve_speakers(transcript, context, None) == transcript
    assert sum(speaker.role is Role.USER for speaker in transcript.speakers) <= 1
    for speaker in transcript.speakers:
        # generated words carry no names: only metadata or the phone fallback may label anyone
        assert speaker.display_name in (None, user, contact)
        assert len(re.sub(r"\D", "", speaker.label)) <= 4
    if direction is Direction.UNKNOWN:
        assert all(speaker.role is Role.UNKNOWN for speaker in transcript.speakers)
