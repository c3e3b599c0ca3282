"""The bundle the torch-free tests answer from, and what torch answers from it.

Built where torch is installed: in the test process itself, or by ``make
test-notorch`` in the main venv before the tests run in a venv without torch
(``python -m tests.notorch.reference DIR``). ``DIR/sample`` is the sample FAQ
indexed with the fp32 model and given its ONNX graph; ``DIR/reference.json``
holds torch's top answers to the sample queries and its ``eval`` metrics.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from tests.conftest import DATA

BUNDLE = "sample"
REFERENCE = "reference.json"
QUERIES = DATA / "queries.csv"


def build(root: Path) -> Path:
    """Write ``root/sample`` and ``root/reference.json``; returns ``root``."""
    from faq_search.encoding.encoder import BertEncoder
    from faq_search.encoding.settings import EncoderSettings
    from faq_search.index.faq_index import FaqIndex
    from faq_search.index.onnx_files import export_encoder
    from faq_search.quality.evaluate import evaluate
    from faq_search.quality.queries import read_queries

    root.mkdir(parents=True, exist_ok=True)
    index = FaqIndex.build(DATA / "faq.csv", encoder=BertEncoder(EncoderSettings(precision="fp32")))
    export_encoder(index)
    index.save(root / BUNDLE)
    on_torch = FaqIndex.load(root / BUNDLE, runtime="torch")
    queries = read_queries(QUERIES)
    answers = on_torch.ask_batch([q.query for q in queries], k=3)
    reference = {
        "top": {q.query: [m.entry.id for m in row] for q, row in zip(queries, answers, strict=True)},
        "metrics": dataclasses.asdict(evaluate(on_torch, queries)),
    }
    (root / REFERENCE).write_text(json.dumps(reference, indent=2), encoding="utf-8")
    return root


def read(root: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / REFERENCE).read_text(encoding="utf-8"))
    return data


if __name__ == "__main__":
    build(Path(sys.argv[1]))
