"""Token-level cleanup of Whisper artefacts: non-speech tags, stutters and phrase loops.

Both functions take and return token lists and are idempotent (they run to a fixed point).

Non-speech tags removed:
* anything in square brackets: ``[MUSIC]``, ``[BLANK_AUDIO]``, ``[ inaudible ]`` (Whisper never brackets speech);
* short parentheticals without digits: ``(laughs)``, ``(upbeat music)`` — at most four words, so a real
  parenthetical remark survives, and never one with digits, so ``(555)`` stays for the phone masker;
* ``*laughs*``-style asterisk actions, music notes ``♪`` and everything sung between two of them,
  and caption speaker-change markers ``>>``.

Repetitions collapsed (comparing tokens case- and punctuation-insensitively):
* a word said three or more times in a row ("the the the" → "the"), or twice when it is a word that is
  never doubled in grammatical speech ("the the", "I I");
* a phrase of two or three words repeated three or more times in a row, or a phrase of four to eight
  words repeated twice in a row (Whisper decoding loops).
The first copy is kept; it takes the end time of the last copy and its closing punctuation (or keeps its
own when the last copy has none), so sentence boundaries and time coverage survive.
"""

from __future__ import annotations

import re
from itertools import compress
from operator import eq

from scryon_dagster.domain.transcript.phone import MASK
from scryon_dagster.domain.transcript.tokens import Token, token_key, trailing_punctuation

_MAX_PARENTHETICAL_WORDS = 4
_MAX_ASTERISK_WORDS = 4
_MAX_BRACKET_WORDS = 12
_MAX_LOOP_PHRASE_WORDS = 8
_SHORT_PHRASE_MIN_REPEATS = 3
_LONG_PHRASE_MIN_WORDS = 4
_NEVER_DOUBLED = frozenset({"the", "a", "an", "i", "my", "your", "our", "and", "of", "to"})

_MUSIC = re.compile(r"[♪♫♬🎵🎶]")
_INLINE_TAGS = re.compile(r"\[[^\[\]]*\]|\([^()\d]*\)|\*[^*\d]+\*")
_CAPTION_MARKERS = frozenset({">>"})
# Every non-speech tag contains one of these: text without any has nothing to strip.
_NON_SPEECH_MARK = re.compile(r"[\[\]()*♪♫♬🎵🎶]|>>")


def strip_non_speech(tokens: list[Token]) -> list[Token]:
    if not _NON_SPEECH_MARK.search("\n".join(token.text for token in tokens)):
        return tokens  # the common case, decided in one scan
    current = tokens
    while True:
        cleaned = _strip_spans(_strip_inline(current))
        if len(cleaned) == len(current) and all(a.text == b.text for a, b in zip(cleaned, current, strict=True)):
            return cleaned
        current = cleaned


def _strip_inline(tokens: list[Token]) -> list[Token]:
    result: list[Token] = []
    for token in tokens:
        text = _INLINE_TAGS.sub("", token.text)
        if text in _CAPTION_MARKERS:
            continue
        if text == token.text:
            result.append(token)
        elif token_key(text) or _MUSIC.search(text):
            result.append(Token(text, token.start, token.end, token.confidence, token.space_before))
        elif text.strip() and result and _is_punctuation(text):
            # "hello[MUSIC]." keeps its period on the previous word
            previous = result[-1]
            result[-1] = Token(
                previous.text + text, previous.start, previous.end, previous.confidence, previous.space_before
            )
    return result


def _is_punctuation(text: str) -> bool:
    return not token_key(text) and not _MUSIC.search(text) and text != MASK


def _strip_spans(tokens: list[Token]) -> list[Token]:
    result: list[Token] = []
    index = 0
    while index < len(tokens):
        span_end = _span_end(tokens, index)
        if span_end is None:
            result.append(tokens[index])
            index += 1
        else:
            index = span_end
    return result


