"""Does the ONNX query path answer as torch does? Vectors, MRR@10 and top-1 on the shared sets.

For each set of ../shared/data: the FAQ is indexed as ``faq-search index`` does
(bundled model, default settings, precision chosen for the CPU), the index is
given its ONNX query encoder (``faq-search onnx``), and every question of the
set (the labelled queries and the FAQ's own questions) is encoded by
onnxruntime and by the torch encoder in fp32: the least cosine between the two.
Then the labelled queries are asked through both runtimes: MRR@10 of each
(torch as served: bf16 where the CPU has it, and torch fp32), and the share of
queries whose top answer is the same. The issue's bars: least cosine >= 0.9999,
MRR@10 within 0.002 of torch, the same top-1 for >= 99.5% of queries.

    python benchmarks/onnx_agreement.py [--data DIR] [--sets stackfaq covidfaq_jhu]
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from shared_data import add_data_option, require_sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_option(parser)
    parser.add_argument("--sets", nargs="+", default=["stackfaq", "covidfaq_jhu"])
    args = parser.parse_args()
    data = require_sets(args.data, args.sets)

    import pandas as pd

    from faq_search.encoding.encoder import BertEncoder
    from faq_search.encoding.onnx_runtime import OnnxEncoder
    from faq_search.encoding.settings import EncoderSettings
    from faq_search.index.faq_index import FaqIndex
    from faq_search.index.onnx_files import export_encoder
    from faq_search.quality.evaluate import evaluate
    from faq_search.quality.queries import read_queries

    served, fp32 = BertEncoder(), BertEncoder(EncoderSettings(precision="fp32"))
    print(f"load average {os.getloadavg()[0]:.2f}; torch as served runs in {served.precision.value}")
    for name in args.sets:
        folder = data / name
        index = FaqIndex.build(folder / "faq.csv", encoder=served)
        export_encoder(index)
        onnx = OnnxEncoder(index.extra_files)
        queries = read_queries(folder / "queries.csv", known_ids=[i for e in index.entries for i in e.ids])
        faq_questions = pd.read_csv(folder / "faq.csv")["question"].dropna().astype(str).tolist()
        texts = list(dict.fromkeys([q.query for q in queries] + faq_questions))
        cosines = np.sum(onnx.encode(texts) * fp32.encode(texts), axis=1)
        runs = {
            label: FaqIndex(index.entries, index.store, index.manifest, encoder)
            for label, encoder in (("onnx", onnx), (f"torch {served.precision.value}", served), ("torch fp32", fp32))
        }
        mrr = {label: evaluate(run, queries).mrr_at_10 for label, run in runs.items()}
        asked = [q.query for q in queries]
        tops = {label: [row[0].entry.id for row in run.ask_batch(asked, k=1)] for label, run in runs.items()}
        print(
            f"\n{name}: {len(index.entries)} entries, {len(queries)} labelled queries, {len(texts)} distinct questions"
        )
        print(
            f"  query vectors, onnxruntime vs torch fp32: least cosine {cosines.min():.6f}, mean {cosines.mean():.7f}"
        )
        for label, value in mrr.items():
            print(f"  MRR@10 {label:<12} {value:.4f}   (onnx - this: {mrr['onnx'] - value:+.4f})")
        for label in list(runs)[1:]:
            same = np.mean([a == b for a, b in zip(tops["onnx"], tops[label], strict=True)])
            print(f"  same top-1 as {label:<12} {same:.2%} of {len(asked)} queries")


if __name__ == "__main__":
    main()
