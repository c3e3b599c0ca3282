"""Shared by the index tests: a small FAQ, sample questions, and an index of it built with the fake encoder."""

from __future__ import annotations

import pytest

from faq_search.corpus import FaqEntry
from faq_search.index.faq_index import FaqIndex, Match
from tests.conftest import FakeEncoder

ENTRIES = [
    FaqEntry(
        "ship",
        "Standard parcels ship within two working days.",
        ("How long does shipping take?", "When will my parcel arrive?"),
        {"topic": "shipping"},
    ),
    FaqEntry("returns", "Returns are free within thirty days of delivery.", ("Can I return an item?",)),
    FaqEntry("payment", "We accept credit cards, PayPal and invoices.", ("Which payment methods do you accept?",)),
    FaqEntry(
        "password",
        "To reset your password click 'forgot password' on the login page.",
        ("How do I reset my password?",),
    ),
    FaqEntry("gift", "Gift cards never expire and work online and in stores.", ()),
    FaqEntry("hours", "Our stores open at nine and close at six.", ("When do your stores open?",)),
]
QUESTIONS = [
    "how long does shipping take",
    "can I return an item I bought",
    "do you accept paypal",
    "reset my password",
    "do gift cards expire",
    "when do stores open",
    "parcel arrive",
    "something entirely unrelated xyz",
]


def key(matches: list[Match]) -> list[tuple[str, int, str, float]]:
    return [(m.entry.id, m.rank, m.field, round(m.score, 5)) for m in matches]


def cosine(a: str, b: str) -> float:
    vectors = FakeEncoder().encode([a, b])
    return float(vectors[0] @ vectors[1])


def dense(match: Match) -> float:
    """The match's cosine: its score, or its dense part where the score also holds other evidence."""
    return float(getattr(match, "cosine", match.score))


@pytest.fixture
def index(fake_encoder: FakeEncoder) -> FaqIndex:
    return FaqIndex.build(ENTRIES, encoder=fake_encoder)
