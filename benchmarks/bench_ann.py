"""Large collections: flat, HNSW and IVF FAISS indexes at a million vectors.

For each index type of faq_search.index.store (default settings): build time, the
memory the built index keeps (growth of the process's resident set), recall@10
against exact search, and the latency of ``VectorStore.search`` for one query
at a time (p50, p99), as ``ask`` uses it.

The vectors are synthetic, not real FAQ embeddings (a million real FAQ texts
are not at hand): 384-d unit vectors from a clustered generator whose
parameters were fitted so that, at 3,262 vectors, its statistics resemble those
of all-MiniLM-L6-v2 layer -2 vectors of the texts in ../shared/data (random-pair
cosine about 0.5, nearest-neighbour cosine about 0.9, most variance in a few
dozen directions); ``--calibrate`` prints both side by side. Queries are fresh
draws from the same generator (new texts on known topics), not stored rows.

    python benchmarks/bench_ann.py                    # 1,000,000 vectors, about 5 minutes
    python benchmarks/bench_ann.py --n 100000 --types hnsw ivf
    python benchmarks/bench_ann.py --calibrate [--data DIR]   # generator vs real vectors of the shared sets
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from shared_data import add_data_option, require_sets

if TYPE_CHECKING:
    from faq_search.index.store import VectorStore

# Generator parameters (see the module docstring and --calibrate).
COMMON, RANK, ALPHA, SPREAD, NOISE, PER_CLUSTER = 1.1, 96, 0.63, 0.42, 0.35, 10


def generator_draws(
    n: int, dim: int = 384, seed: int = 0
) -> tuple[np.random.Generator, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The generator's draws before the rows, in stream order: the random stream (left at the first row),
    the shared direction, the subspace basis, the spectrum, the cluster centres (in the subspace) and
    each row's cluster."""
    rng = np.random.default_rng(seed)
    common = rng.standard_normal(dim).astype(np.float32)
    common /= np.linalg.norm(common)
    basis = np.linalg.qr(rng.standard_normal((dim, RANK)))[0].T.astype(np.float32)
    scales = np.arange(1, RANK + 1, dtype=np.float32) ** -ALPHA
    scales /= np.sqrt((scales**2).sum())
    clusters = max(1, n // PER_CLUSTER)
    centres = rng.standard_normal((clusters, RANK), dtype=np.float32) * scales
    weights = 1.0 / np.arange(1, clusters + 1) ** 0.5
    labels = rng.choice(clusters, size=n, p=weights / weights.sum())
    return rng, common, basis, scales, centres, labels


def clustered_vectors(n: int, dim: int = 384, seed: int = 0) -> np.ndarray:
    """``n`` unit vectors: a shared direction + a cluster centre + within-cluster spread in a
    low-rank subspace with a decaying spectrum + a little isotropic noise; Zipf-like cluster sizes."""
    rng, common, basis, scales, centres, labels = generator_draws(n, dim, seed)
    centres = centres @ basis
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        local = (rng.standard_normal((stop - start, RANK), dtype=np.float32) * scales * SPREAD) @ basis
        noise = rng.standard_normal((stop - start, dim), dtype=np.float32) * (NOISE / np.sqrt(dim))
        block = COMMON * common + centres[labels[start:stop]] + local + noise
        out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def clustered_chunks(n: int, dim: int = 384, seed: int = 0) -> Iterator[tuple[int, np.ndarray]]:
    """:func:`clustered_vectors` as (start, 100,000-row chunk) pairs, never all rows at once.

    The same random stream; cluster centres are kept in the 96-d subspace and projected per chunk
    (384 MB instead of 1.5 GB at 10M rows), so values equal ``clustered_vectors`` up to float
    rounding (1e-7). A second pass regenerates the same chunks.
    """
    rng, common, basis, scales, centres, labels = generator_draws(n, dim, seed)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        local = rng.standard_normal((stop - start, RANK), dtype=np.float32) * scales * SPREAD
        noise = rng.standard_normal((stop - start, dim), dtype=np.float32)
        noise *= NOISE / np.sqrt(dim)
        local += centres[labels[start:stop]]
        block = local @ basis  # in place from here: a chunk's temporaries stay a few hundred MB
        block += COMMON * common
        block += noise
        del noise
        block /= np.sqrt(np.einsum("ij,ij->i", block, block))[:, None]
        yield start, block
        del block, local


def describe(vectors: np.ndarray) -> str:
    """Random-pair and nearest-neighbour cosines and the variance share of the top principal directions."""
    rng = np.random.default_rng(0)
    sample = vectors[rng.choice(len(vectors), size=min(len(vectors), 3262), replace=False)]
    scores = sample @ sample.T
    np.fill_diagonal(scores, -2.0)
    top = -np.sort(-scores, axis=1)[:, :10]
    left, right = rng.integers(0, len(sample), 20_000), rng.integers(0, len(sample), 20_000)
    pairs = np.sum(sample[left] * sample[right], axis=1)
    spectrum = np.linalg.eigvalsh(np.cov(sample.T))[::-1]
    spectrum /= spectrum.sum()
    return (
        f"random-pair cosine {pairs.mean():.3f} (sd {pairs.std():.3f}), nearest-neighbour cosine median "
        f"{np.median(top[:, 0]):.3f}, 10th {np.median(top[:, 9]):.3f}, variance in top 10/50 directions "
        f"{spectrum[:10].sum():.2f}/{spectrum[:50].sum():.2f}"
    )


def calibrate(shared: Path) -> None:
    import pandas as pd

    from faq_search.encoding.encoder import BertEncoder

    texts: list[str] = []
    for name in ("stackfaq", "covidfaq_jhu"):
        faq = pd.read_csv(shared / name / "faq.csv")
        texts += faq["answer"].astype(str).tolist() + faq["question"].dropna().astype(str).tolist()
        texts += pd.read_csv(shared / name / "queries.csv")["query"].astype(str).tolist()
    texts = list(dict.fromkeys(texts))
    print(f"real ({len(texts)} texts of ../shared/data, layer -2): {describe(BertEncoder().encode(texts))}")
    print(f"synthetic (3,262 vectors):                {describe(clustered_vectors(3262))}")


def resident_mb(key: str = "VmRSS") -> float:
    """A line of /proc/self/status in MB: ``VmRSS`` (resident now) or ``VmHWM`` (its peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def recall_at_10(found: list[list[int]], truth: np.ndarray) -> float:
    """The mean share of each query's exact top 10 (``truth`` rows) among the rows it found."""
    return float(np.mean([len(set(f) & set(t.tolist())) / 10 for f, t in zip(found, truth, strict=True)]))


def search_ms(store: VectorStore, queries: np.ndarray, k: int) -> list[float]:
    """Milliseconds of ``store.search`` per query, one query at a time (as ``ask`` searches)."""
    timings = []
    for query in queries:
        begun = time.perf_counter()
        store.search(query[None], k)
        timings.append((time.perf_counter() - begun) * 1000)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="stored vectors")
    parser.add_argument("--types", nargs="+", default=["flat", "hnsw", "ivf"], help="index types to measure")
    parser.add_argument("--queries", type=int, default=1000, help="queries for recall@10 and latency")
    parser.add_argument("--flat-latency-queries", type=int, default=50, help="one-at-a-time queries for flat")
    parser.add_argument("--calibrate", action="store_true", help="compare the generator with real vectors, then stop")
    add_data_option(parser)
    args = parser.parse_args()
    if args.calibrate:
        calibrate(require_sets(args.data, ("stackfaq", "covidfaq_jhu")))
        return

    import faiss

    from faq_search.index.store import AnnSettings, VectorStore

    started = time.perf_counter()
    data = clustered_vectors(args.n + args.queries)
    vectors, queries = data[: args.n], np.ascontiguousarray(data[args.n :])
    del data
    seconds = time.perf_counter() - started
    print(f"{args.n:,} synthetic clustered vectors (384-d) + {args.queries} queries in {seconds:.0f} s")
    print(f"  a sample of 3,262 of them: {describe(vectors)}")

    started = time.perf_counter()
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    top_scores, truth = exact.search(queries, 10)
    del exact
    seconds = time.perf_counter() - started
    print(f"exact top-10 of every query in {seconds:.0f} s; faiss threads {faiss.omp_get_max_threads()}")
    print(
        f"  queries' nearest stored vector: cosine median {np.median(top_scores[:, 0]):.3f}, "
        f"10th nearest {np.median(top_scores[:, 9]):.3f} (real FAQ queries: see --calibrate)"
    )
    print(f"default settings: {AnnSettings()}\n")

    rows = np.arange(args.n)
    fields = ["answer"] * args.n
    print("memory: the index's size in FAISS's file format (what the bundle stores and a loaded index holds);")
    print("RSS: how much the process grew while building it (includes the allocator's slack)\n")
    header = f"{'type':<6} {'build s':>8} {'size MB':>8} {'RSS +MB':>8} {'recall@10':>10} {'p50 ms':>8} {'p99 ms':>8}"
    print(f"{header}  settings")
    for index_type in args.types:
        before = resident_mb()
        started = time.perf_counter()
        store = VectorStore.build(vectors, rows, fields, index_type)
        build_seconds = time.perf_counter() - started
        memory = resident_mb() - before
        size = faiss.serialize_index(store.index).size / 2**20
        recall = recall_at_10([[h.row for h in found] for found in store.search(queries, 10)], truth)
        count = args.flat_latency_queries if index_type == "flat" else args.queries
        timings = search_ms(store, queries[:count], 10)
        inner = faiss.downcast_index(store.index)
        if index_type == "hnsw":
            settings = f"M={inner.hnsw.nb_neighbors(1)} efConstruction={inner.hnsw.efConstruction} "
            settings += f"efSearch={inner.hnsw.efSearch}"
        elif index_type == "ivf":
            settings = f"nlist={inner.nlist} nprobe={inner.nprobe}"
        else:
            settings = "exact"
        p50, p99 = statistics.median(timings), float(np.percentile(timings, 99))
        print(
            f"{index_type:<6} {build_seconds:8.1f} {size:8.0f} {memory:8.0f} {recall:10.4f} {p50:8.3f} {p99:8.3f}  "
            f"{settings} ({count} single queries)",
            flush=True,
        )
        del store, inner


if __name__ == "__main__":
    main()
