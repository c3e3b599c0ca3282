"""Ranking: answers against a brute-force oracle (each entry scored by its best text), batches, threads; the kernels."""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from faq_search.corpus import FaqEntry, read_faq
from faq_search.index import confidence
from faq_search.index.faq_index import FaqIndex, Match
from faq_search.index.lexical import HybridSettings, entry_document
from faq_search.index.pool_lexical import PoolLexicon, pool_bm25
from faq_search.index.ranking import DenseLayout, best_row_scores, entry_starts, top_k
from faq_search.index.store import VectorStore
from tests.conftest import DATA, FakeEncoder
from tests.index.conftest import ENTRIES, QUESTIONS, cosine, dense, key

# -- ranking ------------------------------------------------------------------------


@pytest.mark.parametrize("question", QUESTIONS)
@pytest.mark.parametrize("k", [1, 3, 6, 20])
def test_ask_ranks_entries(index: FaqIndex, question: str, k: int) -> None:
    matches = index.ask(question, k=k)
    assert isinstance(matches, list) and all(isinstance(m, Match) for m in matches)
    assert len(matches) == min(k, len(ENTRIES))
    assert [m.rank for m in matches] == list(range(1, len(matches) + 1))
    assert all(a.score >= b.score for a, b in itertools.pairwise(matches))
    assert len({m.entry.id for m in matches}) == len(matches)
    for match in matches:
        assert match.field in ("question", "answer")
        assert match.entry in ENTRIES
        # an entry scores its best text, and the field names a text with that score
        by_field = {"answer": [cosine(question, match.entry.answer)]}
        by_field["question"] = [cosine(question, q) for q in match.entry.questions]
        best = max(s for scores in by_field.values() for s in scores)
        assert dense(match) == pytest.approx(best, abs=1e-5)
        assert any(s == pytest.approx(dense(match), abs=1e-5) for s in by_field[match.field])


def test_ask_finds_the_obvious_answer(index: FaqIndex) -> None:
    assert index.ask("How long does shipping take?", k=1)[0].entry.id == "ship"
    assert index.ask("do gift cards expire", k=1)[0].entry.id == "gift"
    top = index.ask("When will my parcel arrive?", k=1)[0]
    assert top.entry.id == "ship" and top.field == "question"
    assert dense(top) == pytest.approx(1.0, abs=1e-6)
    top = index.ask("Gift cards never expire and work online and in stores.", k=1)[0]
    assert top.entry.id == "gift" and top.field == "answer"
    assert dense(top) == pytest.approx(1.0, abs=1e-6)


def test_every_sample_question_finds_its_own_entry(fake_encoder: FakeEncoder) -> None:
    entries = read_faq(DATA / "faq.csv")
    index = FaqIndex.build(entries, encoder=fake_encoder)
    assert len(index) == 48 and len(index.store) == 96
    results = index.ask_batch([e.question or "" for e in entries], k=1)
    assert [r[0].entry.id for r in results] == [e.id for e in entries]
    assert all(r[0].field == "question" and dense(r[0]) == pytest.approx(1.0, abs=1e-5) for r in results)


def test_an_entry_matching_by_question_and_answer_appears_once(fake_encoder: FakeEncoder) -> None:
    entries = [
        FaqEntry("pw", "Reset password: click reset password.", ("reset password", "password reset help")),
        FaqEntry("other", "Something else.", ("unrelated",)),
    ]
    index = FaqIndex.build(entries, encoder=fake_encoder)
    matches = index.ask("reset password", k=10)
    assert [m.entry.id for m in matches] == ["pw", "other"]
    assert matches[0].field == "question" and dense(matches[0]) == pytest.approx(1.0, abs=1e-6)
    assert [m.rank for m in matches] == [1, 2]


def test_k_larger_than_the_faq_returns_each_entry_once(index: FaqIndex) -> None:
    matches = index.ask("shipping", k=100)
    assert sorted(m.entry.id for m in matches) == sorted(e.id for e in ENTRIES)


def test_the_question_is_stripped(index: FaqIndex, fake_encoder: FakeEncoder) -> None:
    assert key(index.ask("  reset my password \n")) == key(index.ask("reset my password"))
    assert fake_encoder.calls[-2:] == [["reset my password"], ["reset my password"]]


@pytest.mark.parametrize("k", [1, 3, 6])
def test_ask_batch_equals_ask(index: FaqIndex, fake_encoder: FakeEncoder, k: int) -> None:
    before = len(fake_encoder.calls)
    batch = index.ask_batch(QUESTIONS, k=k)
    assert fake_encoder.calls[before:] == [QUESTIONS]  # one encoder call for the whole batch
    assert len(batch) == len(QUESTIONS)
    assert [key(m) for m in batch] == [key(index.ask(q, k=k)) for q in QUESTIONS]
    threshold = 0.3
    filtered = index.ask_batch(QUESTIONS, k=k, min_score=threshold)
    assert [key(m) for m in filtered] == [key(index.ask(q, k=k, min_score=threshold)) for q in QUESTIONS]


