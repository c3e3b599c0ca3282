"""Giving a bundle its query encoder as ONNX (``faq-search onnx``), checked against torch before it is kept.

The graph is opt-in: it is about as large as the model's weights up to the
pooled layer (79 MiB for the default MiniLM at layer -2), which most bundles
built for experiments do not need. A bundle that serves a bot gets it once
with ``faq-search onnx INDEX`` (or ``adapt --onnx``); it then travels with the
bundle through ``upsert``/``delete``, reloads, and ``faq-search index`` over
the bundle with the same encoder (:func:`carried_onnx_files`); another encoder
drops it. Torch is needed to export, never to answer.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faq_search.encoding.encoder import BertEncoder
from faq_search.encoding.onnx_export import GRAPH_FILE, META_FILE, ONNX_FILES, onnx_files, read_meta
from faq_search.encoding.runtime import Runtime, require_torch
from faq_search.encoding.settings import Precision
from faq_search.errors import ModelError, SettingsMismatchError
from faq_search.index.faq_index import FaqIndex
from faq_search.index.rows import embedding_rows

AGREEMENT = 0.9999
"""Least cosine between the graph's and torch's fp32 vector for any checked text; below it the export is refused."""
CHECK_TEXTS = 32


@dataclass(frozen=True)
class OnnxReport:
    """What ``faq-search onnx`` did."""

    index: str
    added: bool  # False: removed
    graph_bytes: int
    min_cosine: float | None  # against torch fp32, over the checked texts
    checked_texts: int
    seconds: float

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def export_encoder(index: FaqIndex, *, model_path: str | None = None, threads: int | None = None) -> float:
    """Add the ONNX query encoder to ``index.extra_files`` (saved by ``index.save``); returns the checked agreement.

    The graph is exported from the index's torch encoder, loaded in fp32 from
    the bundle's settings (an adapted bundle: from its ``encoder/``; a moved
    model: from ``model_path``).
    """
    require_torch("exporting the query encoder to ONNX")
    torch_encoder = _fp32_encoder(index, model_path, threads)
    differences = index.identity.differences(torch_encoder.identity)
    if differences:
        raise SettingsMismatchError(f"the encoder differs from the index's ({'; '.join(differences)}); rebuild it")
    files = onnx_files(torch_encoder)
    agreement = _agreement(index, files, torch_encoder)
    index.extra_files = {**{n: d for n, d in index.extra_files.items() if n not in ONNX_FILES}, **files}
    return agreement


def add_onnx(
    path: str | Path, *, remove: bool = False, model_path: str | None = None, threads: int | None = None
) -> OnnxReport:
    """Write the bundle at ``path`` again with (or, with ``remove``, without) its ONNX query encoder."""
    start = time.perf_counter()
    index = FaqIndex.load(path, runtime=Runtime.TORCH, model_path=model_path, threads=threads)
    agreement = None
    if remove:
        index.extra_files = {n: d for n, d in index.extra_files.items() if n not in ONNX_FILES}
    else:
        agreement = export_encoder(index, model_path=model_path, threads=threads)
    index.save(path)
    graph = index.extra_files.get(GRAPH_FILE, b"")
    checked = 0 if remove else min(CHECK_TEXTS, len(index.store))
    return OnnxReport(str(path), not remove, len(graph), agreement, checked, time.perf_counter() - start)


def carried_onnx_files(previous: FaqIndex | None, index: FaqIndex) -> dict[str, bytes]:
    """The graph files a rewritten bundle keeps: the previous bundle's, when they encode as ``index``'s encoder.

    The hook ``faq-search index`` calls over an existing bundle: editing the FAQ
    keeps the graph; a new encoder (another model, layer, pooling, ...) drops it,
    since it no longer matches (run ``faq-search onnx`` again).
    """
    if previous is None or not previous.has_onnx:
        return {}
    graph_identity, _ = read_meta(previous.extra_files[META_FILE])
    if graph_identity.differences(index.identity):
        return {}
    return {name: previous.extra_files[name] for name in ONNX_FILES}


def _fp32_encoder(index: FaqIndex, model_path: str | None, threads: int | None) -> BertEncoder:
    """The index's torch encoder in fp32 (the reference the graph must agree with)."""
    settings = dataclasses.replace(index.settings, precision=Precision.FP32)
    model = model_path or index.own_encoder_dir()
    if model is not None:
        settings = dataclasses.replace(settings, model=model)
    return BertEncoder(settings, threads=threads)


def _agreement(index: FaqIndex, files: dict[str, bytes], torch_encoder: BertEncoder) -> float:
    """Least cosine of the graph's to torch's fp32 vectors over some of the index's texts; refused below AGREEMENT."""
    from faq_search.encoding.onnx_runtime import OnnxEncoder

    texts, _, _ = embedding_rows(index.entries, index.fields_policy, torch_encoder.windows)
    sample = texts[:: max(1, len(texts) // CHECK_TEXTS)][:CHECK_TEXTS]
    graph = OnnxEncoder(files).encode(sample)
    cosines = np.sum(graph * torch_encoder.encode(sample), axis=1)
    least = float(cosines.min()) if len(sample) else 1.0
    if least < AGREEMENT:
        raise ModelError(
            f"the exported graph disagrees with torch (least cosine {least:.6f} < {AGREEMENT}); "
            "report it, and answer with --runtime torch meanwhile"
        )
    return least
