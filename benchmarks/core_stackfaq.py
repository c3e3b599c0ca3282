"""Core measurement on a shared FAQ set: quality of the default settings and speed.

Indexes ``faq.csv`` with the default encoder settings (layer -2 mean pooling,
question+answer fields), asks every query of ``queries.csv`` and prints
MRR@10 and Recall@10, the indexing time, and the median in-process time of one
``ask`` (one question at a time, model already loaded).

    python benchmarks/core_stackfaq.py [--set stackfaq] [--data DIR]
    python benchmarks/core_stackfaq.py --set covidfaq_jhu --precision fp32   # as on a CPU without native bf16
"""

from __future__ import annotations

import argparse
import statistics
import time

from shared_data import add_data_option, require_sets

from faq_search.corpus import read_faq
from faq_search.index.faq_index import FaqIndex
from faq_search.quality.evaluate import evaluate
from faq_search.quality.queries import read_queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="stackfaq", help="folder under --data")
    add_data_option(parser)
    parser.add_argument("--ask-samples", type=int, default=300, help="queries timed one at a time")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"], help="encoder precision")
    args = parser.parse_args()
    folder = require_sets(args.data, [args.set]) / args.set
    entries = read_faq(folder / "faq.csv")

    from faq_search.encoding.encoder import BertEncoder
    from faq_search.encoding.settings import EncoderSettings

    started = time.perf_counter()
    encoder = BertEncoder(EncoderSettings(precision=args.precision))
    load_seconds = time.perf_counter() - started
    started = time.perf_counter()
    index = FaqIndex.build(entries, encoder=encoder)
    index_seconds = time.perf_counter() - started

    queries = read_queries(folder / "queries.csv", known_ids=[i for e in entries for i in e.ids])
    metrics = evaluate(index, queries)

    timings = []
    for query in queries[: args.ask_samples]:
        started = time.perf_counter()
        index.ask(query.query, k=10)
        timings.append(time.perf_counter() - started)

    print(f"set: {args.set}  entries: {len(entries)}  vectors: {len(index.store)}  queries: {metrics.queries}")
    print(
        f"settings: layer {encoder.settings.layer}, {encoder.settings.pooling.value} pooling, "
        f"fields {'+'.join(index.manifest.fields)}, precision {encoder.precision.value}"
    )
    print(
        f"MRR@10 {metrics.mrr_at_10:.3f}  R@1 {metrics.recall_at_1:.3f}  R@5 {metrics.recall_at_5:.3f}  "
        f"R@10 {metrics.recall_at_10:.3f}  nDCG@10 {metrics.ndcg_at_10:.3f}"
    )
    print(
        f"model load {load_seconds:.2f} s  index build {index_seconds:.2f} s "
        f"({index.report.unique_texts if index.report else 0} unique texts)"
    )
    print(f"ask in-process: median {statistics.median(timings) * 1000:.1f} ms over {len(timings)} queries")


if __name__ == "__main__":
    main()