def test_ask_from_many_threads(fake_encoder: FakeEncoder) -> None:
    index = FaqIndex.build(read_faq(DATA / "faq.csv"), encoder=fake_encoder)
    questions = [*QUESTIONS, "my parcel never showed up", "can I pay with an invoice", "delete my account"]
    expected = [key(index.ask(q, k=5)) for q in questions]
    start = threading.Barrier(8)

    def worker(offset: int) -> list[tuple[int, list[tuple[str, int, str, float]]]]:
        start.wait(timeout=30)
        out = []
        for round_ in range(10):
            i = (offset + round_) % len(questions)
            out.append((i, key(index.ask(questions[i], k=5))))
        return out

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(worker, range(8)))
    assert sum(len(r) for r in results) == 80
    for per_thread in results:
        for i, got in per_thread:
            assert got == expected[i], questions[i]


# -- the kernels, against brute force ----------------------------------------------------


def _unit(rng: np.random.Generator, n: int, dim: int = 16) -> np.ndarray:
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.mark.parametrize("seed", range(5))
def test_best_row_scores_is_the_max_over_each_entrys_rows(seed: int) -> None:
    rng = np.random.default_rng(seed)
    entries = int(rng.integers(1, 12))
    row_entry = np.sort(np.concatenate([np.arange(entries), rng.integers(0, entries, size=int(rng.integers(0, 30)))]))
    row_scores = rng.standard_normal((3, len(row_entry))).astype(np.float32)
    got = best_row_scores(row_scores, entry_starts(row_entry, entries))
    oracle = np.array([[row_scores[q, row_entry == e].max() for e in range(entries)] for q in range(3)])
    np.testing.assert_array_equal(got, oracle)


def test_the_docstring_examples_hold() -> None:
    assert entry_starts(np.array([0, 0, 1, 2, 2]), 3).tolist() == [0, 2, 3]
    assert best_row_scores(np.array([[0.2, 0.9, 0.4]]), np.array([0, 2])).tolist() == [[0.9, 0.4]]
    assert top_k(np.array([1.0, 3.0, 3.0, 2.0]), 2).tolist() == [1, 2]


@pytest.mark.parametrize("k", [1, 2, 5, 9, 50])
def test_top_k_is_a_stable_sort_cut_at_k(k: int) -> None:
    rng = np.random.default_rng(k)
    scores = rng.integers(0, 4, size=9).astype(np.float32)  # many ties
    oracle = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]
    assert top_k(scores, k).tolist() == oracle


@pytest.mark.parametrize("seed", range(3))
def test_the_dense_layout_scores_every_entry_by_its_best_row(seed: int) -> None:
    rng = np.random.default_rng(seed)
    entries = 7
    row_entry = rng.permutation(np.concatenate([np.arange(entries), rng.integers(0, entries, size=13)]))
    vectors = _unit(rng, len(row_entry))
    store = VectorStore.build(vectors, row_entry.tolist(), ["answer"] * len(row_entry))
    queries = _unit(rng, 4)
    layout = DenseLayout.of(store, entries)
    entry_scores, row_scores = layout.scores(queries)
    cosines = queries @ vectors.T  # [q, store rows]
    for q in range(len(queries)):
        for e in range(entries):
            rows = np.flatnonzero(row_entry == e)
            assert entry_scores[q, e] == pytest.approx(cosines[q, rows].max(), abs=1e-5)
            assert layout.best_row(row_scores[q], e) == rows[np.argmax(cosines[q, rows])]


@pytest.mark.parametrize("index_type", ["flat", "hnsw"])
def test_hybrid_ranking_scores_the_brute_force_evidence(fake_encoder: FakeEncoder, index_type: str) -> None:
    """Every entry is a candidate here (fewer than the pool): rank by cosine + BM25 share, score by the model."""
    index = FaqIndex.build(ENTRIES, encoder=fake_encoder, hybrid=HybridSettings(weight=0.5), index_type=index_type)
    lexical = index.lexical.scores(QUESTIONS)
    model = confidence.default_model()
    lexicon = PoolLexicon([entry_document(e.questions, e.answer) for e in ENTRIES])
    documents = [Counter(tokens) for tokens in lexicon.tokenize(lexicon.documents)]
    oracle_dense = np.array([[max(cosine(q, t) for t in (*e.questions, e.answer)) for e in ENTRIES] for q in QUESTIONS])
    for q, matches in enumerate(index.ask_batch(QUESTIONS, k=len(ENTRIES), min_score=0.0)):
        terms = lexicon.query_terms(QUESTIONS[q])
        own = pool_bm25(terms, documents, [sum(d.values()) for d in documents], confidence.POOL)
        rows = confidence.features(oracle_dense[q], own, model.fusion_weight)
        expected = model.predict(rows)
        assert [m.score for m in matches] == pytest.approx(sorted(expected.tolist(), reverse=True), abs=1e-4)
        if index_type == "flat":  # exact over every entry: ties go to the earlier entry
            assert [m.entry.id for m in matches] == [ENTRIES[i].id for i in top_k(rows[:, 0], len(ENTRIES))]
        for m in matches:
            position = ENTRIES.index(m.entry)
            assert 0.0 <= m.score <= 1.0
            assert m.score == pytest.approx(float(expected[position]), abs=1e-4)
            assert m.cosine == pytest.approx(float(oracle_dense[q, position]), abs=1e-5)
            assert m.lexical == pytest.approx(float(lexical[q, position]))
