"""Scale: large bundles (columnar vs JSON layout, ivfpq vs flat) and the Ray engine's overhead.

What it measures, on this machine, as far as a shared two-core box allows in minutes:

1. Bundles of ``--entries`` FAQ entries (default 1,000,000; one answer row each). Their
   vectors are synthetic (benchmarks/bench_ann.py's generator, calibrated on real
   all-MiniLM-L6-v2 layer -2 vectors of ../shared/data: encoding a million texts takes
   hours here); their texts are the shared sets' answers with every fifth word replaced
   by a word from the sets' vocabulary and a reference code appended, so BM25 sees a
   realistic vocabulary. Per bundle: size on disk, write time, and in a fresh process the
   load time and resident memory (``FaqIndex.load``, then the first entry) and the first
   ``ask`` (question encoding, the BM25 index and per-entry tokens loaded on first use).
2. End-to-end ``ask`` (question encoding + store search + BM25 fusion + confidence),
   p50/p99 over the shared sets' real questions, for ``flat`` and ``ivfpq`` bundles with
   the same content; and recall@10 of the fused ranking of ``ivfpq`` against the fused
   ranking of exact flat search. For recall the question vectors are fresh draws of the
   generator (a real question's vector is unrelated to synthetic rows), with the real
   question texts for BM25.
3. ``--ray-entries`` (default 2,000) real entries indexed with the real model locally and
   on a local Ray (2 CPUs): the ratio is Ray's overhead on one machine (start-up shown apart).
4. ``--store-rows`` (default 0: skipped): benchmarks/bench_store.py's run, an ``ivfpq``
   store alone of that many synthetic vectors, streamed in chunks (see there).

    python benchmarks/bench_scale.py                      # 1M entries, about 15 minutes here
    python benchmarks/bench_scale.py --entries 200000 --ray-entries 0
    python benchmarks/bench_scale.py --entries 0 --ray-entries 0 --store-rows 10000000
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_ann import clustered_vectors, resident_mb
from bench_store import store_section
from shared_data import add_data_option, require_sets

from faq_search.corpus import FaqEntry, read_faq
from faq_search.encoding.settings import EncoderIdentity, EncoderSettings
from faq_search.index.faq_index import FaqIndex
from faq_search.index.lexical import HybridSettings
from faq_search.index.manifest import IndexManifest
from faq_search.index.store import IndexType, VectorStore

SETS = ("stackfaq", "covidfaq_jhu")
REPO = Path(__file__).resolve().parent.parent


def synthetic_entries(data: Path, count: int, seed: int = 0) -> list[FaqEntry]:
    """``count`` entries made from the shared sets' answers: every fifth word swapped, a reference code added."""
    bases = [e for name in SETS for e in read_faq(data / name / "faq.csv")]
    texts = [re.findall(r"\S+", e.answer)[:60] for e in bases]
    vocabulary = sorted({w for words in texts for w in words})
    rng = np.random.default_rng(seed)
    swaps = rng.integers(0, len(vocabulary), size=(count, 12))
    out = []
    for j in range(count):
        words = list(texts[j % len(texts)])
        for slot, pick in zip(range(0, len(words), 5), swaps[j], strict=False):
            words[slot] = vocabulary[pick]
        out.append(FaqEntry(f"e{j}", " ".join(words) + f" ref-{j:x}", ()))
    return out


def real_questions(data: Path) -> list[str]:
    import pandas as pd

    found: list[str] = []
    for name in SETS:
        found += pd.read_csv(data / name / "queries.csv")["query"].astype(str).tolist()
    return found


class MappedEncoder:
    """The real encoder's identity and settings, but each known question maps to a given vector (for recall)."""

    windows = None

    def __init__(self, real: object, vectors: dict[str, np.ndarray]) -> None:
        self.real = real
        self.vectors = vectors

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.vectors[t] for t in texts]).astype(np.float32)


