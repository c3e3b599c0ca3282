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

*Novelty* is how far a topic is from everything the FAQ already says: one
minus the cosine between the topic's centre and its closest FAQ question
(its answer, for an entry without questions), times the square root of one
minus the cosine to its closest FAQ answer. A topic of questions that are
merely answered with low confidence sits next to the entry that answers
them, by its question or by what its answer talks about; a topic the FAQ
lacks sits away from both. The answer's distance counts half (the square
root): an answer is long and covers more than its question asks, so being
near one is weaker evidence than being near a question (measured in
benchmarks/bench_gaps.py, docs/gaps.md: the question alone covers fewer
missing entries; the full product more on some draws, fewer on others). The reference texts are capped
(:data:`FAQ_TEXT_LIMIT` questions and as many answers, an even sample
beyond it) so a huge FAQ does not make the report encode all of it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from faq_search.errors import FaqSearchError, InputError
from faq_search.index.rows import ANSWER
from faq_search.traffic.settings import TopicEncoder

if TYPE_CHECKING:
    from faq_search.encoding.protocol import Encoder
    from faq_search.encoding.settings import EncoderSettings
    from faq_search.index.faq_index import FaqIndex

FAQ_TEXT_LIMIT = 20_000
ANSWER_WEIGHT = 0.5  # the exponent of the answer's distance in novelty


@dataclass(frozen=True)
class TopicSpace:
    """An encoder, the FAQ's centre in its space and the FAQ's reference vectors (unit, centred)."""

    encoder: Encoder
    centre: np.ndarray
    reference: np.ndarray  # [n, dim] unit vectors of the FAQ's questions (or answers), centred
    kind: TopicEncoder = TopicEncoder.SENTENCE
    answers: np.ndarray | None = None  # [m, dim] unit vectors of its answers, centred (None: questions only)
    answer_weight: float = ANSWER_WEIGHT  # the exponent of the distance to the closest answer (0: questions only)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit vectors of ``texts`` measured from the FAQ's centre."""
        return _unit(np.asarray(self.encoder.encode(texts), dtype=np.float32) - self.centre)

    def novelty(self, centres: np.ndarray) -> np.ndarray:
        """Per topic centre: (1 - cosine to the closest question) x (1 - cosine to the closest answer) ** weight."""
        centres = _unit(centres)
        novelty = _distance(centres, self.reference) * _distance(centres, self.answers) ** self.answer_weight
        return novelty.astype(np.float32)


def topic_space(
    index: FaqIndex,
    kind: TopicEncoder = TopicEncoder.SENTENCE,
    encoder: Encoder | None = None,
    *,
    progress: bool = False,
) -> TopicSpace:
    """The space gap questions of ``index``'s traffic are grouped in (see the module docstring).

    ``encoder``: for ``sentence``, one already loaded with :func:`sentence_settings` of this index (a server
    shares it between indexes of the same model), else it is loaded here (``progress``: with a bar on a
    terminal while it encodes the FAQ's questions and answers).
    """
    kind = TopicEncoder(kind)
    if kind is TopicEncoder.INDEX:
        stored = index.stored_vectors()
        if stored is not None and len(stored):
            answer_rows = np.array([f == ANSWER for f in index.store.row_field], dtype=bool)
            questions = stored[~answer_rows] if (~answer_rows).any() else stored
            centre = questions.mean(axis=0).astype(np.float32)
            reference, stored_answers = _unit(questions - centre), _unit(stored[answer_rows] - centre)
            return TopicSpace(index.encoder, centre, reference, kind, stored_answers)
        encoder = index.encoder
    else:
        encoder = encoder or sentence_encoder(index, progress=progress)
    questions = reference_texts(index)
    vectors = _encoded(encoder, questions)
    centre = vectors.mean(axis=0) if len(vectors) else np.zeros(1, np.float32)
    reference = _unit(vectors - centre) if len(vectors) else vectors
    answer_vectors = _encoded_once(encoder, answer_texts(index), dict(zip(questions, vectors, strict=True)))
    answers = _unit(answer_vectors - centre) if len(answer_vectors) and len(vectors) else None
    return TopicSpace(encoder, centre.astype(np.float32), reference, kind, answers)


def sentence_settings(index: FaqIndex) -> EncoderSettings:
    """The bundle's model (its adapted weights' folder, if it carries them) at its last layer, mean pooled."""
    from faq_search.encoding.settings import Pooling

    settings = index.settings
    own = index.own_encoder_dir()
    if own is not None:
        settings = dataclasses.replace(settings, model=own)
    return dataclasses.replace(settings, layer="-1", pooling=Pooling.MEAN)


def sentence_encoder(index: FaqIndex, *, progress: bool = False) -> Encoder:
    """The encoder of :func:`sentence_settings`, loaded now (``progress``: a bar on a terminal while it encodes)."""
    from faq_search.encoding.encoder import BertEncoder

    try:
        return BertEncoder(sentence_settings(index), progress=progress)
    except FaqSearchError as exc:
        raise InputError(f"the sentence encoder for gaps cannot load ({exc}); pass --encoder index") from None


def reference_texts(index: FaqIndex, limit: int = FAQ_TEXT_LIMIT) -> list[str]:
    """The FAQ's distinct questions (an entry without one: its answer), an even sample of ``limit`` beyond it."""
    return _distinct((text for entry in index.entries for text in entry.questions or (entry.answer,)), limit)


def answer_texts(index: FaqIndex, limit: int = FAQ_TEXT_LIMIT) -> list[str]:
    """The FAQ's distinct answers, an even sample of ``limit`` beyond it."""
    return _distinct((entry.answer for entry in index.entries), limit)


def _distinct(texts: Iterable[str], limit: int) -> list[str]:
    seen = [t for t in dict.fromkeys(" ".join(text.split()) for text in texts) if t]
    if len(seen) > limit:
        step = len(seen) / limit
        seen = [seen[int(i * step)] for i in range(limit)]
    return seen


def _encoded(encoder: Encoder, texts: list[str]) -> np.ndarray:
    return np.asarray(encoder.encode(texts), dtype=np.float32) if texts else np.zeros((0, 1), np.float32)


def _encoded_once(encoder: Encoder, texts: list[str], known: dict[str, np.ndarray]) -> np.ndarray:
    """:func:`_encoded`, taking the vectors of texts already encoded (an entry without questions stands for its
    answer among the questions too) from ``known``."""
    fresh = [t for t in texts if t not in known]
    known = {**known, **dict(zip(fresh, _encoded(encoder, fresh), strict=True))}
    return np.stack([known[t] for t in texts]) if texts else np.zeros((0, 1), np.float32)


def _distance(centres: np.ndarray, reference: np.ndarray | None) -> np.ndarray:
    """Per unit row of ``centres``: 1 - its cosine to the closest row of ``reference`` (1 when there is none)."""
    if reference is None or len(reference) == 0 or len(centres) == 0:
        return np.ones(len(centres), dtype=np.float32)
    return np.maximum(1.0 - (centres @ reference.T).max(axis=1), 0.0)


def _unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return (matrix / np.where(norms > 0, norms, 1.0)).astype(np.float32)
