"""Stored term frequencies and document lengths (the pool BM25 without tokenizing), and the bounded best entries."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from faq_search.bundle.files import read_bundle
from faq_search.corpus import FaqEntry, read_faq
from faq_search.index.faq_index import FaqIndex
from faq_search.index.lexical import (
    DOCUMENT_LENGTHS,
    TERM_COUNTS,
    HybridSettings,
    LexicalIndex,
    entry_document,
)
from faq_search.index.lexical_matches import LexicalMatches, Posting, _top
from faq_search.index.pool_lexical import PoolLexicon
from faq_search.index.update import update_bundle
from tests.conftest import DATA, FakeEncoder

QUESTIONS = [
    "How do I reset my password?",
    "refund refund for an expired gift card",
    "delivery of the parcel",
    "the of a",
    "zzz unknownword",
    "",
]


def documents(seed: int, size: int = 300) -> list[str]:
    rng = np.random.default_rng(seed)
    real = [entry_document(e.questions, e.answer) for e in read_faq(DATA / "faq.csv")]
    words = ["password", "reset", "refund", "gift", "card", "parcel", "delivery", "the", "of", "running", "runs"]
    made = [" ".join(rng.choice(words, size=n)) for n in rng.integers(0, 30, size=size)]
    return [*real, *made, "", "the of a", "Ünïcode café's ab_cd"]  # empty, stop words only, unicode


@pytest.mark.parametrize(("seed", "language"), [(0, "english"), (1, "english"), (2, "none")])
def test_stored_counts_are_the_tokens_counts(seed: int, language: str) -> None:
    texts = documents(seed)
    index = LexicalIndex(texts, HybridSettings(language=language))
    assert index.has_counts
    lexicon = PoolLexicon(texts, language)
    tokens = lexicon.tokenize(texts)
    everything = np.arange(len(texts))
    np.testing.assert_array_equal(index.document_lengths(everything), [len(t) for t in tokens])
    for term in sorted({t for doc in tokens for t in doc})[:80]:
        expected = [Counter(doc)[term] for doc in tokens]
        np.testing.assert_array_equal(index.term_frequencies(term, everything), expected)
    assert not index.term_frequencies("notaterm", everything).any()


@pytest.mark.parametrize("language", ["english", "none"])
def test_the_pool_bm25_from_stored_counts_equals_tokenizing_bit_for_bit(language: str) -> None:
    texts = documents(3)
    index = LexicalIndex(texts, HybridSettings(language=language))
    stored, tokenizing = PoolLexicon(texts, language, index), PoolLexicon(texts, language)
    assert stored.counts is index and tokenizing.counts is None
    rng = np.random.default_rng(4)
    for question in QUESTIONS:
        candidates = rng.choice(len(texts), size=100, replace=False).tolist()
        np.testing.assert_array_equal(
            stored.scores(question, candidates, 100), tokenizing.scores(question, candidates, 100)
        )
    assert stored._tokens == {}  # nothing was tokenized but the questions


def entries(count: int = 60) -> list[FaqEntry]:
    return [e for e in read_faq(DATA / "faq.csv")][:count]


def answers(index: FaqIndex) -> list[list[tuple[str, float, float | None]]]:
    found = index.ask_batch([q for q in QUESTIONS if q], k=10, min_score=0)
    return [[(m.entry.id, m.score, m.lexical) for m in matches] for matches in found]


def test_a_bundle_stores_and_maps_the_counts_and_an_older_bundle_tokenizes(tmp_path: Path) -> None:
    built = FaqIndex.build(entries(), encoder=FakeEncoder(), hybrid=HybridSettings(weight=0.5))
    built.save(tmp_path / "b")
    _, files = read_bundle(tmp_path / "b")
    assert {f"lexical/{TERM_COUNTS}", f"lexical/{DOCUMENT_LENGTHS}"} <= set(files)
    loaded = FaqIndex.load(tmp_path / "b", encoder=FakeEncoder())
    assert loaded.pool_lexicon.counts is not None
    expected = answers(built)
    assert answers(loaded) == expected
    older = FaqIndex.load(tmp_path / "b", encoder=FakeEncoder())
    assert older._lexical_files is not None
    older._lexical_files = {k: v for k, v in older._lexical_files.items() if k not in (TERM_COUNTS, DOCUMENT_LENGTHS)}
    assert older.pool_lexicon.counts is None  # a bundle from before the counts: candidates are tokenized
    assert answers(older) == expected
    assert older.pool_lexicon._tokens  # ... and it did tokenize them
    loaded.save(tmp_path / "again")  # a loaded index writes its counts again
    _, again = read_bundle(tmp_path / "again")
    assert bytes(again[f"lexical/{TERM_COUNTS}"]) == bytes(files[f"lexical/{TERM_COUNTS}"])


def test_an_incremental_update_keeps_the_counts_right(tmp_path: Path) -> None:
    first = entries()
    update_bundle(tmp_path / "b", first, encoder=FakeEncoder(), hybrid=HybridSettings(weight=0.5))
    changed = [FaqEntry("new", "Parcels with refund refund codes XJ-9041 arrive late."), *first[5:]]
    changed[3] = FaqEntry(changed[3].id, "An edited answer about password resets.", changed[3].questions)
    update_bundle(tmp_path / "b", changed, encoder=FakeEncoder(), hybrid=HybridSettings(weight=0.5))
    loaded = FaqIndex.load(tmp_path / "b", encoder=FakeEncoder())
    rebuilt = LexicalIndex([entry_document(e.questions, e.answer) for e in changed])
    everything = np.arange(len(changed))
    np.testing.assert_array_equal(loaded.lexical.document_lengths(everything), rebuilt.document_lengths(everything))
    for term in ("parcel", "refund", "xj", "9041", "password", "reset"):
        np.testing.assert_array_equal(
            loaded.lexical.term_frequencies(term, everything), rebuilt.term_frequencies(term, everything)
        )
    fresh = FaqIndex.build(changed, encoder=FakeEncoder(), hybrid=HybridSettings(weight=0.5))
    assert answers(loaded) == answers(fresh)
    in_memory = FaqIndex.build(first, encoder=FakeEncoder(), hybrid=HybridSettings(weight=0.5))
    answers(in_memory)  # its counts are in use before the edit
    in_memory.upsert([changed[0], changed[3]])
    in_memory.delete([e.id for e in first[:5] if e.id != changed[3].id])
    assert answers(in_memory) == answers(
        FaqIndex.build([e for e in in_memory.entries], encoder=FakeEncoder(), hybrid=HybridSettings(weight=0.5))
    )


def random_matches(rng: np.random.Generator, size: int) -> LexicalMatches:
    """Posting lists of random lengths and maxima; scores from a few values so ties are common; repeats too."""
    postings = []
    for term in range(int(rng.integers(1, 7))):
        length = int(rng.integers(0, size))
        docs = np.sort(rng.choice(size, size=length, replace=False)).astype(np.int32)
        top = float(rng.choice([0.5, 1.0, 4.0, 9.0]))
        scores = (rng.integers(1, 5, size=length) * top / 4).astype(np.float32)
        postings.append(Posting(term, docs, scores, float(scores.max(initial=0.0))))
    if rng.random() < 0.3:
        postings.append(postings[0])  # a repeated query term counts twice
    allowed = rng.random(size) < 0.7 if rng.random() < 0.3 else None
    return LexicalMatches(postings, size, allowed)


def oracle(matches: LexicalMatches, count: int) -> list[int]:
    scores = matches.dense()
    return sorted((i for i in range(len(scores)) if scores[i] > 0), key=lambda i: (-scores[i], i))[:count]


def paths(matches: LexicalMatches, count: int) -> dict[str, list[int] | None]:
    """What :meth:`LexicalMatches.best` and each of its ways give (None: the bounded way declined)."""
    ordered = sorted(matches.postings, key=lambda p: -p.top)
    tops = np.array([p.top for p in ordered])
    theta = matches._theta(ordered[0], count)
    bounded = matches._bounded_best(ordered, tops, theta, count) if theta > 0 else None
    return {
        "best": matches.best(count).tolist(),
        "summed": matches._summed_best(count, 0.0).tolist(),
        "summed from theta": matches._summed_best(count, theta).tolist(),
        "bounded": None if bounded is None else bounded.tolist(),
    }


@pytest.mark.parametrize("seed", range(300))
def test_the_bounded_best_entries_are_the_full_passes_ties_included(seed: int) -> None:
    rng = np.random.default_rng(seed)
    matches = random_matches(rng, int(rng.integers(1, 400)))
    count = int(rng.integers(1, 15))
    expected = oracle(matches, count)
    found = paths(matches, count)
    assert found["best"] == found["summed"] == found["summed from theta"] == expected
    assert found["bounded"] in (None, expected)


def test_a_rare_strong_term_bounds_the_search_without_the_common_lists() -> None:
    rng = np.random.default_rng(0)
    size = 100_000
    common = [np.sort(rng.choice(size, size=size // 5, replace=False)) for _ in range(3)]
    postings = [
        Posting(t, docs, rng.uniform(0.1, 0.5, len(docs)).astype(np.float32), 0.5) for t, docs in enumerate(common)
    ]
    rare = np.sort(rng.choice(size, size=40, replace=False))
    rare_scores = rng.uniform(8, 9, len(rare)).astype(np.float32)
    postings.append(Posting(3, rare, rare_scores, float(rare_scores.max())))
    matches = LexicalMatches(postings, size)
    found = paths(matches, 10)
    assert found["bounded"] is not None  # from the rare list's 40 documents: the common lists sum to 1.5 < 8
    assert found["bounded"] == found["best"] == found["summed"] == oracle(matches, 10)
    assert _top(np.arange(size), matches.dense(), 10).tolist() == found["best"]


def test_the_pool_bm25_is_the_same_to_the_last_bit_in_every_process() -> None:
    """Terms are summed in the question's order, not a set's (whose order moves with PYTHONHASHSEED)."""
    script = (
        "from faq_search.index.pool_lexical import PoolLexicon\n"
        "docs = ['reset your password in settings', 'billing invoices and refunds', 'password reset link expired']\n"
        "lexicon = PoolLexicon(docs)\n"
        "print(lexicon.query_terms('expired password reset link for billing'))\n"
        "print(lexicon.scores('expired password reset link for billing', [0, 1, 2], 100).tobytes().hex())\n"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2", "3", "4")
    }
    assert len(runs) == 1
