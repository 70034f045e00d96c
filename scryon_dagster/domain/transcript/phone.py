"""Phone-number masking: no transcript ever shows more than the last four digits of a phone number.

A phone-number-like run is a sequence of consecutive tokens that each contribute digits, spelled out or
written ("555-123-4567", "(555) 123 4567", "+91 98450 12345", "nine eight double four five ..."), with
hesitations ("uh", "um") allowed between them, totalling at least seven digits. Such a run is replaced by
two tokens, ``•••• 4567``: a mask and the run's last four digits. Money ("$5,000,000"), a lone decimal
("3.1415926"), times ("10:30") and dates written with slashes are not digit runs. The mask pair is recognised on a
second pass, so masking is idempotent, and it breaks runs, so its four digits never join a neighbour.
"""

from __future__ import annotations

import re
from enum import Enum, auto
from functools import lru_cache

from scryon_dagster.domain.transcript.tokens import Token, token_key

MASK = "••••"
MIN_PHONE_DIGITS = 7
VISIBLE_DIGITS = 4

# Optional opening bracket or plus, then digits with phone separators, then trailing punctuation.
_WRITTEN_DIGITS = re.compile(r"^[(\[]?\+?[\d().\-]*\d[\d().\-]*[)\]]?[,.;:!?]*$")
_DECIMAL = re.compile(r"^\d+\.\d+[,.;:!?]*$")
_CLOSING_PUNCTUATION = re.compile(r"[,.;:!?]+$")
_VISIBLE_PART = re.compile(r"\d{1,4}[,.;:!?]*")
_SPOKEN_DIGITS = {
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}
# "oh" reads as zero only inside a run that already has digits ("five oh five"), never on its own.
_OH = "oh"
_REPEATERS = {"double": 2, "triple": 3}
_HESITATIONS = frozenset({"uh", "um", "umm", "er", "erm", "ah", "hmm", "hm"})


class _Kind(Enum):
    """What a token can be in a digit run; decided once per distinct text (see ``_kind``)."""

    MASK = auto()
    DIGITS = auto()
    OH = auto()
    REPEATER = auto()
    HESITATION = auto()
    OTHER = auto()


def last_four_digits(phone_number: str | None) -> str | None:
    digits = "".join(ch for ch in phone_number or "" if ch.isdigit())
    return digits[-VISIBLE_DIGITS:] if len(digits) >= VISIBLE_DIGITS else None


def mask_phone_numbers(pieces: list[list[Token]]) -> list[list[Token]]:
    """Mask every phone-number-like run in the concatenated token stream of ``pieces``.

    Returns new lists (the tokens of untouched pieces are shared). The mask token takes the place of the
    run's first token and the visible digits the place of its last, so a run spanning two pieces leaves
    ``••••`` at the end of one and the four digits at the start of the next.
    """
    stream = [token for tokens in pieces for token in tokens]
    kinds = [_kind(token.text) for token in stream]
    replacements: dict[int, list[Token]] = {}
    position = 0
    while position < len(stream):
        kind = kinds[position][0]
        if kind is _Kind.MASK:
            position += _masked_pair_length(stream, position)
            continue
        if kind is not _Kind.DIGITS and kind is not _Kind.REPEATER:  # no run can start here: the common case
            position += 1
            continue
        run_end, digits = _digit_run(kinds, position)
        if len(digits) >= MIN_PHONE_DIGITS and not _is_lone_decimal(stream, position, run_end):
            _replace_run(stream, position, run_end, digits, replacements)
            position = run_end
        else:
            position = max(run_end, position + 1)
    if not replacements:
        return pieces
    result: list[list[Token]] = []
    offset = 0
    for tokens in pieces:
        piece_end = offset + len(tokens)
        if not any(offset <= position < piece_end for position in replacements):
            result.append(tokens)
        else:
            rebuilt: list[Token] = []
            for position in range(offset, piece_end):
                rebuilt.extend(replacements.get(position, [stream[position]]))
            result.append(rebuilt)
        offset = piece_end
    return result


@lru_cache(maxsize=65536)
def _kind(text: str) -> tuple[_Kind, str, int]:
    """(kind, digits written or spoken, repeat count of "double"/"triple")."""
    if text == MASK:
        return _Kind.MASK, "", 0
    if _WRITTEN_DIGITS.match(text):
        return _Kind.DIGITS, "".join(ch for ch in text if ch.isdigit()), 0
    key = token_key(text)
    if key in _SPOKEN_DIGITS:
        return _Kind.DIGITS, _SPOKEN_DIGITS[key], 0
    if key == _OH:
        return _Kind.OH, "0", 0
    if key in _REPEATERS:
        return _Kind.REPEATER, "", _REPEATERS[key]
    if key in _HESITATIONS:
        return _Kind.HESITATION, "", 0
    return _Kind.OTHER, "", 0


def _masked_pair_length(stream: list[Token], position: int) -> int:
    if position + 1 < len(stream) and _VISIBLE_PART.fullmatch(stream[position + 1].text):
        return 2
    return 1


def _digit_run(kinds: list[tuple[_Kind, str, int]], start: int) -> tuple[int, str]:
    """End (exclusive) of the digit run starting at ``start`` and its digits; end == start if none."""
    digits: list[str] = []
    position = start
    run_end = start
    pending_repeat = 1
    while position < len(kinds):
        kind, contributed, repeat = kinds[position]
        if kind is _Kind.DIGITS or (kind is _Kind.OH and digits):  # "oh" is zero only after digits
            digits.append(contributed * pending_repeat if len(contributed) == 1 else contributed)
            pending_repeat = 1
            position += 1
            run_end = position
        elif kind is _Kind.REPEATER:
            pending_repeat = repeat
            position += 1
        elif kind is _Kind.HESITATION and digits:
            position += 1
        else:
            break
    return run_end, "".join(digits)


def _is_lone_decimal(stream: list[Token], start: int, end: int) -> bool:
    """ "3.1415926" on its own is a number; "+1 000 000.0000" is a phone number written with a dot."""
    return end - start == 1 and _DECIMAL.match(stream[start].text) is not None


def _replace_run(stream: list[Token], start: int, end: int, digits: str, replacements: dict[int, list[Token]]) -> None:
    first = stream[start]
    last = stream[end - 1]
    mask = Token(MASK, first.start, first.end, first.confidence, first.space_before)
    visible = Token(digits[-VISIBLE_DIGITS:], last.start, last.end, last.confidence, True)
    # Keep the run's closing punctuation so a number that ended a sentence still ends it.
    closing = _CLOSING_PUNCTUATION.search(last.text)
    if closing:
        visible.text += closing.group(0)
    for position in range(start, end):
        replacements[position] = []
    if end - start == 1:
        replacements[start] = [mask, visible]
    else:
        replacements[start] = [mask]
        replacements[end - 1] = [visible]
