"""faq-search: semantic FAQ retrieval with BERT sentence vectors and FAISS.

    from faq_search import FaqIndex
    index = FaqIndex.build("faq.csv")
    index.save("indexes/shop")
    for match in FaqIndex.load("indexes/shop").ask("where is my parcel?"):
        print(match.rank, round(match.score, 3), match.entry.answer)

Names are imported lazily, so ``import faq_search`` (and ``faq-search
--help``) does not load torch, transformers or FAISS.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "FaqIndex": "faq_search.engine",
    "Match": "faq_search.engine",
    "FaqEntry": "faq_search.corpus",
    "read_faq": "faq_search.corpus",
    "BertEncoder": "faq_search.encoder",
    "Encoder": "faq_search.encoder",
    "EncoderSettings": "faq_search.settings",
    "Pooling": "faq_search.settings",
    "Precision": "faq_search.settings",
    "Fields": "faq_search.settings",
    "LayerSpec": "faq_search.settings",
    "HybridSettings": "faq_search.lexical",
    "update_bundle": "faq_search.lifecycle",
    "AdaptSettings": "faq_search.adapt",
    "adapt_index": "faq_search.adapt",
    "FaqSearchError": "faq_search.errors",
    "InputError": "faq_search.errors",
    "ModelError": "faq_search.errors",
    "BundleError": "faq_search.errors",
    "SettingsMismatchError": "faq_search.errors",
}

__all__ = [
    "AdaptSettings",
    "BertEncoder",
    "BundleError",
    "Encoder",
    "EncoderSettings",
    "FaqEntry",
    "FaqIndex",
    "FaqSearchError",
    "Fields",
    "HybridSettings",
    "InputError",
    "LayerSpec",
    "Match",
    "ModelError",
    "Pooling",
    "Precision",
    "SettingsMismatchError",
    "adapt_index",
    "read_faq",
    "update_bundle",
]

if TYPE_CHECKING:
    from faq_search.adapt import AdaptSettings, adapt_index
    from faq_search.corpus import FaqEntry, read_faq
    from faq_search.encoder import BertEncoder, Encoder
    from faq_search.engine import FaqIndex, Match
    from faq_search.errors import BundleError, FaqSearchError, InputError, ModelError, SettingsMismatchError
    from faq_search.lexical import HybridSettings
    from faq_search.lifecycle import update_bundle
    from faq_search.settings import EncoderSettings, Fields, LayerSpec, Pooling, Precision


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'faq_search' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
