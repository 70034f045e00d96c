"""Phone numbers never show more than their last four digits."""

from __future__ import annotations

import pytest

from scryon_dagster.domain.transcript.phone import last_four_digits, mask_phone_numbers
from scryon_dagster.domain.transcript.tokens import Token, join_tokens


def mask(text: str) -> str:
    return join_tokens(mask_phone_numbers([[Token(w, 0.0, 0.0) for w in text.split()]])[0])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Call me at 555-123-4567.", "Call me at •••• 4567."),
        ("It's (555) 123 4567, thanks", "It's •••• 4567, thanks"),
        ("my number is +91 98450 12345", "my number is •••• 2345"),
        ("write 555.123.4567 down", "write •••• 4567 down"),
        ("it's 5551234567", "it's •••• 4567"),
        ("nine eight double four five uh six seven one two three", "•••• 7123"),
        ("five five five oh one two three", "•••• 0123"),
        ("555 123 uh 4567 ok", "•••• 4567 ok"),
    ],
)
def test_phone_numbers_are_masked_to_the_last_four_digits(raw: str, expected: str) -> None:
    assert mask(raw) == expected


@pytest.mark.parametrize(
    "kept",
    [
        "It costs $5,000,000 in total",
        "pi is 3.1415926",
        "meet at 10:30 on 12/05/2024",
        "the code is 12345",
        "room 204 on floor 3",
        "oh five",
        "double check it",
    ],
)
def test_other_numbers_are_kept(kept: str) -> None:
    assert mask(kept) == kept


def test_masking_is_idempotent_and_the_mask_breaks_runs() -> None:
    once = mask("call 555 123 4567 or 987 654 3210")

    assert once == "call •••• 4567 or •••• 3210"
    assert mask(once) == once
    assert mask("•••• 4567 123") == "•••• 4567 123"


def test_a_number_split_across_segments_is_still_masked() -> None:
    first = [Token(w, 0.0, 0.0) for w in ["my", "number", "is", "555", "123"]]
    second = [Token(w, 1.0, 1.0) for w in ["4567", "thanks"]]

    masked = mask_phone_numbers([first, second])

    assert [join_tokens(tokens) for tokens in masked] == ["my number is ••••", "4567 thanks"]


@pytest.mark.parametrize(("number", "expected"), [("+1 (555) 123-4567", "4567"), ("12", None), (None, None)])
def test_last_four_digits(number: str | None, expected: str | None) -> None:
    assert last_four_digits(number) == expected