def _span_end(tokens: list[Token], index: int) -> int | None:
    """End (exclusive) of a non-speech span opening at ``index``, or None if none opens there."""
    text = tokens[index].text
    if _MUSIC.search(text):
        # Everything up to and including the next note is sung; a lone note is just removed.
        for end in range(index + 1, len(tokens)):
            if _MUSIC.search(tokens[end].text):
                return end + 1
        return index + 1
    for opener, closer, limit, allow_digits in (
        ("[", "]", _MAX_BRACKET_WORDS, True),
        ("(", ")", _MAX_PARENTHETICAL_WORDS, False),
        ("*", "*", _MAX_ASTERISK_WORDS, False),
    ):
        if not text.startswith(opener):
            continue
        for end in range(index, min(len(tokens), index + limit)):
            candidate = tokens[end].text
            if not allow_digits and any(ch.isdigit() for ch in candidate):
                return None
            body = candidate[1:] if end == index else candidate
            if body.rstrip(",.;:!?").endswith(closer):
                return end + 1
        return None
    return None


def collapse_repetitions(tokens: list[Token]) -> list[Token]:
    current = tokens
    while True:
        collapsed = _collapse_once(current)
        if len(collapsed) == len(current):
            return collapsed
        current = collapsed


def _collapse_once(tokens: list[Token]) -> list[Token]:
    keys = [token.key or token.text for token in tokens]
    candidates = _possible_loop_starts(keys)
    if not candidates:
        return tokens
    result: list[Token] = []
    index = 0
    for candidate in candidates:
        if candidate < index:
            continue
        width, repeats = _loop_at(keys, candidate)
        if repeats <= 1:
            continue
        kept = tokens[candidate : candidate + width]
        last = tokens[candidate + width * repeats - 1]
        result.extend(tokens[index:candidate])
        result.extend([*kept[:-1], _closing_copy(kept[-1], last)])
        index = candidate + width * repeats
    if index == 0:
        return tokens
    result.extend(tokens[index:])
    return result


def _possible_loop_starts(keys: list[str]) -> list[int]:
    """Positions whose word comes back within a loop's width: the only places a loop can start."""
    starts: set[int] = set()
    for width in range(1, _MAX_LOOP_PHRASE_WORDS + 1):
        starts.update(compress(range(len(keys)), map(eq, keys, keys[width:])))
    return sorted(starts)


def _closing_copy(kept: Token, last: Token) -> Token:
    """The kept copy's last token, ending where the loop ended and with its closing punctuation."""
    own = trailing_punctuation(kept.text)
    closing = trailing_punctuation(last.text) or own
    bare = kept.text[: len(kept.text) - len(own)]
    text = bare + closing if bare else kept.text
    return Token(text, kept.start, max(kept.end, last.end), kept.confidence, kept.space_before)


def _loop_at(keys: list[str], index: int) -> tuple[int, int]:
    """(phrase width, repeat count) of the longest-covering collapsible loop starting at ``index``."""
    best = (1, 1)
    first = keys[index]
    for width in range(1, _MAX_LOOP_PHRASE_WORDS + 1):
        if index + 2 * width > len(keys):
            break
        if keys[index + width] != first:  # a repeat of this width would start with the same word
            continue
        phrase = keys[index : index + width]
        repeats = 1
        while keys[index + repeats * width : index + (repeats + 1) * width] == phrase:
            repeats += 1
        if repeats > 1 and _collapsible(phrase, repeats) and width * repeats > best[0] * best[1]:
            best = (width, repeats)
    return best


def _collapsible(phrase: list[str], repeats: int) -> bool:
    width = len(phrase)
    if width == 1:
        return repeats >= _SHORT_PHRASE_MIN_REPEATS or phrase[0] in _NEVER_DOUBLED
    if width < _LONG_PHRASE_MIN_WORDS:
        return repeats >= _SHORT_PHRASE_MIN_REPEATS
    return True
