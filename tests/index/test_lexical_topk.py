"""The per-question BM25 path: posting lists only, the same numbers and top entries as bm25s's full pass."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from faq_search.corpus import FaqEntry, read_faq
from faq_search.index import files as index_files
from faq_search.index.columnar import take_questions
from faq_search.index.confidence import default_model
from faq_search.index.faq_index import FaqIndex
from faq_search.index.lexical import HybridSettings, LexicalIndex, analyse, stopword_set
from faq_search.index.lexical_matches import best_lexical
from faq_search.index.ranking import confident_search
from tests.conftest import DATA, FakeEncoder

WORDS = [
    *["password", "reset", "account", "invoice", "delivery", "parcel", "refund", "card", "gift", "expired", "login"],
    "the",
    "a",
    "of",
]
QUERIES = ["forgot my password", "reset the login email", "refund for an expired gift card", "the of a", "zzz qqq"]


def corpus(rng: np.random.Generator, size: int) -> list[str]:
    lengths = rng.integers(1, 12, size=size)
    return [" ".join(rng.choice(WORDS, size=n)) + f" code-{i}" for i, n in enumerate(lengths)]


def full_pass(index: LexicalIndex, query: str) -> np.ndarray:
    """bm25s's own per-document scores: what every question paid for before."""
    import bm25s

    tokens = bm25s.tokenize([query], stopwords="english", stemmer=index._stemmer, return_ids=False, show_progress=False)
    if not tokens[0] or index._bm25 is None:
        return np.zeros(index.size, dtype=np.float32)
    return np.asarray(index._bm25.get_scores(list(tokens[0])), dtype=np.float32)


def oracle_best(scores: np.ndarray, count: int) -> list[int]:
    ranked = sorted((i for i in range(len(scores)) if scores[i] > 0), key=lambda i: (-scores[i], i))
    return ranked[:count]


def test_analyse_tokenizes_as_bm25s_does() -> None:
    import bm25s
    import Stemmer

    texts = [e.answer for e in read_faq(DATA / "faq.csv")] + QUERIES + ["", "Ünïcode café's 12 ab_cd x", "THE Running"]
    stemmer = Stemmer.Stemmer("english")
    expected = bm25s.tokenize(texts, stopwords="english", stemmer=stemmer, return_ids=False, show_progress=False)
    assert analyse(texts, stopword_set("english"), stemmer) == [list(t) for t in expected]
    plain = bm25s.tokenize(texts, stopwords=[], stemmer=None, return_ids=False, show_progress=False)
    assert analyse(texts, stopword_set("none"), None) == [list(t) for t in plain]


@pytest.mark.parametrize("seed", range(3))
def test_posting_scores_equal_the_full_pass_bit_for_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    index = LexicalIndex(corpus(rng, 400))
    queries = [*QUERIES, "password password reset"]
    for query, matches in zip(queries, index.matches(queries), strict=True):
        full = full_pass(index, query)
        np.testing.assert_array_equal(matches.dense(), full)  # repeated tokens count twice, as in bm25s
        probe = rng.integers(0, 400, size=50)
        np.testing.assert_array_equal(matches.at(probe), full[probe])
        assert [matches[int(e)] for e in probe[:5]] == [float(full[e]) for e in probe[:5]]
        assert best_lexical(matches, 10).tolist() == oracle_best(full, 10)


def test_the_top_entries_break_ties_by_the_lower_entry_and_respect_a_filter() -> None:
    documents = ["refund policy"] * 30 + ["gift card refund refund"] * 5 + ["login"] * 5
    index = LexicalIndex(documents)
    matches = index.matches(["refund"])[0]
    full = full_pass(index, "refund")
    assert matches.best(10).tolist() == oracle_best(full, 10) == [30, 31, 32, 33, 34, 0, 1, 2, 3, 4]
    allowed = np.zeros(len(documents), dtype=bool)
    allowed[[3, 7, 33, 38]] = True
    kept = matches.only(allowed)
    assert kept.best(10).tolist() == [33, 3, 7]
    assert kept[38] == 0.0 and kept[34] == 0.0 and kept[33] == pytest.approx(float(full[33]))
    np.testing.assert_array_equal(kept.dense(), np.where(allowed, full, 0))
    assert best_lexical(full, 10).tolist() != []  # the dense path still serves arrays


@pytest.mark.parametrize("index_type", ["flat", "hnsw"])
def test_ask_ranks_with_postings_as_with_the_full_array(index_type: str) -> None:
    """The union's lexical entries and Match.lexical: the sparse path gives what the dense array gave."""
    rng = np.random.default_rng(7)
    vocabulary = WORDS + [f"w{i}" for i in range(300)]  # long, varied documents: no ties at the tenth place
    texts = [" ".join(rng.choice(vocabulary, size=n)) for n in rng.integers(5, 40, size=300)]
    entries = [FaqEntry(f"e{i}", text) for i, text in enumerate(texts)]
    encoder = FakeEncoder()
    index = FaqIndex.build(entries, encoder=encoder, hybrid=HybridSettings(weight=0.5), index_type=index_type)
    vectors = encoder.encode(QUERIES)
    common = {"model": default_model(), "store": index.store, "lexicon": index.pool_lexicon}
    layout = index._layout() if index_type == "flat" else None
    sparse = confident_search(vectors, QUERIES, 10, layout=layout, lexical=index.lexical.matches(QUERIES), **common)
    full = index.lexical.scores(QUERIES)
    # the dense path takes any of a tie at the tenth place; the sparse one the lower entry: nudge ties apart
    nudged = np.where(full > 0, full - 1e-6 * np.arange(len(entries)) / len(entries), 0).astype(np.float64)
    dense = confident_search(vectors, QUERIES, 10, layout=layout, lexical=nudged, **common)
    assert [[(r.entry, r.row) for r in found] for found in sparse] == [[(r.entry, r.row) for r in d] for d in dense]
    for found, other in zip(sparse, dense, strict=True):
        assert [r.score for r in found] == pytest.approx([r.score for r in other], abs=1e-5)
        assert [r.cosine for r in found] == [r.cosine for r in other]
        assert [r.lexical for r in found] == pytest.approx([r.lexical for r in other], abs=1e-5)
    assert [[(m.entry.id, m.lexical) for m in found] for found in index.ask_batch(QUERIES, k=10, min_score=0)] == [
        [(entries[r.entry].id, r.lexical) for r in found] for found in sparse
    ]


def test_columnar_entries_take_decodes_as_reading_one_by_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(index_files, "COLUMNAR_ENTRIES", 1)
    found = read_faq(DATA / "faq.csv")
    found[2] = dataclasses.replace(found[2], metadata={"plan": "pro"}, aliases=("a-1",))
    FaqIndex.build(found, encoder=FakeEncoder()).save(tmp_path / "bundle")
    loaded = FaqIndex.load(tmp_path / "bundle", encoder=FakeEncoder())
    positions = [5, 2, 0, len(found) - 1, 2]
    assert loaded.entries.take(positions) == [found[p] for p in positions]  # type: ignore[attr-defined]
    expected = [found[p].questions for p in positions]
    assert take_questions(loaded.entries, positions) == take_questions(found, positions) == expected
    assert any(expected)  # (the sample FAQ's entries have questions)
    with pytest.raises(IndexError):
        loaded.entries.take([len(found)])  # type: ignore[attr-defined]
