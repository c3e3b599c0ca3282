"""Answering: in-process ``ask`` latency on a 10k-entry index, and the cold-process CLI.

1. Builds a 10,000-entry index with the library defaults (bundled model, layer
   -2, question+answer fields, flat index, BM25 fusion weight 0.5). The entries
   pair real questions with real answers of ../shared/data (stackfaq and
   covidfaq_jhu, recombined and given unique ids) so that texts, lengths and
   vocabulary are those of real FAQs; identical texts are embedded once.
2. In process, model loaded: ``ask(question, k=5)`` one question at a time for
   the real queries of ../shared/data, p50 and p99; the same split into its
   parts (encoding the question; dense search alone) and with fusion off.
3. Cold processes: the wall time of ``faq-search ask QUESTION --index DIR``
   and of ``faq-search --help``, median of 5 each.

    python benchmarks/bench_query.py [--entries 10000] [--queries 500] [--data DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from shared_data import add_data_option, require_sets


def percentiles(timings: list[float]) -> str:
    ms = np.array(timings) * 1000
    return f"p50 {np.percentile(ms, 50):7.2f} ms   p99 {np.percentile(ms, 99):7.2f} ms   (n={len(ms)})"


def timed(calls: list[Callable[[], object]]) -> list[float]:
    out = []
    for call in calls:
        started = time.perf_counter()
        call()
        out.append(time.perf_counter() - started)
    return out


def wall(command: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - started)
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed: {result.stderr.strip()}")
    return times


COLD_PHASES = """
import sys, time
started = time.perf_counter()
marks = []
def mark(label):
    marks.append((label, time.perf_counter()))
from faq_search.index.faq_index import FaqIndex
mark("import faq_search.index.faq_index")
index = FaqIndex.load(sys.argv[1])
mark("read and verify the bundle")
import torch
mark("import torch")
index.encoder
mark("load the encoder (weights, hash, tokenizer)")
if index.hybrid.enabled:
    index.lexical
    mark("read the stored BM25 index (first fused ask)")
index.ask(sys.argv[2])
mark("answer the question")
last = started
for label, at in marks:
    print(f"    {label:<48} {at - last:6.2f} s")
    last = at
print(f"    {'total (after interpreter start)':<48} {last - started:6.2f} s")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000, help="FAQ entries in the index")
    parser.add_argument("--queries", type=int, default=500, help="questions asked one at a time")
    parser.add_argument("--cold-runs", type=int, default=5, help="cold CLI processes per command")
    add_data_option(parser)
    args = parser.parse_args()
    data = require_sets(args.data, ("stackfaq", "covidfaq_jhu"))

    import pandas as pd

    from faq_search.corpus import FaqEntry, read_faq
    from faq_search.encoding.encoder import BertEncoder
    from faq_search.index.faq_index import FaqIndex
    from faq_search.index.lexical import HybridSettings

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_encode import machine

    questions: list[str] = []
    answers: list[str] = []
    queries: list[str] = []
    for name in ("stackfaq", "covidfaq_jhu"):
        faq = pd.read_csv(data / name / "faq.csv")
        questions += faq["question"].dropna().astype(str).tolist()
        answers += faq["answer"].astype(str).tolist()
        queries += pd.read_csv(data / name / "queries.csv")["query"].astype(str).tolist()
    questions, answers = list(dict.fromkeys(questions)), list(dict.fromkeys(answers))
    rng = np.random.default_rng(0)
    entries = [
        FaqEntry(f"e{i:05d}", answers[i % len(answers)], (questions[int(rng.integers(len(questions)))],))
        for i in range(args.entries)
    ]
    asked = [queries[int(i)] for i in rng.choice(len(queries), size=min(args.queries, len(queries)), replace=False)]

    print(f"machine: {machine()}")
    started = time.perf_counter()
    encoder = BertEncoder()
    load_seconds = time.perf_counter() - started
    started = time.perf_counter()
    index = FaqIndex.build(entries, encoder=encoder)
    report = index.report
    print(
        f"index: {len(entries)} entries, {len(index.store)} vectors ({report.unique_texts if report else '?'} "
        f"distinct texts embedded) in {time.perf_counter() - started:.0f} s; model load {load_seconds:.2f} s; "
        f"fusion weight {index.hybrid.weight}, index type {index.manifest.index_type}"
    )
    dense_only = FaqIndex.build(entries, encoder=encoder, hybrid=HybridSettings(weight=0.0), reuse=index)

    workdir = Path(tempfile.mkdtemp(prefix="faq-bench-"))
    try:
        bundle = workdir / "index"
        index.save(bundle)
        for question in asked[:20]:  # warm-up: lazy BM25 index, caches, allocator
            index.ask(question)
            dense_only.ask(question)

        vectors = [encoder.encode([q]) for q in asked]
        print(f"\nin-process, one question at a time, {len(asked)} real queries, k=5:")
        store = index.store
        rows = [
            ("ask (default: dense + BM25 fusion)", [lambda q=q: index.ask(q) for q in asked]),
            ("ask (fusion off, dense only)", [lambda q=q: dense_only.ask(q) for q in asked]),
            ("of which: encode the question", [lambda q=q: encoder.encode([q]) for q in asked]),
            ("of which: dense search (store)", [lambda v=v: store.search(v, 5) for v in vectors]),
        ]
        for label, calls in rows:
            print(f"  {label:<36} {percentiles(timed(calls))}")

        sample = workdir / "sample"
        FaqIndex.build(read_faq(Path(__file__).resolve().parent.parent / "data" / "faq.csv"), encoder=encoder).save(
            sample
        )
        command = shutil.which("faq-search") or str(Path(sys.executable).parent / "faq-search")
        question = "how do I delete my facebook account"
        print(f"\ncold processes (wall time, median of {args.cold_runs}):")
        for label, target in [
            (f"<{len(entries) // 1000}k bundle>", bundle),
            ("<48-entry data/faq.csv bundle>", sample),
        ]:
            times = wall([command, "ask", question, "--index", str(target)], args.cold_runs)
            print(
                f"  faq-search ask '{question}' --index {label}: {statistics.median(times):.2f} s "
                f"(min {min(times):.2f}, max {max(times):.2f})"
            )
        help_times = wall([command, "--help"], args.cold_runs)
        print(
            f"  faq-search --help: {statistics.median(help_times):.2f} s "
            f"(min {min(help_times):.2f}, max {max(help_times):.2f})"
        )
        print("  where a cold ask on the 10k bundle spends its time (one run):")
        phases = subprocess.run(
            [sys.executable, "-c", COLD_PHASES, str(bundle), question], capture_output=True, text=True, check=True
        )
        print(phases.stdout.rstrip())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
