"""Masking personal data in a question before it is written to the question log.

Customers type e-mail addresses, phone numbers and card or account numbers
into a help desk; the log must not keep them. :func:`redact` replaces them
with placeholders, so the questions stay readable for the gaps report:
``"mail me at ann@example.com or +44 20 7946 0958"`` ->
``"mail me at [email] or [phone]"``.

What it is not: a full PII detector. It masks what has a recognisable
shape (e-mail addresses, card-like numbers, phone numbers, any run of 6 or
more digits); names and street addresses pass through. Dates and short
numbers ("order 123", "2024-05-01") are kept on purpose, since they are
rarely personal and often what a question is about.
"""

from __future__ import annotations

import re

EMAIL = "[email]"
CARD = "[card]"
PHONE = "[phone]"
NUMBER = "[number]"

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
# 13-19 digits, optionally grouped by spaces or dashes: payment cards and IBAN-like account numbers.
_CARD = re.compile(r"(?<![\w])\d(?:[ -]?\d){12,18}(?![\w])")
# An optional +country code, then digit groups separated by spaces, dots, dashes or parentheses: 7+ digits in all.
_PHONE = re.compile(r"(?<![\w+])(?:\+|00)?\(?\d{1,4}\)?(?:[ .\-/]?\(?\d{1,5}\)?){2,6}(?![\w])")
_DIGITS = re.compile(r"(?<!\d)(?<!0x)(?<!0X)\d{6,}")  # not a hex literal such as an error code 0x80070005
_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}")


def redact(text: str) -> str:
    """``text`` with e-mail addresses, card-like numbers, phone numbers and runs of 6+ digits masked.

    ``redact("card 4111 1111 1111 1111, call (555) 123-4567")`` -> ``"card [card], call [phone]"``.
    """
    text = _EMAIL.sub(EMAIL, text)
    text = _CARD.sub(CARD, text)
    text = _PHONE.sub(_phone, text)
    return _DIGITS.sub(NUMBER, text)


def _phone(match: re.Match[str]) -> str:
    """A phone number has at least 7 digits; shorter digit groups (dates, versions, sizes) are kept."""
    found = match.group(0)
    if _DATE.fullmatch(found.strip()):
        return found
    return PHONE if sum(c.isdigit() for c in found) >= 7 else found
