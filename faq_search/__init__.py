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
    "FaqIndex": "faq_search.index.faq_index",
    "Match": "faq_search.index.faq_index",
    "FaqEntry": "faq_search.corpus",
    "read_faq": "faq_search.corpus",
    "BertEncoder": "faq_search.encoding.encoder",
    "Encoder": "faq_search.encoding.protocol",
    "EncoderSettings": "faq_search.encoding.settings",
    "Pooling": "faq_search.encoding.settings",
    "Precision": "faq_search.encoding.settings",
    "Fields": "faq_search.encoding.settings",
    "LayerSpec": "faq_search.encoding.settings",
    "HybridSettings": "faq_search.index.lexical",
    "update_bundle": "faq_search.index.update",
    "AdaptSettings": "faq_search.quality.adapt",
    "adapt_index": "faq_search.quality.adapt",
    "FaqSearchError": "faq_search.errors",
    "InputError": "faq_search.errors",
    "ModelError": "faq_search.errors",
    "BundleError": "faq_search.errors",
    "SettingsMismatchError": "faq_search.errors",
    "QuestionLog": "faq_search.traffic.log",
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
    "QuestionLog",
    "SettingsMismatchError",
    "adapt_index",
    "read_faq",
    "update_bundle",
]

if TYPE_CHECKING:
    from faq_search.corpus import FaqEntry, read_faq
    from faq_search.encoding.encoder import BertEncoder
    from faq_search.encoding.protocol import Encoder
    from faq_search.encoding.settings import EncoderSettings, Fields, LayerSpec, Pooling, Precision
    from faq_search.errors import BundleError, FaqSearchError, InputError, ModelError, SettingsMismatchError
    from faq_search.index.faq_index import FaqIndex, Match
    from faq_search.index.lexical import HybridSettings
    from faq_search.index.update import update_bundle
    from faq_search.quality.adapt import AdaptSettings, adapt_index
    from faq_search.traffic.log import QuestionLog


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'faq_search' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
