"""Timed tokens: the unit every alignment and normalization step works on.

A token is one whitespace-delimited piece of transcript text with its time span, the confidence of its
speaker attribution, and whether a space precedes it when text is rebuilt (only chunks of an over-long
token, e.g. unspaced CJK text cut to fit a bubble, are joined without one).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

# A sentence ends at terminal punctuation, optionally followed by closing quotes or brackets.
# Fullwidth, CJK and Devanagari marks are written as escapes (ideographic full stop, fullwidth ! ?, danda).
_CLOSERS = "'\"\u201d\u2019)\\]"
_SENTENCE_END = re.compile("[.!?\u2026\u3002\uff01\uff1f\u0964\u0965][" + _CLOSERS + "]*$")
_CLAUSE_END = re.compile("[,;:\u2014\u2013\u3001\uff0c\uff1b\uff1a][" + _CLOSERS + "]*$")
_TRAILING_PUNCTUATION = re.compile(r"[^\w•]+$")


@dataclass(slots=True)
class Token:
    text: str
    start: float
    end: float
    confidence: float | None = None
    space_before: bool = True

    @property
    def key(self) -> str:
        return token_key(self.text)


@lru_cache(maxsize=65536)
def token_key(text: str) -> str:
    """Case- and punctuation-insensitive identity of a token ("Hello," and "hello" compare equal).

    Letters, combining marks and digits are kept (marks matter: Devanagari vowel signs are marks)."""
    return "".join(ch for ch in text.casefold() if unicodedata.category(ch)[0] in "LMN")


def ends_sentence(text: str) -> bool:
    return _SENTENCE_END.search(text) is not None


def ends_clause(text: str) -> bool:
    return _CLAUSE_END.search(text) is not None


def trailing_punctuation(text: str) -> str:
    match = _TRAILING_PUNCTUATION.search(text)
    return match.group(0) if match else ""


def split_text(text: str) -> list[str]:
    return text.split()


def join_tokens(tokens: list[Token]) -> str:
    parts: list[str] = []
    for index, token in enumerate(tokens):
        if index and token.space_before:
            parts.append(" ")
        parts.append(token.text)
    return "".join(parts)


def interpolate_tokens(texts: list[str], start: float, end: float, confidence: float | None) -> list[Token]:
    """Tokens spread over [start, end] in proportion to their length; the first starts at ``start`` and the
    last ends at ``end`` exactly, so re-deriving tokens from a segment reproduces its boundaries."""
    if not texts:
        return []
    end = max(end, start)
    weights = [len(text) + 1 for text in texts]
    total = sum(weights)
    span = end - start
    tokens: list[Token] = []
    consumed = 0
    for index, (text, weight) in enumerate(zip(texts, weights, strict=True)):
        token_start = start + span * consumed / total
        consumed += weight
        token_end = end if index == len(texts) - 1 else start + span * consumed / total
        tokens.append(Token(text=text, start=token_start, end=token_end, confidence=confidence))
    return tokens


def mean_confidence(tokens: list[Token]) -> float | None:
    values = [token.confidence for token in tokens if token.confidence is not None]
    if not values:
        return None
    return round(sum(values) / len(values), 3)
