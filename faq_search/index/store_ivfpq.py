"""The ``ivfpq`` index type: compressed IVF codes find candidates, 8-bit vectors rank them again.

A row is a product-quantized code of :func:`pq_bytes` bytes (48 for 384 dimensions) in an IVF
cell, plus an 8-bit scalar-quantized copy (a byte per dimension) that re-ranks the candidates
the codes find (FAISS ``IndexRefine``): 440 bytes a row with its id instead of 1,536, and
returned cosines within about 0.005 of exact.

The codes are FAISS's 4-bit fast-scan PQ (``IndexIVFPQFastScan``, factory ``IVF{n},PQ{2m}x4fs``):
twice as many sub-quantizers of 16 centroids each, in the same bytes, scanned 32 rows at a time
with SIMD lookups in 8-bit tables. A code ranks less exactly than an 8-bit PQ code of the same
size, but a cell scans four to five times faster, and the 8-bit re-ranking of a larger pool
makes up the difference (benchmarks/bench_scale.py ``--store-rows``, docs/scale.md). Bundles
built before (``IndexIVFPQ``, 8-bit codes, ``pq_bits=8``) load and search as they were built:
FAISS's file names the index classes and holds ``nprobe`` and the refine factor.

The build streams: :func:`train_positions` names the training rows, :func:`train_ivfpq`
trains on them, :func:`add_chunks` adds the rows in chunks; a chunked build equals the
one-shot build byte for byte (tests/index/test_scale_store.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import faiss
    import numpy as np

    from faq_search.index.store import AnnSettings

ADD_CHUNK = 100_000
"""Rows added to an approximate index at a time, so a build never holds a second copy of every vector."""

FAST_SCAN_BLOCK = 32
"""Rows a fast-scan block holds (FAISS's ``bbs``): codes are packed and scanned 32 at a time."""

MIN_ROWS_PER_CODE_VALUE = 39
"""FAISS's minimum training rows per k-means centroid (fewer gives a warning and poor codebooks)."""


def pq_bytes(dimension: int) -> int:
    """Bytes per ivfpq code: the largest divisor of the dimension at most ``dimension // 8`` (384 -> 48,
    64 -> 8, 12 -> 1): one 8-bit sub-quantizer, or two 4-bit fast-scan ones, per byte."""
    return max(m for m in range(1, max(1, dimension // 8) + 1) if dimension % m == 0)


def train_positions(rows: int, settings: AnnSettings) -> np.ndarray:
    """The rows (sorted) an ivfpq index over ``rows`` vectors trains on: a seeded sample, so a build is
    repeatable, of at least ``pq_train_rows`` and 64 rows per cell, or all rows. A caller streaming its
    vectors in chunks picks these rows out in a first pass (:func:`train_ivfpq`)."""
    import numpy as np

    size = max(settings.pq_train_rows, settings.lists_for(rows) * settings.ivf_train_per_list)
    if size >= rows:
        return np.arange(rows)
    return np.sort(np.random.default_rng(0).choice(rows, size=size, replace=False))


def code_bits(sample_rows: int, wanted: int) -> int:
    """Bits per sub-quantizer code: ``wanted`` (4 = fast scan, 8 = the former 8-bit codes) when the
    sample trains its 2**bits centroids with 39 rows each; fewer rows train fewer bits (down to 1)."""
    import math

    per_value = sample_rows // MIN_ROWS_PER_CODE_VALUE
    if per_value >= 2**wanted:
        return wanted
    if per_value >= 16:
        return min(wanted, int(math.log2(per_value)))
    return max(1, min(4, int(math.log2(max(2, sample_rows)))))


def train_ivfpq(sample: np.ndarray, rows: int, settings: AnnSettings) -> faiss.Index:
    """An empty ivfpq index for ``rows`` vectors, trained on ``sample`` (the rows of :func:`train_positions`).

    4-bit fast-scan codes (``settings.pq_bits`` 4, the default) or the former 8-bit ``IndexIVFPQ``
    codes (8), in an ``IndexRefine`` over 8-bit scalar-quantized vectors; ``nprobe`` and the refine
    factor from ``settings``. Fast scan needs all 16 values of its 4-bit codes trained (39 rows
    each): a smaller sample gets the 8-bit layout with fewer bits (down to 1), so the type works at
    any size, though it is meant for hundreds of thousands of rows and more. Rows go in with
    :func:`add_chunks`.
    """
    import faiss
    import numpy as np

    sample = np.ascontiguousarray(sample, dtype=np.float32)
    dimension = sample.shape[1]
    lists = settings.lists_for(rows)
    if len(sample) < 2:  # one row: k-means needs two points for its two code values
        sample = np.repeat(sample, 2, axis=0)
    bits = code_bits(len(sample), settings.pq_bits)
    quantizer = faiss.IndexFlatIP(dimension)
    metric = faiss.METRIC_INNER_PRODUCT
    coarse: faiss.IndexIVF
    if settings.pq_bits == 4 and bits == 4 and dimension % (2 * pq_bytes(dimension)) == 0:
        coarse = faiss.IndexIVFPQFastScan(
            quantizer, dimension, lists, 2 * pq_bytes(dimension), 4, metric, FAST_SCAN_BLOCK
        )
    else:
        coarse = faiss.IndexIVFPQ(quantizer, dimension, lists, pq_bytes(dimension), bits, metric)
    coarse.cp.min_points_per_centroid = 1  # small collections: no warning per tiny cell or codebook
    coarse.pq.cp.min_points_per_centroid = 1
    fine = faiss.IndexScalarQuantizer(dimension, faiss.ScalarQuantizer.QT_8bit, metric)
    index = faiss.IndexRefine(coarse, fine)  # faiss's Python keeps coarse and fine alive with it
    index.train(sample)
    coarse.nprobe = settings.probe_for(lists, compressed=True)
    index.k_factor = settings.refine_factor
    return index


def add_chunks(index: faiss.Index, chunks: Iterable[np.ndarray]) -> faiss.Index:
    """Add each chunk of rows (float32, unit length) to ``index``, at most :data:`ADD_CHUNK` rows a call.

    The result does not depend on how the rows are cut: a chunked build of a collection too large
    for memory (benchmarks/bench_scale.py ``--store-rows``) equals the one-shot build.
    """
    import numpy as np

    for chunk in chunks:
        chunk = np.ascontiguousarray(chunk, dtype=np.float32)
        for start in range(0, len(chunk), ADD_CHUNK):
            index.add(chunk[start : start + ADD_CHUNK])
    return index


def build_ivfpq(vectors: np.ndarray, settings: AnnSettings) -> faiss.Index:
    """:func:`train_ivfpq` on the seeded sample of ``vectors``, then every row added (:func:`add_chunks`)."""
    rows = len(vectors)
    positions = train_positions(rows, settings)
    sample = vectors if len(positions) == rows else vectors[positions]
    return add_chunks(train_ivfpq(sample, rows, settings), [vectors])
