"""Last-line masking of contact details in text that is about to leave for the LLM.

Normalization already reduces phone numbers in transcripts to their last four digits; this is the
defence in depth at the boundary: e-mail addresses become ``[email]``, any remaining phone-like digit
run (7+ digits) becomes ``[number ending NNNN]``, and call metadata names (a contact or user name in a
call title) become ``[name]``. ISO dates and times are not phone numbers and stay.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

EMAIL_PLACEHOLDER = "[email]"
NAME_PLACEHOLDER = "[name]"
_MIN_PHONE_DIGITS = 7

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# Digits joined by the separators people write phone numbers with; commas are not among them so
# "1,250,000" stays an amount.
_PHONE_LIKE = re.compile(r"(?<![\w])\+?\(?\d[\d\s().-]{5,}\d(?![\w])")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def mask_contact_details(text: str) -> str:
    """Replace e-mail addresses and phone-like numbers; everything else is left as it was."""
    return _PHONE_LIKE.sub(_mask_phone, _EMAIL.sub(EMAIL_PLACEHOLDER, text))


def _mask_phone(match: re.Match[str]) -> str:
    candidate = match.group(0)
    digits = re.sub(r"\D", "", candidate)
    if len(digits) < _MIN_PHONE_DIGITS or _ISO_DATE.fullmatch(candidate.strip()):
        return candidate
    return f"[number ending {digits[-4:]}]"


def mask_names(text: str, names: Iterable[str]) -> str:
    """Replace every case-insensitive whole-word occurrence of each name and of its longer words.

    Single words shorter than three letters ("de", "la") are too common to mask on their own; the
    full name still is.
    """
    words = {name.strip() for name in names if len(name.strip()) >= 2}
    words |= {part for name in names for part in name.split() if len(part) >= 3}
    # Longest first so "Priya Raman" is replaced as one, not as "[name] [name]".
    for word in sorted(words, key=len, reverse=True):
        text = re.sub(rf"(?<!\w){re.escape(word)}(?!\w)", NAME_PLACEHOLDER, text, flags=re.IGNORECASE)
    return text
