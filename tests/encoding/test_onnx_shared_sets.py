"""The ONNX query path on the real FAQ sets: the same query vectors, MRR@10 and top answers as torch fp32.

covidfaq_jhu's answers are checked whole (its index, every labelled query
through both runtimes: MRR@10 and top-1); of stackfaq, the query vectors
(1,249 queries; its index would cost the suite most of a minute). ``benchmarks/onnx_agreement.py`` measures both
sets whole, against torch as served (bf16 where the CPU has it) too.
"""

from __future__ import annotations

import numpy as np
import pytest

from faq_search.encoding.encoder import BertEncoder
from faq_search.encoding.onnx_export import onnx_files
from faq_search.encoding.onnx_runtime import OnnxEncoder
from faq_search.index.faq_index import FaqIndex
from faq_search.quality.evaluate import evaluate
from faq_search.quality.queries import read_queries
from tests.conftest import shared_set

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def onnx_encoder(real_encoder: BertEncoder) -> OnnxEncoder:
    return OnnxEncoder(onnx_files(real_encoder))


def test_stackfaq_query_vectors_agree(real_encoder: BertEncoder, onnx_encoder: OnnxEncoder) -> None:
    queries = [q.query for q in read_queries(shared_set("stackfaq") / "queries.csv")]
    cosines = np.sum(onnx_encoder.encode(queries) * real_encoder.encode(queries), axis=1)
    assert len(queries) > 1000
    assert cosines.min() >= 0.9999


def test_covidfaq_jhu_answers_agree(real_encoder: BertEncoder, onnx_encoder: OnnxEncoder) -> None:
    folder = shared_set("covidfaq_jhu")
    on_torch = FaqIndex.build(folder / "faq.csv", encoder=real_encoder)
    on_onnx = FaqIndex(on_torch.entries, on_torch.store, on_torch.manifest, onnx_encoder)
    queries = read_queries(folder / "queries.csv", known_ids=[i for e in on_torch.entries for i in e.ids])
    asked = [q.query for q in queries]
    assert abs(evaluate(on_onnx, queries).mrr_at_10 - evaluate(on_torch, queries).mrr_at_10) <= 0.002
    tops = [[row[0].entry.id for row in index.ask_batch(asked, k=1)] for index in (on_onnx, on_torch)]
    assert np.mean([a == b for a, b in zip(*tops, strict=True)]) >= 0.995
