"""Shared by the filter tests: an FAQ with typed metadata, a tie-free encoder, and a filter oracle in Python."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np

from faq_search.corpus import FaqEntry
from tests.conftest import FakeEncoder

PLANS = ("free", "pro", "enterprise")
COUNTRIES = ("DE", "AT", "FR", "CH", "IT")
TAGS = ("billing", "refunds", "login", "shipping")
WORDS = ("parcel", "invoice", "password", "refund", "account", "delivery", "card", "store", "plan", "login")
COLUMNS = ("plan", "country:string", "price", "tags:list", "active")


class RandomEncoder(FakeEncoder):
    """A seeded random unit vector per text: no two texts tie, so rankings have one right answer."""

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
            vector = np.random.default_rng(seed).standard_normal(self.dimension)
            out[row] = vector / np.linalg.norm(vector)
        return out


def filter_entries(count: int = 240, seed: int = 0) -> list[FaqEntry]:
    """Entries with a plan, a country, a price, tags (a list) and an active flag; some fields missing."""
    rng = np.random.default_rng(seed)
    entries = []
    for i in range(count):
        words = " ".join(rng.choice(WORDS, size=4))
        metadata = {
            "plan": PLANS[i % 3],
            "price": str(int(rng.integers(0, 100))),
            "tags": "|".join(sorted(set(rng.choice(TAGS, size=int(rng.integers(1, 3)))))),
            "active": "yes" if rng.random() < 0.7 else "no",
        }
        if i % 11:  # some entries have no country
            metadata["country"] = COUNTRIES[int(rng.integers(0, len(COUNTRIES)))]
        questions = (f"question {i} {words}",) if i % 4 else ()
        entries.append(FaqEntry(f"e{i}", f"answer {i}: {words}", questions, metadata))
    return entries


def oracle(metadata: Mapping[str, str], field: str, op: str, values: Sequence[str]) -> bool:
    """One comparison, as the filter grammar documents it, on one entry's raw metadata."""
    raw = metadata.get(field)
    if op == "!=":
        return not oracle(metadata, field, "=", values)
    if raw is None:
        return False
    if field == "price":
        number, wanted = float(raw), [float(v) for v in values]
        checks = {"=": number == wanted[0], "in": number in wanted, "<": number < wanted[0]}
        checks.update({"<=": number <= wanted[0], ">": number > wanted[0], ">=": number >= wanted[0]})
        return checks[op]
    if field == "active":
        return (raw == "yes") in {v in ("true", "yes", "1") for v in values}
    if field == "tags":
        return bool(set(raw.split("|")) & set(values))
    return raw in values
