"""The vector space gap questions are grouped in, and how new a topic is to the FAQ.

Two encoders can embed gap questions:

- ``sentence`` (default): the bundle's model read at its *last* layer, mean
  pooled. Sentence-embedding models (the bundled all-MiniLM-L6-v2 among
  them) are trained to make that layer's mean a paraphrase detector; the
  index reads layer -2 because it retrieves better with BM25 fused in, but
  for telling topics of questions apart the trained output is clearly better
  (benchmarks/bench_gaps.py: the topics about missing entries separate from
  the rest only there). It needs torch and loads the model a second time.
- ``index``: the bundle's own query encoder (torch or ONNX), no second model.

In both, vectors are measured from the FAQ's centre (the mean of its
reference vectors): mean-pooled BERT vectors share one large common
direction, so any two questions of a domain have a high raw cosine.

*Novelty* is how far a topic is from everything the FAQ already asks: one
minus the cosine between the topic's centre and its closest FAQ question
(its answer, for an entry without questions). A topic of questions that
are merely answered with low confidence sits next to the entry that answers
them; a topic the FAQ lacks sits away from all of them. The reference texts
are capped (:data:`FAQ_TEXT_LIMIT`, an even sample beyond it) so a huge FAQ
does not make the report encode all of it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from faq_search.errors import FaqSearchError, InputError
from faq_search.traffic.settings import TopicEncoder

if TYPE_CHECKING:
    from faq_search.encoding.protocol import Encoder
    from faq_search.encoding.settings import EncoderSettings
    from faq_search.index.faq_index import FaqIndex

FAQ_TEXT_LIMIT = 20_000


@dataclass(frozen=True)
class TopicSpace:
    """An encoder, the FAQ's centre in its space and the FAQ's reference vectors (unit, centred)."""

    encoder: Encoder
    centre: np.ndarray
    reference: np.ndarray  # [n, dim] unit vectors of the FAQ's questions (or answers), centred
    kind: TopicEncoder = TopicEncoder.SENTENCE

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit vectors of ``texts`` measured from the FAQ's centre."""
        return _unit(np.asarray(self.encoder.encode(texts), dtype=np.float32) - self.centre)

    def novelty(self, centres: np.ndarray) -> np.ndarray:
        """Per topic centre (unit rows): 1 - its cosine to the closest reference vector, in [0, 2]."""
        if len(self.reference) == 0 or len(centres) == 0:
            return np.ones(len(centres), dtype=np.float32)
        return (1.0 - (_unit(centres) @ self.reference.T).max(axis=1)).astype(np.float32)


def topic_space(
    index: FaqIndex, kind: TopicEncoder = TopicEncoder.SENTENCE, encoder: Encoder | None = None
) -> TopicSpace:
    """The space gap questions of ``index``'s traffic are grouped in (see the module docstring).

    ``encoder``: for ``sentence``, one already loaded with :func:`sentence_settings` of this index (a server
    shares it between indexes of the same model), else it is loaded here.
    """
    kind = TopicEncoder(kind)
    if kind is TopicEncoder.INDEX:
        stored = index.stored_vectors()
        if stored is not None and len(stored):
            centre = stored.mean(axis=0).astype(np.float32)
            return TopicSpace(index.encoder, centre, _unit(stored - centre), kind)
        encoder = index.encoder
    else:
        encoder = encoder or sentence_encoder(index)
    texts = reference_texts(index)
    vectors = np.asarray(encoder.encode(texts), dtype=np.float32) if texts else np.zeros((0, 1), np.float32)
    centre = vectors.mean(axis=0) if len(vectors) else np.zeros(1, np.float32)
    reference = _unit(vectors - centre) if len(vectors) else vectors
    return TopicSpace(encoder, centre.astype(np.float32), reference, kind)


def sentence_settings(index: FaqIndex) -> EncoderSettings:
    """The bundle's model (its adapted weights' folder, if it carries them) at its last layer, mean pooled."""
    from faq_search.encoding.settings import Pooling

    settings = index.settings
    own = index.own_encoder_dir()
    if own is not None:
        settings = dataclasses.replace(settings, model=own)
    return dataclasses.replace(settings, layer="-1", pooling=Pooling.MEAN)


def sentence_encoder(index: FaqIndex) -> Encoder:
    """The encoder of :func:`sentence_settings`, loaded now."""
    from faq_search.encoding.encoder import BertEncoder

    try:
        return BertEncoder(sentence_settings(index))
    except FaqSearchError as exc:
        raise InputError(f"the sentence encoder for gaps cannot load ({exc}); pass --encoder index") from None


def reference_texts(index: FaqIndex, limit: int = FAQ_TEXT_LIMIT) -> list[str]:
    """The FAQ's distinct questions (an entry without one: its answer), an even sample of ``limit`` beyond it."""
    seen: dict[str, None] = {}
    for entry in index.entries:
        for text in entry.questions or (entry.answer,):
            seen.setdefault(" ".join(text.split()), None)
    texts = [t for t in seen if t]
    if len(texts) > limit:
        step = len(texts) / limit
        texts = [texts[int(i * step)] for i in range(limit)]
    return texts


def _unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return (matrix / np.where(norms > 0, norms, 1.0)).astype(np.float32)
