"""VectorStore: entry-level search against a brute-force numpy oracle, serialisation, bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from faq_search.errors import BundleError, InputError
from faq_search.index.store import Hit, VectorStore


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def oracle(vectors: np.ndarray, row_entry: np.ndarray, query: np.ndarray, k: int) -> list[tuple[int, float, int]]:
    """(entry, score, best row) of the k best entries: max over each entry's rows, best first."""
    scores = vectors.astype(np.float64) @ query.astype(np.float64)
    best: dict[int, tuple[float, int]] = {}
    for row, (entry, score) in enumerate(zip(row_entry.tolist(), scores.tolist(), strict=True)):
        if entry not in best or score > best[entry][0]:
            best[entry] = (score, row)
    ranked = sorted(best.items(), key=lambda item: -item[1][0])[:k]
    return [(entry, score, row) for entry, (score, row) in ranked]


def assignment(rng: np.random.Generator, rows: int, entries: int, layout: str) -> np.ndarray:
    if layout == "one-per-entry":
        return rng.permutation(rows)
    if layout == "skewed":  # entry 0 owns half of all rows, the rest are spread
        row_entry = rng.integers(1, entries, size=rows)
        row_entry[rng.choice(rows, size=rows // 2, replace=False)] = 0
        return row_entry
    row_entry = rng.integers(0, entries, size=rows)  # random, every entry present
    row_entry[:entries] = rng.permutation(entries)
    return rng.permutation(row_entry)


CASES = [
    # rows, entries, dim, layout
    (1, 1, 4, "random"),
    (12, 12, 8, "one-per-entry"),
    (40, 7, 16, "random"),
    (200, 30, 32, "random"),
    (300, 5, 16, "random"),
    (120, 20, 8, "skewed"),
]


@pytest.mark.parametrize(("rows", "entries", "dim", "layout"), CASES)
@pytest.mark.parametrize("k", [1, 3, 10, 50])
def test_search_equals_brute_force(rows: int, entries: int, dim: int, layout: str, k: int) -> None:
    rng = np.random.default_rng(rows * 1000 + entries * 10 + k)
    vectors = unit_rows(rng, rows, dim)
    row_entry = assignment(rng, rows, entries, layout)
    fields = [("question", "answer")[i % 2] for i in range(rows)]
    store = VectorStore.build(vectors, row_entry, fields)
    queries = np.concatenate([unit_rows(rng, 6, dim), vectors[:2]])  # random queries and two stored rows
    results = store.search(queries, k)
    assert len(results) == len(queries)
    for query, hits in zip(queries, results, strict=True):
        expected = oracle(vectors, row_entry, query, k)
        assert len(hits) == min(k, len(set(row_entry.tolist())))
        assert all(isinstance(h, Hit) for h in hits)
        assert [h.entry for h in hits] == [e for e, _, _ in expected]
        np.testing.assert_allclose([h.score for h in hits], [s for _, s, _ in expected], rtol=0, atol=1e-5)
        assert [h.row for h in hits] == [r for _, _, r in expected]
        assert len({h.entry for h in hits}) == len(hits)  # each entry at most once
        assert all(a.score >= b.score for a, b in itertools.pairwise(hits))
        assert all(row_entry[h.row] == h.entry for h in hits)


def test_a_stored_row_finds_its_own_entry_first() -> None:
    rng = np.random.default_rng(5)
    vectors = unit_rows(rng, 50, 24)
    row_entry = np.repeat(np.arange(10), 5)
    store = VectorStore.build(vectors, row_entry, ["answer"] * 50)
    results = store.search(vectors, 1)
    assert [hits[0].entry for hits in results] == row_entry.tolist()
    assert [hits[0].row for hits in results] == list(range(50))
    np.testing.assert_allclose([hits[0].score for hits in results], 1.0, atol=1e-5)


def test_an_entry_with_many_matching_rows_appears_once() -> None:
    dim = 8
    base = np.eye(dim, dtype=np.float32)
    # entry 0 has ten near-copies of the query direction, entry 1 one weaker row, entry 2 an opposite row
    near = base[0] + 0.01 * np.arange(10, dtype=np.float32)[:, None] * base[1]
    vectors = np.concatenate([near, (base[0] + base[1])[None], -base[0][None]])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    row_entry = [0] * 10 + [1, 2]
    store = VectorStore.build(vectors, row_entry, ["question"] * 10 + ["answer", "answer"])
    (hits,) = store.search(base[0][None], 3)
    assert [h.entry for h in hits] == [0, 1, 2]
    assert hits[0].row == 0 and hits[0].score == pytest.approx(1.0, abs=1e-6)
    assert hits[2].score == pytest.approx(-1.0, abs=1e-6)


@pytest.mark.parametrize("k", [4, 5, 100])
def test_k_larger_than_the_entry_count_returns_every_entry_once(k: int) -> None:
    rng = np.random.default_rng(k)
    vectors = unit_rows(rng, 30, 8)
    row_entry = rng.integers(0, 4, size=30)
    row_entry[:4] = [0, 1, 2, 3]
    store = VectorStore.build(vectors, row_entry, ["answer"] * 30)
    assert store.entry_count == 4
    for hits in store.search(unit_rows(rng, 5, 8), k):
        assert sorted(h.entry for h in hits) == [0, 1, 2, 3]


def test_entries_without_rows_are_never_returned() -> None:
    rng = np.random.default_rng(9)
    vectors = unit_rows(rng, 9, 6)
    row_entry = np.array([0, 2, 5, 5, 2, 0, 5, 0, 2])
    store = VectorStore.build(vectors, row_entry, ["answer"] * 9)
    for query in unit_rows(rng, 4, 6):
        (hits,) = store.search(query[None], 10)
        assert [h.entry for h in hits] == [e for e, _, _ in oracle(vectors, row_entry, query, 10)]
        assert sorted(h.entry for h in hits) == [0, 2, 5]


def test_batch_search_equals_one_query_at_a_time() -> None:
    rng = np.random.default_rng(11)
    vectors = unit_rows(rng, 80, 16)
    row_entry = rng.integers(0, 15, size=80)
    store = VectorStore.build(vectors, row_entry, ["answer"] * 80)
    queries = unit_rows(rng, 7, 16)
    batch = store.search(queries, 5)
    single = [store.search(q[None], 5)[0] for q in queries]
    assert [[h.entry for h in hits] for hits in batch] == [[h.entry for h in hits] for hits in single]
    for a, b in zip(batch, single, strict=True):
        np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-6)


def test_float64_queries_are_accepted() -> None:
    rng = np.random.default_rng(3)
    vectors = unit_rows(rng, 10, 4)
    store = VectorStore.build(vectors, np.arange(10), ["answer"] * 10)
    (hits,) = store.search(vectors[3:4].astype(np.float64), 1)
    assert hits[0].entry == 3


@pytest.mark.parametrize("k", [0, -1])
def test_k_below_one_finds_nothing(k: int) -> None:
    rng = np.random.default_rng(0)
    store = VectorStore.build(unit_rows(rng, 5, 4), np.arange(5), ["answer"] * 5)
    assert store.search(unit_rows(rng, 2, 4), k) == [[], []]


def test_no_queries_give_no_results() -> None:
    rng = np.random.default_rng(0)
    store = VectorStore.build(unit_rows(rng, 5, 4), np.arange(5), ["answer"] * 5)
    assert store.search(np.zeros((0, 4), dtype=np.float32), 3) == []


@pytest.mark.parametrize(
    "shape",
    [(8,), (1, 7), (2, 9), (1, 1, 8), (3, 0)],
    ids=["1d", "narrow", "wide", "3d", "empty-width"],
)
def test_bad_query_shapes(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    store = VectorStore.build(unit_rows(rng, 5, 8), np.arange(5), ["answer"] * 5)
    with pytest.raises(InputError) as info:
        store.search(np.zeros(shape, dtype=np.float32), 3)
    assert "query vectors must be [n, 8]" in str(info.value)
    assert str(list(shape)) in str(info.value)


def test_properties() -> None:
    rng = np.random.default_rng(0)
    store = VectorStore.build(unit_rows(rng, 7, 12), [0, 0, 0, 1, 2, 2, 1], ["question"] * 7)
    assert len(store) == 7
    assert store.dimension == 12
    assert store.entry_count == 3
    assert store.max_rows_per_entry == 3
    assert store.row_entry.dtype == np.int64


def test_unknown_index_type() -> None:
    with pytest.raises(InputError, match=r"unknown index type 'annoy'; use one of flat, hnsw, ivf"):
        VectorStore.build(np.eye(3, dtype=np.float32), [0, 1, 2], ["answer"] * 3, index_type="annoy")


@pytest.mark.parametrize(
    ("entries", "fields"), [([0, 1], ["a"] * 3), ([0, 1, 2], ["a"] * 2), ([0, 1, 2, 3], ["a"] * 4)]
)
def test_row_tables_must_match_the_vectors(entries: list[int], fields: list[str]) -> None:
    index = VectorStore.build(np.eye(3, dtype=np.float32), [0, 1, 2], ["a"] * 3).index
    with pytest.raises(BundleError, match="does not match"):
        VectorStore(index, np.asarray(entries), fields)


# -- serialisation ---------------------------------------------------------------


def test_bytes_round_trip() -> None:
    rng = np.random.default_rng(21)
    vectors = unit_rows(rng, 60, 16)
    row_entry = rng.integers(0, 12, size=60)
    fields = [("question", "answer")[i % 2] for i in range(60)]
    store = VectorStore.build(vectors, row_entry, fields)
    data = store.to_bytes()
    assert isinstance(data, bytes)
    assert data[:4] == b"IxFI"  # FAISS's own header for a flat inner-product index
    restored = VectorStore(VectorStore.index_from_bytes(data), row_entry, fields)
    assert len(restored) == 60 and restored.dimension == 16
    np.testing.assert_array_equal(restored.index.reconstruct_n(0, 60), vectors)
    queries = unit_rows(rng, 5, 16)
    assert restored.search(queries, 7) == store.search(queries, 7)
    assert restored.to_bytes() == data


def test_empty_store_round_trips_and_finds_nothing() -> None:
    store = VectorStore.build(np.zeros((0, 4), dtype=np.float32), [], [])
    restored = VectorStore(VectorStore.index_from_bytes(store.to_bytes()), np.zeros(0, dtype=np.int64), [])
    assert len(restored) == 0 and restored.entry_count == 0
    assert restored.search(np.ones((2, 4), dtype=np.float32), 3) == [[], []]


def _serialised() -> bytes:
    rng = np.random.default_rng(1)
    return VectorStore.build(unit_rows(rng, 20, 8), np.arange(20) % 4, ["answer"] * 20).to_bytes()


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: b"",
        lambda data: b"not a faiss index at all" * 4,
        lambda data: data[: len(data) // 2],
        lambda data: data[:-1],
        lambda data: data[:10],
        lambda data: bytes([data[0] ^ 0xFF]) + data[1:],
        lambda data: b"\x00" * len(data),
    ],
    ids=["empty", "text", "half", "last-byte-missing", "header-only", "bad-magic", "zeros"],
)
def test_corrupt_bytes_raise_bundle_error(damage) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BundleError) as info:
        VectorStore.index_from_bytes(damage(_serialised()))
    message = str(info.value)
    assert message.startswith("the FAISS index cannot be read (")
    assert "rebuild" in message
