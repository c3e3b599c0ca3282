"""FAQ-adapted encoder: quality before/after, training time and memory, on the shared sets.

For each set: the base encoder (layer -2 mean, the defaults) and the encoder
adapted on the FAQ's own question->answer pairs (no test query involved, the
defaults of ``faq-search adapt``), each scored on all of the set's queries
(MRR@10), dense only and with the default hybrid BM25 fusion (0.5). Then the
time to adapt a 1,000-entry FAQ: the entries of both sets together, topped up
to 1,000 with stackfaq answers asked by a second wording (a query of the set).

    python benchmarks/adapt.py [--sets stackfaq covidfaq_jhu] [--epochs N] [--no-timing] [--data DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from shared_data import add_data_option, require_sets

from faq_search.corpus import FaqEntry, read_faq
from faq_search.encoding.encoder import BertEncoder
from faq_search.index.faq_index import FaqIndex
from faq_search.index.lexical import HybridSettings
from faq_search.quality.adapt import AdaptSettings, adapt
from faq_search.quality.evaluate import LabelledQuery, evaluate, read_queries

SETS = ("stackfaq", "covidfaq_jhu")


def scores(encoder: BertEncoder, entries: Sequence[FaqEntry], queries: Sequence[LabelledQuery]) -> tuple[float, float]:
    """MRR@10 over all queries: dense only, and with hybrid fusion 0.5 (the default)."""
    out = []
    for weight in (0.0, 0.5):
        index = FaqIndex.build(entries, encoder=encoder, hybrid=HybridSettings(weight=weight))
        out.append(evaluate(index, queries).mrr_at_10)
    return out[0], out[1]


def thousand_entries(data: Path) -> list[FaqEntry]:
    """1,000 entries from the shared sets: all of both FAQs, then stackfaq answers under a query's wording."""
    entries: list[FaqEntry] = []
    for name in SETS:
        entries += [
            FaqEntry(id=f"{name}-{e.id}", answer=e.answer, questions=e.questions)
            for e in read_faq(data / name / "faq.csv")
        ]
    stack = {e.id: e for e in read_faq(data / "stackfaq" / "faq.csv")}
    for n, query in enumerate(read_queries(data / "stackfaq" / "queries.csv")):
        if len(entries) >= 1000:
            break
        answer = stack[sorted(query.relevant)[0]].answer
        entries.append(FaqEntry(id=f"extra-{n}", answer=answer, questions=(query.query,)))
    return entries


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    parser.add_argument("--epochs", type=int, default=None, help="default: faq-search adapt's automatic choice")
    parser.add_argument("--no-timing", action="store_true", help="skip the 1,000-entry timing run")
    add_data_option(parser)
    args = parser.parse_args()
    data = require_sets(args.data, SETS if not args.no_timing else args.sets)
    settings = AdaptSettings(epochs=args.epochs)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )
    print(f"adapt settings: {settings}")
    print("MRR@10 on all queries of each set; training on the FAQ's own pairs only\n")
    for name in args.sets:
        entries = read_faq(data / name / "faq.csv")
        queries = read_queries(data / name / "queries.csv")
        encoder = BertEncoder()
        base = scores(encoder, entries, queries)
        started = time.perf_counter()
        report = adapt(encoder, entries, settings)
        wall = time.perf_counter() - started
        after = scores(encoder, entries, queries)
        label = "adapted encoder " if report.kept else "kept base (guard)"
        print(f"## {name}: {len(entries)} entries, {report.pairs} training pairs, {len(queries)} queries")
        print(f"  base encoder       dense {base[0]:.3f}  hybrid {base[1]:.3f}")
        print(f"  {label}  dense {after[0]:.3f}  hybrid {after[1]:.3f}")
        print(
            f"  guard: held-out MRR@10 on {report.held_out_questions} questions {report.before:.3f} -> "
            f"{report.after:.3f}, kept={report.kept}, stopped by {report.stopped} after {report.steps} steps"
        )
        print(f"  adapt wall time {wall:.0f} s, peak resident memory {report.peak_memory_mb:.0f} MiB")
        print()
    if not args.no_timing:
        entries = thousand_entries(data)
        started = time.perf_counter()
        report = adapt(BertEncoder(), entries, settings)
        wall = time.perf_counter() - started
        print(f"## timing: {len(entries)}-entry FAQ, {report.pairs} training pairs")
        print(
            f"  adapt wall time {wall:.0f} s ({report.steps} steps, stopped by {report.stopped}; "
            f"held-out {report.before:.3f} -> {report.after:.3f}), peak resident memory {report.peak_memory_mb:.0f} MiB"
        )


if __name__ == "__main__":
    main()
