"""Retrieval quality on the shared FAQ sets: baselines, the defaults, and tuned settings.

For each set in ../shared/data (faq.csv + queries.csv) it prints MRR@10 (and
R@10) for:

- BM25 over question+answer (bm25s, as faq-search's lexical side uses it);
- the sentence-transformers reference: the same model through
  ``SentenceTransformer.encode`` (last layer, mean), max over question and answer;
- faq-search at layer -2 mean pooling: answer only, question+answer, and
  question+answer with hybrid BM25 fusion (the default settings);
- faq-search tuned: the grid of ``faq-search tune``, scored with 5 held-out
  folds (no query grades the settings it helped choose).

Then the "no answer" threshold of the default index (its score is the
shipped confidence model's), chosen for 90% precision on one half of the
queries (with the other set's queries as negatives) and measured on the other
half. Last, the confidence tables of benchmarks/confidence.py: ranking by
fusion weight, transfer of the model between the sets (both directions: ECE,
precision/coverage at the threshold fitted on the other set), ``calibrate``
on each set (5-fold held out), and the size check (each set grown about 20x
with unrelated entries: confidence shift of fixed pairs, precision at a fixed
threshold).

    python benchmarks/quality.py            # both sets, about 10 minutes on 2 quiet cores (first run longer)
    python benchmarks/quality.py --sets stackfaq --no-confidence
    python benchmarks/quality.py --data DIR     # the shared sets elsewhere than ../shared/data
    python benchmarks/quality.py --write-default   # also refit faq_search/index/confidence_default.json
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import confidence as confidence_tables
import numpy as np
from shared_data import add_data_option, require_sets

from faq_search.corpus import FaqEntry, read_faq
from faq_search.encoding.encoder import BertEncoder, resolve_model
from faq_search.encoding.settings import Fields
from faq_search.index.faq_index import FaqIndex
from faq_search.index.lexical import HybridSettings, LexicalIndex, entry_document
from faq_search.quality.evaluate import calibrate, collect_evidence, evaluate, threshold_rows
from faq_search.quality.metrics import score_ranking
from faq_search.quality.queries import LabelledQuery, read_queries
from faq_search.quality.tune import tune

SETS = ("stackfaq", "covidfaq_jhu")


def mrr_of(scores: np.ndarray, entries: list[FaqEntry], queries: list[LabelledQuery]) -> tuple[float, float]:
    """MRR@10 and R@10 of a [queries, entries] score matrix."""
    totals = {"mrr_at_10": 0.0, "recall_at_10": 0.0}
    for row, query in enumerate(queries):
        top = np.argsort(-scores[row], kind="stable")[:10]
        ranked = [next((x for x in entries[i].ids if x in query.relevant), entries[i].id) for i in top]
        metrics = score_ranking(ranked, query.relevant)
        for name in totals:
            totals[name] += metrics[name]
    return totals["mrr_at_10"] / len(queries), totals["recall_at_10"] / len(queries)


def bm25_row(entries: list[FaqEntry], queries: list[LabelledQuery]) -> tuple[float, float]:
    lexical = LexicalIndex([entry_document(e.questions, e.answer) for e in entries])
    return mrr_of(lexical.scores([q.query for q in queries]), entries, queries)


def sentence_transformers_row(entries: list[FaqEntry], queries: list[LabelledQuery]) -> tuple[float, float]:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(resolve_model("default")[0], device="cpu", local_files_only=True)
    query_vectors = model.encode([q.query for q in queries], normalize_embeddings=True)
    answers = model.encode([e.answer for e in entries], normalize_embeddings=True)
    questions = model.encode([e.question or e.answer for e in entries], normalize_embeddings=True)
    scores = np.maximum(query_vectors @ answers.T, query_vectors @ questions.T)
    return mrr_of(scores, entries, queries)


def engine_row(encoder: BertEncoder, entries, queries, fields: Fields, weight: float) -> tuple[float, float]:
    index = FaqIndex.build(entries, encoder=encoder, fields=fields, hybrid=HybridSettings(weight=weight))
    metrics = evaluate(index, queries)
    return metrics.mrr_at_10, metrics.recall_at_10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    add_data_option(parser)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/faq-conf-cache"), help="vectors of the 20x sets")
    parser.add_argument("--no-confidence", action="store_true", help="skip the confidence tables")
    parser.add_argument("--write-default", action="store_true", help="refit the shipped confidence model")
    args = parser.parse_args()
    folder = require_sets(args.data, SETS)  # each set serves as the other's negatives
    started = time.perf_counter()
    data = {name: (read_faq(folder / name / "faq.csv"), read_queries(folder / name / "queries.csv")) for name in SETS}
    encoder = BertEncoder()
    print(f"model {encoder.model_name}, precision {encoder.precision.value}; MRR@10 (R@10), all queries\n")
    for name in args.sets:
        entries, queries = data[name]
        print(f"## {name}: {len(entries)} entries, {len(queries)} queries")
        rows = [
            ("BM25 over question+answer (bm25s)", bm25_row(entries, queries)),
            ("sentence-transformers encode (layer -1 mean), max(q, a)", sentence_transformers_row(entries, queries)),
            ("faq-search layer -2 mean, answer only", engine_row(encoder, entries, queries, Fields.ANSWER, 0.0)),
            (
                "faq-search layer -2 mean, max(q, a)",
                engine_row(encoder, entries, queries, Fields.QUESTION_ANSWER, 0.0),
            ),
            (
                "faq-search defaults: layer -2 mean, max(q, a), hybrid (as ask ranks)",
                engine_row(encoder, entries, queries, Fields.QUESTION_ANSWER, 0.5),
            ),
        ]
        report = tune(entries, queries)
        rows.append(
            (f"faq-search tuned, 5-fold held out ({report.best.label()})", (report.cross_validated_mrr, math.nan))
        )
        width = max(len(label) for label, _ in rows)
        for label, (mrr, recall) in rows:
            recall_text = f"({recall:.3f})" if not math.isnan(recall) else ""
            print(f"  {label.ljust(width)}  {mrr:.3f} {recall_text}")
        choices = ", ".join(sorted({c.label() for c in report.fold_choices}))
        print(f"  settings chosen on the folds: {choices}")

        other = next(n for n in SETS if n != name)
        negatives = [q.query for q in data[other][1]]
        rng = np.random.default_rng(0)
        order, neg_order = rng.permutation(len(queries)), rng.permutation(len(negatives))
        fit, held = order[: len(order) // 2], order[len(order) // 2 :]
        neg_fit, neg_held = neg_order[: len(neg_order) // 2], neg_order[len(neg_order) // 2 :]
        index = FaqIndex.build(entries, encoder=encoder)
        chosen = calibrate(collect_evidence(index, [queries[i] for i in fit], [negatives[i] for i in neg_fit]), 0.9)
        measured = threshold_rows(
            collect_evidence(index, [queries[i] for i in held], [negatives[i] for i in neg_held]), [chosen.threshold]
        )[0]
        print(
            f"  confidence threshold for 90% precision (defaults, shipped model; chosen on half the queries + half "
            f"of {other}'s as negatives): "
            f"{chosen.threshold:.3f}\n"
            f"    on the other half: precision {measured.precision:.3f}, coverage {measured.coverage:.3f}, "
            f"false-answer rate on {len(neg_held)} {other} queries {measured.false_answer_rate:.3f}\n"
        )
    if not args.no_confidence:
        print("# confidence (benchmarks/confidence.py): both sets, default encoder\n")
        confidence_tables.report(folder, args.cache, write_default=args.write_default)
    print(f"\ntotal time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
