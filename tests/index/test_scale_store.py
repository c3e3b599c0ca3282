"""The large-collection store: ``ivfpq`` (compressed IVF) and the dense + lexical pool union an ANN store needs."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import pytest

from faq_search.corpus import FaqEntry
from faq_search.index import ranking
from faq_search.index.faq_index import FaqIndex
from faq_search.index.lexical import HybridSettings
from faq_search.index.pool_lexical import PoolLexicon
from faq_search.index.ranking import LEXICAL_POOL, pools
from faq_search.index.store import (
    AnnSettings,
    IndexType,
    VectorStore,
    add_chunks,
    pq_bytes,
    train_ivfpq,
    train_positions,
)
from tests.conftest import FakeEncoder


@pytest.fixture(autouse=True, scope="module")
def one_faiss_thread() -> Iterator[None]:
    """k-means training on one thread: on a loaded two-core machine FAISS's spinning threads cost 5x."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def unit_rows(rng: np.random.Generator, n: int, dim: int, clusters: int = 40) -> np.ndarray:
    centres = rng.normal(size=(clusters, dim))
    vectors = centres[rng.integers(0, clusters, size=n)] + 0.35 * rng.normal(size=(n, dim))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def recall_at_10(store: VectorStore, queries: np.ndarray, truth: np.ndarray, fetch: int) -> float:
    found = store.search(queries, fetch)
    return float(
        np.mean([len({h.entry for h in hits[:10]} & set(t)) / 10 for hits, t in zip(found, truth, strict=True)])
    )


def test_ivfpq_is_compact_and_its_refined_pool_finds_what_exact_search_finds() -> None:
    rng = np.random.default_rng(0)
    data = unit_rows(rng, 8_100, 64)
    vectors, queries = data[:8_000], data[8_000:]
    rows = np.arange(8_000)
    store = VectorStore.build(vectors, rows, ["answer"] * 8_000, "ivfpq")
    assert store.index_type is IndexType.IVFPQ and pq_bytes(384) == 48 and pq_bytes(64) == 8
    flat_bytes = len(VectorStore.build(vectors, rows, ["answer"] * 8_000).to_bytes())
    assert len(store.to_bytes()) < flat_bytes / 2.5  # 8 + 64 bytes (+ an 8-byte id) per row instead of 256
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :10].tolist()
    # the ranking reads the top 10 of a 100-entry pool; these clustered rows are hard for 8-byte codes alone
    assert recall_at_10(store, queries, truth, 100) >= 0.85
    unrefined = VectorStore.build(vectors, rows, ["answer"] * 8_000, "ivfpq", AnnSettings(refine_factor=1))
    assert recall_at_10(unrefined, queries, truth, 10) < recall_at_10(store, queries, truth, 10)
    for query, hits in zip(queries, store.search(queries, 10), strict=True):  # cosines of the 8-bit vectors
        np.testing.assert_allclose([h.score for h in hits], vectors[[h.row for h in hits]] @ query, atol=0.01)
    loaded = VectorStore(VectorStore.index_from_bytes(store.to_bytes()), rows, ["answer"] * 8_000)
    assert loaded.index_type is IndexType.IVFPQ
    assert [h.row for h in loaded.search(queries[:3], 10)[0]] == [h.row for h in store.search(queries[:3], 10)[0]]


@pytest.mark.parametrize("bits", [4, 8])
def test_an_ivfpq_built_from_streamed_chunks_equals_the_one_shot_build(bits: int) -> None:
    rng = np.random.default_rng(5)
    data = unit_rows(rng, 3_020, 32)
    vectors, queries = data[:3_000], data[3_000:]
    settings = AnnSettings(ivf_lists=16, pq_train_rows=1_000, pq_bits=bits)  # trains on 1,024 of the 3,000 rows
    positions = train_positions(3_000, settings)
    assert len(positions) == 1_024 and np.all(np.diff(positions) > 0)
    bounds = [0, 700, 701, 1_900, 3_000]  # uneven chunks, one of a single row, as a stream would cut them
    chunks = [vectors[a:b] for a, b in itertools.pairwise(bounds)]
    picked = [
        chunk[positions[(positions >= a) & (positions < b)] - a]
        for a, b, chunk in zip(bounds, bounds[1:], chunks, strict=False)
    ]
    streamed = add_chunks(train_ivfpq(np.concatenate(picked), 3_000, settings), iter(chunks))
    one_shot = VectorStore.build(vectors, np.arange(3_000), ["answer"] * 3_000, "ivfpq", settings)
    import faiss

    layout = type(faiss.downcast_index(faiss.extract_index_ivf(streamed))).__name__
    assert layout == ("IndexIVFPQFastScan" if bits == 4 else "IndexIVFPQ")
    assert faiss.serialize_index(streamed).tobytes() == one_shot.to_bytes()  # same codebooks, codes, lists
    chunked = VectorStore(streamed, np.arange(3_000), ["answer"] * 3_000)
    assert chunked.search(queries, 10) == one_shot.search(queries, 10)