def write_bundle(
    path: Path,
    entries: list[FaqEntry],
    vectors: np.ndarray,
    kind: str,
    columnar: bool,
    identity: EncoderIdentity,
    settings: EncoderSettings,
    lexical: FaqIndex | None = None,
) -> tuple[float, FaqIndex]:
    """A bundle of ``entries`` and ``vectors`` with BM25 fusion; the seconds its build and write took, and the index.

    ``lexical``: an index of the same entries whose BM25 index is reused (building it takes minutes at 1M).
    """
    from faq_search.index import files as index_files

    started = time.perf_counter()
    store = VectorStore.build(vectors, np.arange(len(entries)), ["answer"] * len(entries), kind)
    manifest = IndexManifest(
        identity=identity, settings=settings, precision="fp32", entry_count=len(entries),
        vector_count=len(entries), fields=("answer",), index_type=IndexType(kind), hybrid=HybridSettings(weight=0.5),
        source="synthetic",
    )  # fmt: skip
    index = FaqIndex(entries, store, manifest)
    if lexical is not None:
        index._lexical = lexical.lexical  # the same entries: the same BM25 index
    index_files.COLUMNAR_ENTRIES = 1 if columnar else 10**12
    index.save(path)
    return time.perf_counter() - started, index


def size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def child_load(path: str) -> None:
    """In a fresh process: load time and memory, then the first ask (prints one JSON line)."""
    started = time.perf_counter()
    index = FaqIndex.load(path)
    _ = index.entries[0]
    loaded = time.perf_counter() - started
    rss = resident_mb("VmRSS")
    started = time.perf_counter()
    index.ask("how do I reset my password", k=10)
    first = time.perf_counter() - started
    print(json.dumps({"load_s": loaded, "rss_mb": rss, "first_ask_s": first, "rss_after_ask_mb": resident_mb("VmRSS")}))


def hash_seconds(path: Path) -> float:
    """Seconds to SHA-256 every file of a bundle as the reader checks them (16 MiB steps; page cache warm)."""
    import hashlib

    started = time.perf_counter()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest = hashlib.sha256()
        with file.open("rb") as handle:
            while chunk := handle.read(1 << 24):
                digest.update(chunk)
    return time.perf_counter() - started


def measure_load(path: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, __file__, "--child-load", str(path)], capture_output=True, text=True, env=env, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def latency(index: FaqIndex, questions: list[str]) -> tuple[float, float]:
    timings = []
    for question in questions:
        started = time.perf_counter()
        index.ask(question, k=10)
        timings.append((time.perf_counter() - started) * 1000)
    ordered = sorted(timings)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def fused_recall(flat: FaqIndex, approximate: FaqIndex, questions: list[str]) -> float:
    overlaps = []
    for question in questions:
        exact = {m.entry.id for m in flat.ask(question, k=10)}
        found = {m.entry.id for m in approximate.ask(question, k=10)}
        overlaps.append(len(exact & found) / max(1, len(exact)))
    return float(np.mean(overlaps))


