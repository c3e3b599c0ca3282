"""The ivfpq store alone at millions of vectors: build time, memory, search latency and recall.

An ``ivfpq`` store (faq_search.index.store, default settings) of ``--rows``
synthetic vectors (benchmarks/bench_ann.py's generator) built from streamed
100,000-row chunks in a fresh process, since 10M float32 vectors would be 15
GB: build time, peak and final resident memory, index bytes, search p50/p99
and recall@10 against exact search (computed chunk by chunk while the rows
are added), for ``k=10`` and for the 100-row search ``ask`` makes with BM25
fusion, and a table of other nprobe and refine factors.

    python benchmarks/bench_store.py --rows 10000000      # docs/scale.md: its time and memory here
    python benchmarks/bench_scale.py --entries 0 --ray-entries 0 --store-rows 10000000   # the same run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from bench_ann import clustered_chunks, recall_at_10, resident_mb, search_ms

from faq_search.index.confidence import POOL
from faq_search.index.store import VectorStore

REPO = Path(__file__).resolve().parent.parent


STORE_QUERIES, RECALL_QUERIES = 200, 100


def child_store(rows: int) -> None:
    """In a fresh process: an ivfpq store of ``rows`` streamed vectors, built and searched (JSON lines)."""
    import faiss

    from faq_search.index.store import AnnSettings, add_chunks, train_ivfpq, train_positions

    settings = AnnSettings()
    total, generating = rows + STORE_QUERIES, 0.0
    positions = train_positions(rows, settings)
    picked, fresh = [], []
    started = time.perf_counter()
    for start, block in clustered_chunks(total):  # pass 1: the training sample and the queries
        inside = positions[(positions >= start) & (positions < start + len(block))]
        picked.append(block[inside - start])
        if start + len(block) > rows:
            fresh.append(block[max(0, rows - start) :].copy())  # a copy: a view would keep the chunk alive
    generating += time.perf_counter() - started
    queries = np.concatenate(fresh)
    base_mb = resident_mb("VmRSS")
    started = time.perf_counter()
    index = train_ivfpq(np.concatenate(picked), rows, settings)
    del picked
    train_s = time.perf_counter() - started
    probe = queries[:RECALL_QUERIES]
    best = np.full((len(probe), 10), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(probe), 10), dtype=np.int64)
    add_s = exact_s = 0.0
    chunks = clustered_chunks(total)
    while True:  # pass 2: add each chunk, and keep the exact top 10 of the recall queries
        started = time.perf_counter()
        start, block = next(chunks, (total, np.zeros((0, 1), dtype=np.float32)))
        generating += time.perf_counter() - started
        block = block[: max(0, rows - start)]
        if not len(block):
            break
        started = time.perf_counter()
        add_chunks(index, [block])
        add_s += time.perf_counter() - started
        started = time.perf_counter()
        scores = np.concatenate([best, probe @ block.T], axis=1)
        ids = np.concatenate([best_rows, np.arange(start, start + len(block))[None].repeat(len(probe), 0)], axis=1)
        top = np.argpartition(-scores, 9, axis=1)[:, :10]
        best, best_rows = np.take_along_axis(scores, top, 1), np.take_along_axis(ids, top, 1)
        exact_s += time.perf_counter() - started
    del chunks, block
    store = VectorStore(index, np.arange(rows), ["answer"] * rows)
    final_mb, peak_mb = resident_mb("VmRSS"), resident_mb("VmHWM")
    recall = recall_at_10([[h.row for h in f] for f in store.search(probe, 10)], best_rows)
    timings = search_ms(store, queries, 10)
    pool_recall = recall_at_10([[h.row for h in f[:10]] for f in store.search(probe, POOL)], best_rows)  # as ask does
    pool_times = search_ms(store, queries, POOL)
    size = 0

    def count(chunk: bytes) -> int:
        nonlocal size
        size += len(chunk)
        return len(chunk)

    faiss.write_index(index, faiss.PyCallbackIOWriter(count))  # type: ignore[attr-defined]
    coarse, refine = faiss.extract_index_ivf(index), faiss.downcast_index(index)
    built, sweep = (coarse.nprobe, refine.k_factor), []
    lists = coarse.nlist
    for cells in sorted({max(1, lists // 24), max(1, lists // 12), max(1, lists // 8), max(1, lists // 6), built[0]}):
        for factor in (16, 32, 64, 128):  # what the store would give with other search settings (set on the index)
            coarse.nprobe, refine.k_factor = cells, factor
            hit = recall_at_10([[h.row for h in f] for f in store.search(probe, 10)], best_rows)
            times = search_ms(store, queries, 10)
            sweep.append([cells, factor, hit, statistics.median(times), float(np.percentile(times, 99))])
    coarse.nprobe, refine.k_factor = built
    result = {
        "rows": rows, "generate_s": generating, "train_s": train_s, "train_rows": len(positions), "add_s": add_s,
        "exact_s": exact_s, "base_mb": base_mb, "peak_mb": peak_mb, "final_mb": final_mb, "index_mb": size / 2**20,
        "p50_ms": statistics.median(timings), "p99_ms": float(np.percentile(timings, 99)), "recall": recall,
        "nlist": coarse.nlist, "nprobe": coarse.nprobe, "k_factor": faiss.downcast_index(index).k_factor,
        "threads": faiss.omp_get_max_threads(), "sweep": sweep, "pool_recall": pool_recall,
        "pool_p50_ms": statistics.median(pool_times), "pool_p99_ms": float(np.percentile(pool_times, 99)),
    }  # fmt: skip
    print(json.dumps(result))


def store_section(rows: int) -> None:
    """The ivfpq store alone at ``rows`` vectors, in a child process (its memory is the store's)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, __file__, "--child", str(rows)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    r = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\nivfpq store alone, {rows:,} synthetic vectors (384-d), streamed in 100,000-row chunks, fresh process:")
    print(
        f"  build {r['train_s'] + r['add_s']:.0f} s (train on {r['train_rows']:,} rows {r['train_s']:.0f} s, "
        f"add {r['add_s']:.0f} s); generating the vectors twice {r['generate_s']:.0f} s and exact top-10 "
        f"{r['exact_s']:.0f} s apart"
    )
    print(
        f"  resident: {r['base_mb']:.0f} MB before training (interpreter, generator, queries), peak "
        f"{r['peak_mb']:.0f} MB, final {r['final_mb']:.0f} MB; index {r['index_mb']:.0f} MB in FAISS's format"
    )
    print(
        f"  search (VectorStore.search, one query at a time, k=10, {STORE_QUERIES} fresh queries, nlist "
        f"{r['nlist']}, nprobe {r['nprobe']}, refine x{r['k_factor']:.0f}, {r['threads']} threads): "
        f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms"
    )
    print(f"  recall@10 against exact search, {RECALL_QUERIES} queries: {r['recall']:.3f}")
    print(
        f"  the {POOL}-row search ask makes with BM25 fusion (its dense pool): p50 {r['pool_p50_ms']:.1f} ms, "
        f"p99 {r['pool_p99_ms']:.1f} ms; recall@10 of its first 10 rows {r['pool_recall']:.3f}"
    )
    print(f"  other search settings of the same store (* = its defaults), recall@10 of {RECALL_QUERIES} queries:")
    print(f"  {'nprobe':>7} {'refine':>6} {'recall@10':>9} {'p50 ms':>7} {'p99 ms':>7}")
    for cells, factor, recall, p50, p99 in r["sweep"]:
        mark = "*" if (cells, factor) == (r["nprobe"], r["k_factor"]) else " "
        print(f"  {cells:>6}{mark} {factor:>6} {recall:>9.3f} {p50:>7.1f} {p99:>7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="vectors in the store")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_store(args.child)
        return
    print(f"load before: {os.getloadavg()[0]:.2f} (1-min), {os.cpu_count()} CPUs")
    store_section(args.rows)
    print(f"load after: {os.getloadavg()[0]:.2f} (1-min)")


if __name__ == "__main__":
    main()