def test_an_ivfpq_of_the_former_8_bit_layout_loads_and_searches_as_it_was_built() -> None:
    """Bundles built before fast scan hold an ``IndexIVFPQ`` of 8-bit codes with their own nprobe and
    refine factor: they load as that index and search with those settings, not today's defaults."""
    import faiss

    rng = np.random.default_rng(7)
    data = unit_rows(rng, 12_050, 32)
    vectors, queries = data[:12_000], data[12_000:]
    former = AnnSettings(pq_bits=8, refine_factor=16, pq_probe_share=6)  # the defaults before fast scan
    old = VectorStore.build(vectors, np.arange(12_000), ["answer"] * 12_000, "ivfpq", former)
    loaded = VectorStore(VectorStore.index_from_bytes(old.to_bytes()), np.arange(12_000), ["answer"] * 12_000)
    coarse = faiss.downcast_index(faiss.extract_index_ivf(loaded.index))
    assert type(coarse).__name__ == "IndexIVFPQ" and (coarse.pq.M, coarse.pq.nbits) == (pq_bytes(32), 8)
    assert (coarse.nprobe, faiss.downcast_index(loaded.index).k_factor) == (former.probe_for(coarse.nlist, True), 16)
    assert loaded.index_type is IndexType.IVFPQ
    assert loaded.search(queries, 10) == old.search(queries, 10)
    new = VectorStore.build(vectors, np.arange(12_000), ["answer"] * 12_000, "ivfpq")
    fast = faiss.downcast_index(faiss.extract_index_ivf(new.index))
    assert type(fast).__name__ == "IndexIVFPQFastScan" and (fast.pq.M, fast.pq.nbits) == (2 * pq_bytes(32), 4)
    assert len(new.to_bytes()) < len(old.to_bytes()) * 1.1  # the same bytes a row (+ blocks of 32 codes)
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :10].tolist()
    assert recall_at_10(new, queries, truth, 10) >= recall_at_10(old, queries, truth, 10) - 0.05
    for query, hits in zip(queries, new.search(queries, 10), strict=True):  # the 8-bit vectors' cosines
        np.testing.assert_allclose([h.score for h in hits], vectors[[h.row for h in hits]] @ query, atol=0.005)


@pytest.mark.parametrize("rows", [1, 2, 7, 300])
def test_ivfpq_works_on_tiny_collections(rows: int) -> None:
    rng = np.random.default_rng(rows)
    vectors = unit_rows(rng, rows, 16, 3)
    store = VectorStore.build(vectors, np.arange(rows), ["answer"] * rows, "ivfpq")
    hits = store.search(vectors[:1], min(rows, 5))
    assert len(hits[0]) == min(rows, 5) and len({h.entry for h in hits[0]}) == len(hits[0])
    assert VectorStore.index_from_bytes(store.to_bytes()).ntotal == rows


def test_entry_scores_are_what_a_search_reports() -> None:
    rng = np.random.default_rng(3)
    vectors = unit_rows(rng, 3000, 32)
    row_entry = np.arange(3000) // 3  # three rows per entry
    for kind in ("flat", "ivf", "ivfpq", "hnsw"):
        store = VectorStore.build(vectors, row_entry, ["answer"] * 3000, kind)
        hits = store.search(vectors[:1], 5)[0]
        cosine, rows = store.entry_scores(vectors[0], [h.entry for h in hits])
        np.testing.assert_allclose(cosine, [h.score for h in hits], atol=1e-5)
        assert rows.tolist() == [h.row for h in hits]


