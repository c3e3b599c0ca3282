"""The public face of embeddings as a product: import everything from here.

``from faq_search.export.embeddings import embed, token_embeddings, word_embeddings, WordMerge``

The work lives in one module per concept: :mod:`~faq_search.export.records`
(the result types), :mod:`~faq_search.export.compute` (sentence, token and
word vectors), :mod:`~faq_search.export.spans` (windows over a long text's
word pieces), :mod:`~faq_search.export.inputs` (texts and option checks),
:mod:`~faq_search.export.writers` (files) and :mod:`~faq_search.export.render`
(the terminal summary). This module only re-exports them, so importing it
stays light (no numpy, no torch).
"""

from __future__ import annotations

from faq_search.export.compute import (
    MERGERS,
    TokenEncoder,
    embed,
    sentence_embeddings,
    token_embeddings,
    word_embeddings,
)
from faq_search.export.inputs import OUTPUT_FORMATS, check_options, check_output, check_texts, read_texts
from faq_search.export.records import (
    Embeddings,
    Level,
    Record,
    SentenceEmbedding,
    TokenEmbedding,
    WordEmbedding,
    WordMerge,
)

__all__ = [
    "MERGERS",
    "OUTPUT_FORMATS",
    "Embeddings",
    "Level",
    "Record",
    "SentenceEmbedding",
    "TokenEmbedding",
    "TokenEncoder",
    "WordEmbedding",
    "WordMerge",
    "check_options",
    "check_output",
    "check_texts",
    "embed",
    "read_texts",
    "sentence_embeddings",
    "token_embeddings",
    "word_embeddings",
]
