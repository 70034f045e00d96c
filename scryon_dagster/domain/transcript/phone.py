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
from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class TokenRef:
    """Where a token sits in a list of token lists (pieces): masking runs across piece boundaries."""

    piece: int
    index: int


def last_four_digits(phone_number: str | None) -> str | None:
    digits = "".join(ch for ch in phone_number or "" if ch.isdigit())
    return digits[-VISIBLE_DIGITS:] if len(digits) >= VISIBLE_DIGITS else None


def mask_phone_numbers(pieces: list[list[Token]]) -> list[list[Token]]:
    """Mask every phone-number-like run in the concatenated token stream of ``pieces``.

    Returns new lists (the tokens of untouched pieces are shared). The mask token takes the place of the
    run's first token and the visible digits the place of its last, so a run spanning two pieces leaves
    ``••••`` at the end of one and the four digits at the start of the next.
    """
    stream = [TokenRef(p, i) for p, tokens in enumerate(pieces) for i in range(len(tokens))]
    replacements: dict[TokenRef, list[Token]] = {}
    position = 0
    while position < len(stream):
        ref = stream[position]
        token = pieces[ref.piece][ref.index]
        if token.text == MASK:
            position += _masked_pair_length(pieces, stream, position)
            continue
        run_end, digits = _digit_run(pieces, stream, position)
        if len(digits) >= MIN_PHONE_DIGITS and not _is_lone_decimal(pieces, stream[position:run_end]):
            _replace_run(pieces, stream[position:run_end], digits, replacements)
            position = run_end
        else:
            position = max(run_end, position + 1)
    if not replacements:
        return pieces
    touched = {ref.piece for ref in replacements}
    result: list[list[Token]] = []
    for p, tokens in enumerate(pieces):
        if p not in touched:
            result.append(tokens)
            continue
        rebuilt: list[Token] = []
        for i, token in enumerate(tokens):
            rebuilt.extend(replacements.get(TokenRef(p, i), [token]))
        result.append(rebuilt)
    return result


def _masked_pair_length(pieces: list[list[Token]], stream: list[TokenRef], position: int) -> int:
    if position + 1 < len(stream):
        following = stream[position + 1]
        if _VISIBLE_PART.fullmatch(pieces[following.piece][following.index].text):
            return 2
    return 1


def _digit_run(pieces: list[list[Token]], stream: list[TokenRef], start: int) -> tuple[int, str]:
    """End (exclusive) of the digit run starting at ``start`` and its digits; end == start if none."""
    digits: list[str] = []
    position = start
    run_end = start
    pending_repeat = 1
    while position < len(stream):
        ref = stream[position]
        text = pieces[ref.piece][ref.index].text
        if text == MASK:
            break
        contributed = _digits_of(text, has_digits=bool(digits))
        if contributed is not None:
            digits.append(contributed * pending_repeat if len(contributed) == 1 else contributed)
            pending_repeat = 1
            position += 1
            run_end = position
            continue
        key = token_key(text)
        if key in _REPEATERS:
            pending_repeat = _REPEATERS[key]
            position += 1
            continue
        if digits and key in _HESITATIONS:
            position += 1
            continue
        break
    return run_end, "".join(digits)


def _is_lone_decimal(pieces: list[list[Token]], run: list[TokenRef]) -> bool:
    """ "3.1415926" on its own is a number; "+1 000 000.0000" is a phone number written with a dot."""
    return len(run) == 1 and _DECIMAL.match(pieces[run[0].piece][run[0].index].text) is not None


def _digits_of(text: str, *, has_digits: bool) -> str | None:
    if _WRITTEN_DIGITS.match(text):
        return "".join(ch for ch in text if ch.isdigit())
    key = token_key(text)
    if key in _SPOKEN_DIGITS:
        return _SPOKEN_DIGITS[key]
    if key == _OH and has_digits:
        return "0"
    return None


def _replace_run(
    pieces: list[list[Token]], run: list[TokenRef], digits: str, replacements: dict[TokenRef, list[Token]]
) -> None:
    first = pieces[run[0].piece][run[0].index]
    last = pieces[run[-1].piece][run[-1].index]
    mask = Token(MASK, first.start, first.end, first.confidence, first.space_before)
    visible = Token(digits[-VISIBLE_DIGITS:], last.start, last.end, last.confidence, True)
    # Keep the run's closing punctuation so a number that ended a sentence still ends it.
    closing = _CLOSING_PUNCTUATION.search(last.text)
    if closing:
        visible.text += closing.group(0)
    for ref in run:
        replacements[ref] = []
    if run[0] == run[-1]:
        replacements[run[0]] = [mask, visible]
    else:
        replacements[run[0]] = [mask]
        replacements[run[-1]] = [visible]
