"""Vector store: a FAISS inner-product index over unit vectors (= cosine).

Each stored vector is a *row*; several rows may belong to one FAQ entry (its
question paraphrases and its answer). Search returns entries, not rows: an
entry's score is the maximum over its rows, and an entry appears once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import faiss
import numpy as np

from faq_search.errors import BundleError, InputError

INDEX_TYPES = ("flat",)
"""Supported FAISS index layouts; ``flat`` is exact search."""


@dataclass(frozen=True)
class Hit:
    """One entry found by the store: its position in the entry list, score and best row."""

    entry: int
    score: float
    row: int


class VectorStore:
    """Rows of unit vectors, each tagged with the entry it belongs to and the field it embeds."""

    def __init__(self, index: faiss.Index, row_entry: np.ndarray, row_field: Sequence[str]) -> None:
        if index.ntotal != len(row_entry) or len(row_entry) != len(row_field):
            raise BundleError(f"vector count {index.ntotal} does not match {len(row_entry)} rows; rebuild the index")
        self.index = index
        self.row_entry = np.asarray(row_entry, dtype=np.int64)
        self.row_field = list(row_field)
        counts = np.bincount(self.row_entry) if len(self.row_entry) else np.zeros(0, dtype=np.int64)
        self.entry_count = int(counts.size)
        self.max_rows_per_entry = int(counts.max()) if counts.size else 0

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        row_entry: Sequence[int],
        row_field: Sequence[str],
        index_type: str = "flat",
    ) -> VectorStore:
        """Index ``vectors`` (float32, unit length) exactly as given."""
        if index_type not in INDEX_TYPES:
            raise InputError(f"unknown index type {index_type!r}; use one of {', '.join(INDEX_TYPES)}")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        index = faiss.IndexFlatIP(int(vectors.shape[1]))
        index.add(vectors)
        return cls(index, np.asarray(row_entry, dtype=np.int64), row_field)

    @property
    def dimension(self) -> int:
        return int(self.index.d)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> list[list[Hit]]:
        """The ``k`` best entries for each query row, best first, one hit per entry.

        Rows are fetched in growing rounds until ``k`` distinct entries are
        seen: the first time an entry shows up in a score-sorted row list is its
        maximum, so the result is exact for an exact index.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dimension:
            raise InputError(f"query vectors must be [n, {self.dimension}], got {list(queries.shape)}")
        k = min(k, self.entry_count)
        if k <= 0 or len(self) == 0:
            return [[] for _ in range(len(queries))]
        fetch = min(len(self), k * self.max_rows_per_entry)
        while True:
            scores, rows = self.index.search(queries, fetch)
            results = [self._entries(s, r, k) for s, r in zip(scores, rows, strict=True)]
            if fetch >= len(self) or all(len(hits) >= k for hits in results):
                return results
            fetch = min(len(self), fetch * 4)

    def _entries(self, scores: np.ndarray, rows: np.ndarray, k: int) -> list[Hit]:
        hits: list[Hit] = []
        seen: set[int] = set()
        for score, row in zip(scores.tolist(), rows.tolist(), strict=True):
            if row < 0:
                break
            entry = int(self.row_entry[row])
            if entry in seen:
                continue
            seen.add(entry)
            hits.append(Hit(entry=entry, score=float(score), row=int(row)))
            if len(hits) == k:
                break
        return hits

    def to_bytes(self) -> bytes:
        """The FAISS index in FAISS's own file format."""
        return bytes(faiss.serialize_index(self.index).tobytes())

    @staticmethod
    def index_from_bytes(data: bytes) -> faiss.Index:
        try:
            return faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except RuntimeError as exc:
            raise BundleError(f"the FAISS index cannot be read ({str(exc).splitlines()[0]}); rebuild it") from None
