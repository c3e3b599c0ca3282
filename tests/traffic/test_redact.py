"""Redaction: personal data with a recognisable shape is masked; the words of the question stay."""

from __future__ import annotations

import pytest

from faq_search.traffic.redact import redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail me at ann.b+shop@example.co.uk please", "mail me at [email] please"),
        ("my card 4111 1111 1111 1111 was charged twice", "my card [card] was charged twice"),
        ("card 4111-1111-1111-1111", "card [card]"),
        ("call me on +44 20 7946 0958", "call me on [phone]"),
        ("call (555) 123-4567 tomorrow", "call [phone] tomorrow"),
        ("my number is 0176 12345678", "my number is [phone]"),
        ("customer no. 88231907", "customer no. [phone]"),
        ("IBAN DE89370400440532013000", "IBAN DE[number]"),
    ],
)
def test_personal_data_is_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "where is order 123?",
        "delivered on 2024-05-01 or 01.05.2024?",
        "python 3.11 and numpy 1.26 on a 1920x1080 screen",
        "can I return shoes after 30 days",
        "what does error 0x80070005 mean",
    ],
)
def test_ordinary_numbers_and_dates_are_kept(text: str) -> None:
    assert redact(text) == text


def test_nothing_personal_is_left_in_a_mixed_question() -> None:
    text = "I'm ann@example.com, card 5500 0000 0000 0004, phone +1 415 555 2671, order 42"
    masked = redact(text)
    assert "@" not in masked and "5500" not in masked and "2671" not in masked
    assert masked.endswith("order 42")