def lexicon_of(count: int) -> PoolLexicon:
    return PoolLexicon([f"entry number {i} words" for i in range(count)])


def test_an_ann_pool_takes_in_the_best_lexical_entries_it_missed() -> None:
    rng = np.random.default_rng(4)
    vectors = unit_rows(rng, 2000, 32)
    store = VectorStore.build(vectors, np.arange(2000), ["answer"] * 2000, "ivf", AnnSettings(ivf_probe=1))
    query = vectors[:1]
    far = int(np.argmin(vectors @ query[0]))  # the entry least like the question: no dense search returns it
    bm25 = np.zeros((1, 2000))
    bm25[0, far] = 9.0
    dense_only = pools(query, ["q"], 20, None, store, lexicon_of(2000))[0]
    assert far not in dense_only.entries
    joined = pools(query, ["q"], 20, None, store, lexicon_of(2000), bm25)[0]
    assert far in joined.entries and len(joined.entries) == 21
    where = joined.entries.tolist().index(far)
    assert joined.cosine[where] == pytest.approx(float(vectors[far] @ query[0]), abs=1e-5)
    assert joined.rows is not None and joined.rows[where] == far
    assert np.all(np.diff(joined.cosine) <= 0)  # best cosine first, as a pool always is
    assert set(dense_only.entries) <= set(joined.entries)


def test_the_union_adds_at_most_lexical_pool_entries_with_a_positive_score() -> None:
    rng = np.random.default_rng(5)
    vectors = unit_rows(rng, 500, 16)
    store = VectorStore.build(vectors, np.arange(500), ["answer"] * 500, "hnsw")
    bm25 = np.zeros((1, 500))
    bm25[0, :40] = np.arange(40, 0, -1)
    joined = pools(vectors[:1], ["q"], 5, None, store, lexicon_of(500), bm25)[0]
    assert len(joined.entries) <= 5 + LEXICAL_POOL
    assert set(range(LEXICAL_POOL)) <= set(joined.entries.tolist())
    nothing = pools(vectors[:1], ["q"], 5, None, store, lexicon_of(500), np.zeros((1, 500)))[0]
    assert len(nothing.entries) == 5


def test_a_strong_bm25_only_match_reaches_the_answers_of_an_ann_index(monkeypatch: pytest.MonkeyPatch) -> None:
    entries = [FaqEntry(f"e{i}", f"General answer {i} about orders and delivery times.") for i in range(60)]
    entries.append(FaqEntry("code", "Error XJ-9041 means the card reader lost power."))
    index = FaqIndex.build(entries, encoder=FakeEncoder(), index_type="ivf", hybrid=HybridSettings(weight=0.5))
    monkeypatch.setattr(ranking, "LEXICAL_POOL", 10)
    # the ANN search sees only the dense pool; make it blind to the code entry to isolate the union
    search = index.store.search
    monkeypatch.setattr(
        index.store,
        "search",
        lambda q, k, allowed=None: [[h for h in hits if h.entry != 60] for hits in search(q, k, allowed)],
    )
    assert "code" in [m.entry.id for m in index.ask("XJ-9041", k=5)]
    monkeypatch.setattr(ranking, "LEXICAL_POOL", 0)
    assert "code" not in [m.entry.id for m in index.ask("XJ-9041", k=5)]


def test_the_pool_lexicon_reads_only_the_candidates_entries() -> None:
    from faq_search.index.pool_lexical import EntryDocuments

    class Counted(list[FaqEntry]):
        read: ClassVar[list[int]] = []

        def __getitem__(self, position):  # type: ignore[no-untyped-def,override]
            Counted.read.append(position)
            return super().__getitem__(position)

    entries = Counted(FaqEntry(f"e{i}", f"Answer {i} about parcels.", (f"Question {i}?",)) for i in range(1000))
    lexicon = PoolLexicon(EntryDocuments(entries, with_questions=True))
    scores = lexicon.scores("parcels question", [3, 500, 999], pool=100)
    assert sorted(Counted.read) == [3, 500, 999] and scores.shape == (3,) and (scores > 0).all()
    assert EntryDocuments(entries, with_questions=False)[3] == "Answer 3 about parcels."
