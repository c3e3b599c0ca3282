"""Filters and several indexes: filtered ask latency at 100k entries, and the memory of 5 indexes in one service.

1. Filtered ask. A 100,000-entry index (answers only, one row per entry,
   BM25 fusion on as by default) whose *vectors are synthetic*: clustered
   random unit vectors of 384 dimensions, and each question's vector is a
   seeded random vector of its text, so no model runs and the numbers are
   those of filtering and ranking alone (the bundled model adds about 5 ms
   of encoding to every ask, filtered or not, which would only bring the
   ratios closer to 1). Texts are random words, so BM25 has terms to score.
   Filters keep 50%, 5% and 0.1% of the entries (``half = a``,
   ``twenty = N``, ``thousand = N``; N rotates over the questions, so most
   filters are evaluated afresh rather than served from the mask cache).
   ``ask(question, k=5, where=...)`` one question at a time, p50 and p99,
   for flat and the approximate index types, against the unfiltered ask.
2. Memory. Five bundles of 10,000 entries built for the bundled model
   (vectors synthetic again, so building takes seconds), served by one
   process (``create_app`` with five named indexes: one shared encoder) and
   by a process serving one of them; each process starts the app, asks one
   question per index and reports its resident memory (VmRSS) and peak
   (VmHWM). Five separate processes hold five times the one-index figure.

    python benchmarks/bench_filters.py [--entries 100000] [--queries 200] [--types flat,hnsw,ivf]
                                       [--memory-entries 10000] [--memory-indexes 5] [--skip-memory]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

DIMENSION = 384
WORDS = [f"w{i}" for i in range(5000)]
SELECTIVITY = {"50%": "half = {h}", "5%": "twenty = {t}", "0.1%": "thousand = {m}"}


class SyntheticEncoder:
    """Seeded random vectors near one of 256 cluster centres; the identity of ``like`` (a real encoder), if given."""

    windows = None

    def __init__(self, like: object | None = None) -> None:
        from faq_search.encoding.settings import EncoderIdentity, EncoderSettings, Precision

        self.like = like
        self.precision = getattr(like, "precision", Precision.FP32)
        self.settings = getattr(like, "settings", EncoderSettings(model="synthetic"))
        self.identity = getattr(like, "identity", None) or EncoderIdentity(
            model_name="synthetic",
            weights_sha256=hashlib.sha256(b"synthetic").hexdigest(),
            layer=self.settings.layer,
            pooling=self.settings.pooling.value,
            include_special=self.settings.include_special,
            max_seq_len=self.settings.max_seq_len,
            dimension=DIMENSION,
        )
        self.dimension = DIMENSION
        self.centres = np.random.default_rng(1).standard_normal((256, DIMENSION)).astype(np.float32)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), DIMENSION), dtype=np.float32)
        for row, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
            rng = np.random.default_rng(seed)
            out[row] = self.centres[seed % 256] + 0.8 * rng.standard_normal(DIMENSION)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def synthetic_entries(count: int, seed: int = 0) -> list:  # type: ignore[type-arg]
    from faq_search.corpus import FaqEntry

    rng = np.random.default_rng(seed)
    words = rng.integers(0, len(WORDS), size=(count, 12))
    return [
        FaqEntry(
            f"e{i:06d}",
            "answer " + " ".join(WORDS[w] for w in words[i]),
            (),
            {"half": "ab"[i % 2], "twenty": str(i % 20), "thousand": str(i % 1000)},
        )
        for i in range(count)
    ]


def percentiles(timings: list[float]) -> tuple[float, float]:
    ms = np.array(timings) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def filtered_ask(entries: int, queries: int, types: list[str]) -> None:
    from faq_search.encoding.settings import Fields
    from faq_search.index.faq_index import FaqIndex

    encoder = SyntheticEncoder()
    faq = synthetic_entries(entries)
    rng = np.random.default_rng(7)
    questions = [" ".join(WORDS[w] for w in rng.integers(0, len(WORDS), size=6)) for _ in range(queries)]
    print(f"1. filtered ask: {entries} entries (synthetic vectors, {DIMENSION} dims), {queries} questions, k=5")
    print(f"   {'index':<6} {'filter keeps':<13} {'p50 ms':>8} {'p99 ms':>8} {'p50 / unfiltered':>17}  results")
    for kind in types:
        started = time.perf_counter()
        index = FaqIndex.build(
            faq, encoder=encoder, fields=Fields.ANSWER, index_type=kind, metadata_columns=["half", "twenty", "thousand"]
        )
        built = time.perf_counter() - started
        for question in questions[:20]:  # warm-up: BM25 index, pool tokens, allocator
            index.ask(question, k=5)
            index.ask(question, k=5, where="half = a")
        base = None
        for label, template in [("unfiltered", None), *SELECTIVITY.items()]:
            timings, short = [], 0
            for q, question in enumerate(questions):
                where = None if template is None else template.format(h="ab"[q % 2], t=q % 20, m=(q * 7) % 1000)
                started = time.perf_counter()
                found = index.ask(question, k=5, min_score=0.0, where=where)
                timings.append(time.perf_counter() - started)
                short += len(found) < 5
            p50, p99 = percentiles(timings)
            base = p50 if base is None else base
            note = "all 5 matches" if short == 0 else f"{short} questions with fewer than 5"
            print(f"   {kind:<6} {label:<13} {p50:8.2f} {p99:8.2f} {p50 / base:16.2f}x  {note}")
        print(f"   ({kind} built in {built:.0f} s)")


MEMORY_SCRIPT = """
import json, sys
from pathlib import Path
from fastapi.testclient import TestClient
from faq_search.service.app import ServeConfig, create_app
folders = [Path(p) for p in sys.argv[1:]]
named = tuple((f.name, f) for f in folders)
config = ServeConfig(index_dir=folders[0], named=named, watch_s=0)
with TestClient(create_app(config)) as client:
    for folder in folders:
        response = client.post(f"/indexes/{folder.name}/ask", json={"question": "where is my parcel", "k": 5})
        assert response.status_code == 200, response.text
    encoders = {id(h.current.index.encoder) for h in client.app.state.service.holders.values()}
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    rss, peak = (int(status[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM"))
    print(json.dumps({"rss_mb": rss, "peak_mb": peak, "encoders": len(encoders)}))
"""


def memory(entries: int, count: int) -> None:
    from faq_search.encoding.encoder import BertEncoder
    from faq_search.index.faq_index import FaqIndex

    real = BertEncoder()
    encoder = SyntheticEncoder(like=real)
    workdir = Path(tempfile.mkdtemp(prefix="faq-bench-filters-"))
    folders = []
    for position in range(count):
        folder = workdir / f"faq{position}"
        FaqIndex.build(synthetic_entries(entries, seed=position), encoder=encoder).save(folder)
        folders.append(folder)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}

    def measured(chosen: list[Path]) -> dict[str, float]:
        result = subprocess.run(
            [sys.executable, "-c", MEMORY_SCRIPT, *map(str, chosen)], capture_output=True, text=True, env=env
        )
        if result.returncode != 0:
            raise SystemExit(result.stderr.strip().splitlines()[-1])
        return dict(json.loads(result.stdout.strip().splitlines()[-1]))

    one = measured(folders[:1])
    many = measured(folders)
    print(f"2. memory: {count} indexes of {entries} entries (bundled model's identity, synthetic vectors, BM25 on)")
    print(f"   one process, 1 index:            RSS {one['rss_mb']:7.0f} MB   peak {one['peak_mb']:7.0f} MB")
    print(
        f"   one process, {count} indexes:          RSS {many['rss_mb']:7.0f} MB   peak {many['peak_mb']:7.0f} MB"
        f"   ({many['encoders']:.0f} encoder loaded)   {many['rss_mb'] / one['rss_mb']:.2f}x one index"
    )
    total = count * one["rss_mb"]
    print(f"   {count} processes, 1 index each:     RSS {total:7.0f} MB in all ({count:.0f}x one index)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000, help="entries of the filtered-ask index")
    parser.add_argument("--queries", type=int, default=200, help="questions asked per filter")
    parser.add_argument("--types", default="flat,hnsw,ivf", help="index types, comma-separated")
    parser.add_argument("--memory-entries", type=int, default=10_000, help="entries per index in the memory test")
    parser.add_argument("--memory-indexes", type=int, default=5, help="indexes in one service")
    parser.add_argument("--skip-memory", action="store_true", help="only the filtered-ask part")
    parser.add_argument("--skip-ask", action="store_true", help="only the memory part")
    args = parser.parse_args()
    print(f"load: {Path('/proc/loadavg').read_text().split()[:3]} on {os.cpu_count()} CPUs")
    if not args.skip_ask:
        filtered_ask(args.entries, args.queries, [t.strip() for t in args.types.split(",") if t.strip()])
    if not args.skip_memory:
        memory(args.memory_entries, args.memory_indexes)
    print(f"load after: {Path('/proc/loadavg').read_text().split()[:3]}")


if __name__ == "__main__":
    main()