def bundles_section(data: Path, count: int, work: Path, questions: list[str]) -> None:
    from faq_search.encoding.encoder import BertEncoder

    real = BertEncoder(EncoderSettings(precision="fp32"))
    started = time.perf_counter()
    entries = synthetic_entries(data, count)
    vectors = clustered_vectors(count)
    print(f"{count:,} entries and vectors generated in {time.perf_counter() - started:.1f} s\n")
    layouts = [("flat", False), ("flat", True), ("ivfpq", True)]
    print("write s: store build + BM25 (first bundle only) + bundle write; load: FaqIndex.load + first entry,")
    print("in a fresh process; 1st ask: the first question (encoder, BM25 and per-entry tokens loaded on use)\n")
    print(
        f"{'bundle':<16} {'write s':>8} {'size MB':>8} {'load s':>7} {'RSS MB':>7} {'1st ask s':>9} {'RSS+ask MB':>10}"
    )
    first: FaqIndex | None = None
    for kind, columnar in layouts:
        path = work / f"{kind}-{'columnar' if columnar else 'json'}"
        seconds, built = write_bundle(path, entries, vectors, kind, columnar, real.identity, real.settings, first)
        first = first or built
        load = measure_load(path)
        name = f"{kind} {'columnar' if columnar else 'JSON'}"
        print(
            f"{name:<16} {seconds:>8.1f} {size_mb(path):>8.0f} {load['load_s']:>7.2f} {load['rss_mb']:>7.0f} "
            f"{load['first_ask_s']:>9.2f} {load['rss_after_ask_mb']:>10.0f}",
            flush=True,
        )
    del vectors, first, built
    flat = FaqIndex.load(work / "flat-columnar", encoder=real)
    ivfpq = FaqIndex.load(work / "ivfpq-columnar", encoder=real)
    sample = questions[:200]
    for index in (flat, ivfpq):
        index.ask(sample[0], k=10)  # warm: BM25 and per-entry tokens loaded
    print(f"\nask, end to end (encode + search + BM25 fusion + confidence), {len(sample)} real questions, k=10:")
    for name, index in (("flat", flat), ("ivfpq", ivfpq)):
        p50, p99 = latency(index, sample)
        print(f"  {name:<6} p50 {p50:7.1f} ms   p99 {p99:7.1f} ms")
    draws = clustered_vectors(count + 100)[count:]  # fresh draws of the same generator: new questions, known topics
    mapping = {q: v for q, v in zip(sample[:100], draws, strict=False)}
    flat = FaqIndex.load(work / "flat-columnar", encoder=MappedEncoder(real, mapping))  # type: ignore[arg-type]
    ivfpq = FaqIndex.load(work / "ivfpq-columnar", encoder=MappedEncoder(real, mapping))  # type: ignore[arg-type]
    print("the same without question encoding (precomputed question vectors): search + fusion + confidence")
    for name, index in (("flat", flat), ("ivfpq", ivfpq)):
        index.ask(next(iter(mapping)), k=10)
        p50, p99 = latency(index, list(mapping))
        print(f"  {name:<6} p50 {p50:7.1f} ms   p99 {p99:7.1f} ms")
    print(
        f"fused recall@10 of ivfpq against flat (exact), 100 questions: {fused_recall(flat, ivfpq, list(mapping)):.3f}"
    )
    tradeoff(flat, ivfpq, list(mapping))


