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

Both runtimes side by side, in one run: the bundle is given its ONNX query
encoder (``faq-search onnx``), and steps 2 and 3 run with ``--runtime torch``
(the lean BERT, bf16 where the CPU has it) and ``--runtime onnx``
(onnxruntime, fp32); then ``faq-search serve`` on the 10k bundle with each
runtime under 32 concurrent clients (bench_serve's load generator), and the
installed size of a serving venv with torch (the package's dependencies) and
without it (requirements-serve.txt), summed from the installed files of each
dependency closure (pip and the dev tools left out).

    python benchmarks/bench_query.py [--entries 10000] [--queries 500] [--data DIR] [--serve-requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from shared_data import add_data_option, require_sets

if TYPE_CHECKING:
    from faq_search.encoding.encoder import BertEncoder
    from faq_search.index.faq_index import FaqIndex


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
index = FaqIndex.load(sys.argv[1], runtime=sys.argv[3])
mark("read and verify the bundle")
if sys.argv[3] == "torch":
    import torch
    mark("import torch")
else:
    import onnxruntime
    mark("import onnxruntime")
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
    parser.add_argument("--serve-requests", type=int, default=2000, help="POST /ask per runtime in the serve test")
    add_data_option(parser)
    args = parser.parse_args()
    data = require_sets(args.data, ("stackfaq", "covidfaq_jhu"))

    import pandas as pd

    from faq_search.corpus import FaqEntry
    from faq_search.encoding.encoder import BertEncoder
    from faq_search.index.faq_index import FaqIndex
    from faq_search.index.lexical import HybridSettings
    from faq_search.index.onnx_files import export_encoder

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
        f"fusion weight {index.hybrid.weight}, index type {index.manifest.index_type}; torch runs in "
        f"{encoder.precision.value}, onnxruntime in fp32"
    )
    dense_only = FaqIndex.build(entries, encoder=encoder, hybrid=HybridSettings(weight=0.0), reuse=index)

    workdir = Path(tempfile.mkdtemp(prefix="faq-bench-"))
    try:
        bundle = workdir / "index"
        started = time.perf_counter()
        export_encoder(index)
        print(f"ONNX export of the query encoder (with its agreement check): {time.perf_counter() - started:.1f} s")
        index.save(bundle)
        on_onnx = FaqIndex.load(bundle, runtime="onnx")
        onnx_dense = FaqIndex(dense_only.entries, dense_only.store, dense_only.manifest, on_onnx.encoder)
        for question in asked[:20]:  # warm-up: lazy BM25 index, caches, allocator
            for warm in (index, dense_only, on_onnx, onnx_dense):
                warm.ask(question)
        in_process(asked, {"torch": (index, dense_only), "onnx": (on_onnx, onnx_dense)})
        cold(args, bundle, workdir, encoder, len(entries))
        serve(bundle, args.serve_requests)
        installed_sizes()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def in_process(asked: list[str], indexes: dict[str, tuple[FaqIndex, FaqIndex]]) -> None:
    """p50/p99 of ask and its parts, one question at a time, for each runtime."""
    print(f"\nin-process, one question at a time, {len(asked)} real queries, k=5:")
    for runtime, (fused, dense) in indexes.items():
        for label, calls in _rows(asked, fused, dense):
            print(f"  {runtime:<6}{label:<36} {percentiles(timed(calls))}")


def _rows(asked: list[str], fused: FaqIndex, dense: FaqIndex) -> list[tuple[str, list[Callable[[], object]]]]:
    encoder, store = fused.encoder, fused.store
    vectors = [encoder.encode([q]) for q in asked]
    return [
        ("ask (default: dense + BM25 fusion)", [lambda q=q: fused.ask(q) for q in asked]),
        ("ask (fusion off, dense only)", [lambda q=q: dense.ask(q) for q in asked]),
        ("of which: encode the question", [lambda q=q: encoder.encode([q]) for q in asked]),
        ("of which: dense search (store)", [lambda v=v: store.search(v, 5) for v in vectors]),
    ]


def cold(args: argparse.Namespace, bundle: Path, workdir: Path, encoder: BertEncoder, entries: int) -> None:
    """Wall time of cold ``faq-search ask`` processes per runtime, and where one spends it."""
    from faq_search.corpus import read_faq
    from faq_search.index.faq_index import FaqIndex
    from faq_search.index.onnx_files import export_encoder

    faq = read_faq(Path(__file__).resolve().parent.parent / "data" / "faq.csv")
    sample_index = FaqIndex.build(faq, encoder=encoder)
    export_encoder(sample_index)
    sample = workdir / "sample"
    sample_index.save(sample)
    command = shutil.which("faq-search") or str(Path(sys.executable).parent / "faq-search")
    question = "how do I delete my facebook account"
    print(f"\ncold processes (wall time, median of {args.cold_runs}):")
    for runtime in ("torch", "onnx"):
        for label, target in [(f"<{entries // 1000}k bundle>", bundle), ("<48-entry data/faq.csv bundle>", sample)]:
            times = wall([command, "ask", question, "--index", str(target), "--runtime", runtime], args.cold_runs)
            print(
                f"  faq-search ask '{question}' --index {label} --runtime {runtime}: "
                f"{statistics.median(times):.2f} s (min {min(times):.2f}, max {max(times):.2f})"
            )
    help_times = wall([command, "--help"], args.cold_runs)
    print(
        f"  faq-search --help: {statistics.median(help_times):.2f} s "
        f"(min {min(help_times):.2f}, max {max(help_times):.2f})"
    )
    for runtime in ("torch", "onnx"):
        print(f"  where a cold ask on the 10k bundle spends its time, --runtime {runtime} (one run):")
        phases = subprocess.run(
            [sys.executable, "-c", COLD_PHASES, str(bundle), question, runtime],
            capture_output=True,
            text=True,
            check=True,
        )
        print(phases.stdout.rstrip())


def serve(bundle: Path, requests: int) -> None:
    """``faq-search serve`` on the bundle with each runtime: POST /ask from 32 keep-alive clients (batching on)."""
    from bench_serve import Server, questions, run_load

    async def one(runtime: str) -> str:
        log = bundle.parent / f"serve-{runtime}.log"
        server = Server(bundle, batching=True, log=log, extra=["--runtime", runtime])
        try:
            await server.wait_ready()
            texts = questions()
            await run_load(server.port, runtime, 64, 32, 60, texts, 5)  # warm-up
            load = os.getloadavg()[0]
            result, _ = await run_load(server.port, runtime, requests, 32, 120, texts, 5)
            return (
                f"  --runtime {runtime:<6} {result.throughput:6.1f} requests/s   p50 {result.percentile(0.5):6.1f} ms"
                f"   p99 {result.percentile(0.99):6.1f} ms   failed {result.failed}/{result.requests}"
                f"   (load {load:.2f} -> {os.getloadavg()[0]:.2f})"
            )
        finally:
            server.stop()

    print(f"\nfaq-search serve on the 10k bundle, {requests} POST /ask from 32 clients, batching on:")
    for runtime in ("torch", "onnx"):
        print(asyncio.run(one(runtime)))


def _closure(requirements: list[str]) -> dict[str, int]:
    """Installed bytes of each distribution in the dependency closure of ``requirements`` (as installed here)."""
    from importlib import metadata

    sizes: dict[str, int] = {}
    pending = list(requirements)
    while pending:
        name = re.split(r"[<>=!~;\[ ]", pending.pop().strip(), maxsplit=1)[0]
        key = name.lower().replace("_", "-")
        if not name or key in sizes:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        files = [Path(str(dist.locate_file(f))) for f in dist.files or []]
        sizes[key] = sum(f.stat().st_size for f in files if f.is_file())
        pending += [r for r in dist.requires or [] if "extra ==" not in r]
    return sizes


def installed_sizes() -> None:
    """A serving install's size with torch (faq-search's own dependencies) and without (requirements-serve.txt)."""
    from importlib import metadata

    repo = Path(__file__).resolve().parent.parent
    lines = (repo / "requirements-serve.txt").read_text(encoding="utf-8").splitlines()
    serving = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    full = [r for r in metadata.distribution("faq-search").requires or [] if "extra ==" not in r]
    print("\ninstalled size of the dependencies (their files in site-packages; pip, Python and dev tools left out):")
    for label, requirements in [
        ("with torch (pip install faq-search, no onnxruntime)", full),
        ("without torch (requirements-serve.txt)", serving),
        ("without torch and pandas (ask and serve; eval needs pandas)", [r for r in serving if "pandas" not in r]),
    ]:
        sizes = _closure(requirements)
        largest = sorted(sizes.items(), key=lambda kv: -kv[1])[:5]
        names = ", ".join(f"{name} {size / 2**20:.0f}" for name, size in largest)
        print(f"  {label}: {sum(sizes.values()) / 2**20:.0f} MiB in {len(sizes)} distributions (largest, MiB: {names})")


if __name__ == "__main__":
    main()
