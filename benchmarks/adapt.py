"""FAQ-adapted encoder: quality before/after, training time and memory, on the shared sets.

For each set: the base encoder (layer -2 mean, the defaults) and the encoder
adapted on the FAQ's own question->answer pairs (no test query involved, the
defaults of ``faq-search adapt``), each scored on all of the set's queries
(MRR@10), dense only and with the default hybrid BM25 fusion (0.5), plus the
guard's own numbers (held-out served-ranking MRR@10 with standard errors).
Then the time and peak memory to adapt a 1,000-entry FAQ: the entries of both
sets together (787), topped up to 1,000 with stackfaq answers asked by a second
wording (a query of the set, so those 213 entries repeat an answer under a new
question).

Peak memory is the process's peak resident set (``getrusage`` ``ru_maxrss``),
measured in a fresh process per run (``--only``) so one run's peak does not
hide the next one's; without ``--only`` each run is started as a subprocess.

    python benchmarks/adapt.py [--sets stackfaq covidfaq_jhu] [--epochs N] [--max-steps N] [--no-timing]
                               [--only SET|thousand] [--data DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from shared_data import add_data_option, require_sets

from faq_search.corpus import FaqEntry, read_faq
from faq_search.encoding.encoder import BertEncoder
from faq_search.index.faq_index import FaqIndex
from faq_search.index.lexical import HybridSettings
from faq_search.quality.adapt import AdaptReport, AdaptSettings, adapt
from faq_search.quality.evaluate import evaluate
from faq_search.quality.queries import LabelledQuery, read_queries

SETS = ("stackfaq", "covidfaq_jhu")


def scores(encoder: BertEncoder, entries: Sequence[FaqEntry], queries: Sequence[LabelledQuery]) -> tuple[float, float]:
    """MRR@10 over all queries: dense only, and with hybrid fusion 0.5 (the default)."""
    out = []
    for weight in (0.0, 0.5):
        index = FaqIndex.build(entries, encoder=encoder, hybrid=HybridSettings(weight=weight))
        out.append(evaluate(index, queries).mrr_at_10)
    return out[0], out[1]


def peak_rss_mib() -> float:
    """This process's peak resident set so far (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def guard_line(report: AdaptReport) -> str:
    return (
        f"  guard: served-ranking MRR@10 on {report.held_out_questions} held-out questions ({report.folds} fold(s)) "
        f"{report.before:.3f} ± {report.before_error:.3f} -> {report.after:.3f} ± {report.after_error:.3f}, "
        f"gain {report.gain:+.3f} ± {report.gain_error:.3f}, kept={report.kept}, "
        f"{report.steps} steps ({report.stopped})"
    )


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


def run_set(name: str, data: Path, settings: AdaptSettings) -> None:
    entries = read_faq(data / name / "faq.csv")
    queries = read_queries(data / name / "queries.csv")
    encoder = BertEncoder()
    base = scores(encoder, entries, queries)
    started = time.perf_counter()
    report = adapt(encoder, entries, settings, hybrid=HybridSettings())
    wall = time.perf_counter() - started
    after = scores(encoder, entries, queries)
    label = "adapted encoder " if report.kept else "kept base (guard)"
    print(f"## {name}: {len(entries)} entries, {report.pairs} training pairs, {len(queries)} queries")
    print(f"  base encoder       dense {base[0]:.3f}  hybrid {base[1]:.3f}")
    print(f"  {label}  dense {after[0]:.3f}  hybrid {after[1]:.3f}")
    print(guard_line(report))
    print(f"  adapt wall time {wall:.0f} s, peak resident memory {peak_rss_mib():.0f} MiB (whole process)")
    print(flush=True)


def run_thousand(data: Path, settings: AdaptSettings) -> None:
    entries = thousand_entries(data)
    started = time.perf_counter()
    report = adapt(BertEncoder(), entries, settings, hybrid=HybridSettings())
    wall = time.perf_counter() - started
    print(f"## timing: {len(entries)}-entry FAQ, {report.pairs} training pairs")
    print(guard_line(report))
    print(f"  adapt wall time {wall:.0f} s, peak resident memory {peak_rss_mib():.0f} MiB (whole process)")
    print(flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    parser.add_argument("--epochs", type=int, default=None, help="default: faq-search adapt's automatic choice")
    parser.add_argument("--max-steps", type=int, default=None, help="cap on the steps of each training run")
    parser.add_argument("--no-timing", action="store_true", help="skip the 1,000-entry timing run")
    parser.add_argument("--only", choices=[*SETS, "thousand"], help="run one measurement in this process")
    add_data_option(parser)
    args = parser.parse_args()
    settings = AdaptSettings(epochs=args.epochs, max_steps=args.max_steps)
    if args.only:
        data = require_sets(args.data, SETS if args.only == "thousand" else [args.only])
        if args.only == "thousand":
            run_thousand(data, settings)
        else:
            run_set(args.only, data, settings)
        return
    require_sets(args.data, SETS if not args.no_timing else args.sets)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )
    print(f"adapt settings: {settings}")
    print("MRR@10 on all queries of each set; training on the FAQ's own pairs only; one process per run\n", flush=True)
    passed = [a for a in sys.argv[1:] if a not in ("--no-timing",)]
    for only in [*args.sets, *([] if args.no_timing else ["thousand"])]:
        subprocess.run([sys.executable, __file__, *_without_sets(passed), "--only", only], check=True)


def _without_sets(argv: list[str]) -> list[str]:
    """The command line minus ``--sets ...`` (each subprocess gets ``--only``)."""
    out, skipping = [], False
    for arg in argv:
        if arg == "--sets":
            skipping = True
            continue
        if skipping and not arg.startswith("--"):
            continue
        skipping = False
        out.append(arg)
    return out


if __name__ == "__main__":
    main()