def tradeoff(flat: FaqIndex, ivfpq: FaqIndex, questions: list[str]) -> None:
    """Fused recall@10 and latency (no question encoding) of ivfpq per nprobe and refine factor."""
    import faiss

    coarse = faiss.extract_index_ivf(ivfpq.store.index)
    refine = faiss.downcast_index(ivfpq.store.index)
    built = (coarse.nprobe, refine.k_factor)
    exact = [{m.entry.id for m in flat.ask(q, k=10)} for q in questions]
    lists = coarse.nlist
    print(f"\nivfpq search settings ({lists} lists; * = the defaults it was built with), {len(questions)} questions:")
    print(f"{'nprobe':>7} {'refine':>6} {'recall@10':>9} {'p50 ms':>7} {'p99 ms':>7}")
    for probe in sorted({max(1, lists // 12), max(1, lists // 6), max(1, lists // 3), built[0]}):
        for factor in sorted({16, 32, 64, built[1]}):
            coarse.nprobe, refine.k_factor = probe, factor
            found = [{m.entry.id for m in ivfpq.ask(q, k=10)} for q in questions]
            recall = float(np.mean([len(a & b) / max(1, len(a)) for a, b in zip(exact, found, strict=True)]))
            p50, p99 = latency(ivfpq, questions)
            mark = "*" if (probe, factor) == built else " "
            print(f"{probe:>6}{mark} {factor:>6} {recall:>9.3f} {p50:>7.1f} {p99:>7.1f}", flush=True)
    coarse.nprobe, refine.k_factor = built


def ray_section(data: Path, count: int, work: Path, texts: str = "answers", rounds: int = 1) -> None:
    from faq_search.index.ray_build import index_on_ray
    from faq_search.index.update import update_bundle

    bases = [e for name in SETS for e in read_faq(data / name / "faq.csv")]
    if texts == "answers":
        entries = [
            FaqEntry(f"r{j}", f"{bases[j % len(bases)].answer} (case {j})", bases[j % len(bases)].questions)
            for j in range(count)
        ]
    else:  # one short text per entry: the encoder's share is smallest, so Ray's per-row costs weigh most
        lines = real_questions(data)
        entries = [FaqEntry(f"r{j}", f"{lines[j % len(lines)]} (case {j})") for j in range(count)]
    source = work / "ray-faq.jsonl"
    source.write_text(
        "".join(json.dumps({"id": e.id, "answer": e.answer, "question": e.question or ""}) + "\n" for e in entries)
    )

    def local_run() -> float:
        started = time.perf_counter()
        update_bundle(work / "local", read_faq(source), full=True)
        return time.perf_counter() - started

    def ray_run() -> tuple[float, float]:
        import ray

        shutil.rmtree(work / "ray", ignore_errors=True)
        started = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        startup = time.perf_counter() - started
        try:
            started = time.perf_counter()
            index_on_ray(work / "ray", source)
            return time.perf_counter() - started, startup
        finally:
            ray.shutdown()

    rows = sum(1 + len(e.questions) for e in entries)
    kind = "answers + questions" if texts == "answers" else "the shared sets' questions as answers"
    print(f"\nRay engine, {count:,} entries ({rows:,} texts: {kind}), real model, 2 CPUs, {rounds} round(s):")
    locals_, rays = [], []
    for round_ in range(rounds):  # the order alternates, so a load that moves during the run hits both
        for engine in ("local", "ray") if round_ % 2 == 0 else ("ray", "local"):
            load = os.getloadavg()[0]
            if engine == "local":
                locals_.append(local_run())
                print(f"  round {round_ + 1} local {locals_[-1]:7.1f} s (load before {load:.2f})", flush=True)
            else:
                on_ray, startup = ray_run()
                rays.append(on_ray)
                print(
                    f"  round {round_ + 1} Ray   {on_ray:7.1f} s + start-up {startup:.1f} s (load before {load:.2f})",
                    flush=True,
                )
    same = all(
        (work / "local" / p.relative_to(work / "ray")).read_bytes() == p.read_bytes()
        for p in (work / "ray").rglob("*")
        if p.is_file() and p.name != "manifest.json"
    )
    local, on_ray = min(locals_), min(rays)
    print(f"  best: local {local:.1f} s, Ray (2 one-thread actors) {on_ray:.1f} s")
    print(f"  overhead {100 * (on_ray / local - 1):+.0f}% (start-up excluded); bundles equal file by file: {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--ray-entries", type=int, default=2_000, help="0 to skip the Ray section")
    parser.add_argument(
        "--ray-texts",
        choices=("answers", "questions"),
        default="answers",
        help="the Ray section's entries: real answers with their questions, or one short question-length text each",
    )
    parser.add_argument(
        "--ray-rounds", type=int, default=1, help="local and Ray runs of the Ray section, in alternating order"
    )
    parser.add_argument("--store-rows", type=int, default=0, help="vectors in the ivfpq-store-alone run; 0 to skip")
    parser.add_argument("--child-load", help=argparse.SUPPRESS)
    parser.add_argument("--hash-only", type=Path, help="print how long checking a bundle's checksums takes, and exit")
    add_data_option(parser)
    args = parser.parse_args()
    if args.child_load:
        child_load(args.child_load)
        return
    if args.hash_only:
        hash_seconds(args.hash_only)  # once to warm the page cache, as a load right after a write finds it
        seconds = hash_seconds(args.hash_only)
        megabytes = size_mb(args.hash_only)
        print(f"SHA-256 of {args.hash_only} ({megabytes:.0f} MB): {seconds:.2f} s, load {os.getloadavg()[0]:.2f}")
        return
    data = require_sets(args.data, SETS) if args.entries or args.ray_entries else Path()
    print(f"load before: {os.getloadavg()[0]:.2f} (1-min), {os.cpu_count()} CPUs")
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        if args.entries:
            bundles_section(data, args.entries, work, real_questions(data))
        if args.ray_entries:
            ray_section(data, args.ray_entries, work, args.ray_texts, args.ray_rounds)
        if args.store_rows:
            store_section(args.store_rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load after: {os.getloadavg()[0]:.2f} (1-min)")


if __name__ == "__main__":
    main()
