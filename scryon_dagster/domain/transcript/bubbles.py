"""Bubbles: a speaker's turn split at sentence boundaries into pieces of at most ``BUBBLE_MAX_CHARS`` characters
(clauses, then words, then characters when a sentence alone is longer), contiguous in time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from scryon_dagster.domain.transcript.tokens import Token, ends_clause, ends_sentence, join_tokens, mean_confidence

BUBBLE_MAX_CHARS = 200

SpeakerKey = str | None
"""Who a piece belongs to before canonical ids exist: the provider's speaker id (or a stored speakerId)."""


@dataclass(frozen=True, slots=True)
class Bubble:
    speaker: SpeakerKey
    start: float
    end: float
    text: str
    confidence: float | None


def split_turn(speaker: SpeakerKey, start: float, end: float, tokens: list[Token]) -> list[Bubble]:
    """One speaker's turn as bubbles contiguous in time from ``start`` to ``end``, each boundary taken from
    the first word's own timestamp."""
    groups = _pack(_units(tokens))
    boundaries = [start]
    for group in groups[1:]:
        boundaries.append(min(max(group[0].start, boundaries[-1]), end))
    boundaries.append(end)
    rounded = [round(boundary, 3) for boundary in boundaries]
    return [
        Bubble(speaker, rounded[k], rounded[k + 1], join_tokens(group), mean_confidence(group))
        for k, group in enumerate(groups)
    ]


def _length(tokens: list[Token]) -> int:
    """``len(join_tokens(tokens))`` without building the text."""
    return sum(len(token.text) for token in tokens) + sum(token.space_before for token in tokens[1:])


def _units(tokens: list[Token]) -> list[list[Token]]:
    """Sentences, with any sentence too long for one bubble cut into clauses, words or characters."""
    units: list[list[Token]] = []
    for sentence in _split_after(tokens, ends_sentence):
        if _length(sentence) <= BUBBLE_MAX_CHARS:
            units.append(sentence)
            continue
        for clause in _split_after(sentence, ends_clause):
            if _length(clause) <= BUBBLE_MAX_CHARS:
                units.append(clause)
                continue
            for token in clause:
                units.extend([chunk] for chunk in _hard_split(token))
    return units


def _split_after(tokens: list[Token], is_end: Callable[[str], bool]) -> list[list[Token]]:
    parts: list[list[Token]] = [[]]
    for token in tokens:
        parts[-1].append(token)
        if is_end(token.text):
            parts.append([])
    return [part for part in parts if part]


def _hard_split(token: Token) -> list[Token]:
    """A token longer than a bubble (unspaced script) cut into bubble-sized chunks joined without spaces."""
    if len(token.text) <= BUBBLE_MAX_CHARS:
        return [token]
    chunks = [token.text[i : i + BUBBLE_MAX_CHARS] for i in range(0, len(token.text), BUBBLE_MAX_CHARS)]
    span = token.end - token.start
    result: list[Token] = []
    for index, chunk in enumerate(chunks):
        offset = index * BUBBLE_MAX_CHARS
        start = token.start + span * offset / len(token.text)
        end = token.start + span * (offset + len(chunk)) / len(token.text)
        result.append(Token(chunk, start, end, token.confidence, token.space_before if index == 0 else False))
    return result


def _pack(units: list[list[Token]]) -> list[list[Token]]:
    groups: list[list[Token]] = []
    length = 0
    for unit in units:
        unit_length = _length(unit)
        joiner = 1 if unit[0].space_before else 0
        if groups and length + joiner + unit_length <= BUBBLE_MAX_CHARS:
            groups[-1].extend(unit)
            length += joiner + unit_length
        else:
            groups.append(list(unit))
            length = unit_length
    return groups
