"""Choosing encoder and fusion settings on labelled queries, honestly.

``tune`` scores a grid of layer x pooling x embedded fields x hybrid on/off
on the user's labelled queries. Every (layer, pooling) pair is one encoder
run over the FAQ and the queries; fields and fusion are re-scored from the
same vectors. The score it reports for "tuned" is cross-validated: the queries
are split into folds, the settings are chosen on all but one fold and scored
on the held-out one, so no query grades the settings it helped choose. The
index is then built with the settings that win on all queries.

Scoring is the engine's own, so tune selects what ``ask`` serves: an entry's
dense score is the max over its rows (questions, answer windows); with fusion,
each query ranks its dense top-``POOL`` by cosine plus the share of BM25 among
those candidates (:func:`faq_search.index.confidence.fuse`, the shipped
model's fusion weight). A hybrid weight is only on (> 0) or off: the fusion
weight itself belongs to the confidence model, which ``calibrate`` refits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from faq_search.corpus import FaqEntry
from faq_search.encoding.encoder import BertEncoder
from faq_search.encoding.settings import EncoderSettings, Fields, LayerSpec, Pooling
from faq_search.errors import InputError
from faq_search.index.confidence import POOL, candidate_pool, default_model, fuse
from faq_search.index.faq_index import ANSWER, FaqIndex, embedding_rows
from faq_search.index.lexical import HybridSettings, entry_document
from faq_search.index.pool_lexical import PoolLexicon
from faq_search.quality.metrics import reciprocal_ranks, relevance_matrix
from faq_search.quality.queries import LabelledQuery

DEFAULT_LAYERS = ("-2", "-1", "-3", "sum-last-4")
DEFAULT_POOLINGS = (Pooling.MEAN, Pooling.MAX)
DEFAULT_FIELDS = (Fields.QUESTION_ANSWER, Fields.ANSWER)
DEFAULT_WEIGHT = HybridSettings().weight
DEFAULT_WEIGHTS = (0.0, DEFAULT_WEIGHT)
"""Hybrid off and on: any positive weight means on (the fusion weight lives in the confidence model)."""


@dataclass(frozen=True)
class Candidate:
    """One point of the grid."""

    layer: str
    pooling: Pooling
    fields: Fields
    weight: float  # 0: dense only; > 0: hybrid (every positive weight ranks the same)

    def label(self) -> str:
        hybrid = "on" if self.weight > 0 else "off"
        return f"layer {self.layer}, {self.pooling.value}, {self.fields.value}, hybrid {hybrid}"


@dataclass(frozen=True)
class CandidateResult:
    candidate: Candidate
    mrr_at_10: float  # over all labelled queries (in-sample: for the table, not for claims)


@dataclass(frozen=True)
class TuneReport:
    results: tuple[CandidateResult, ...]  # best first
    default: CandidateResult
    best: Candidate  # chosen on all queries; the index is built with it
    cross_validated_mrr: float  # settings chosen on other folds, scored on the held-out one
    default_mrr: float  # the default settings on all queries (nothing tuned)
    fold_choices: tuple[Candidate, ...]
    folds: int


def default_candidate() -> Candidate:
    settings = EncoderSettings()
    return Candidate(settings.layer, settings.pooling, Fields.QUESTION_ANSWER, DEFAULT_WEIGHT)


def tune(
    entries: Sequence[FaqEntry],
    queries: Sequence[LabelledQuery],
    *,
    base: EncoderSettings | None = None,
    layers: Sequence[str] = DEFAULT_LAYERS,
    poolings: Sequence[Pooling | str] = DEFAULT_POOLINGS,
    fields: Sequence[Fields | str] = DEFAULT_FIELDS,
    weights: Sequence[float] = DEFAULT_WEIGHTS,
    folds: int = 5,
    seed: int = 0,
    on_step: Callable[[str], None] | None = None,
) -> TuneReport:
    """Score the grid (plus the defaults) and choose settings with held-out folds."""
    if len(queries) < folds or folds < 2:
        raise InputError(f"tuning with {folds} folds needs at least {max(folds, 2)} labelled queries and folds >= 2")
    base = base or EncoderSettings()
    default = default_candidate()
    pairs = list(
        dict.fromkeys([(str(EncoderSettings(layer=lay).layer), Pooling(p)) for lay in layers for p in poolings])
    )
    if (default.layer, default.pooling) not in pairs:
        pairs.append((default.layer, default.pooling))
    field_choices = list(dict.fromkeys(Fields(f) for f in fields)) or [Fields.QUESTION_ANSWER]
    for weight in weights:
        HybridSettings(weight=weight)  # validates the range
    weight_choices = sorted({DEFAULT_WEIGHT if w > 0 else 0.0 for w in weights} | {default.weight})

    ids = {entry.id: i for i, entry in enumerate(entries)}
    relevant = relevance_matrix([[ids[i] for i in q.relevant if i in ids] for q in queries], len(entries))
    texts = [q.query for q in queries]
    lexicons = {
        f: PoolLexicon([entry_document(e.questions if f is Fields.QUESTION_ANSWER else (), e.answer) for e in entries])
        for f in field_choices
    }

    rr: dict[Candidate, np.ndarray] = {}
    if on_step:
        on_step(f"encoding {len(entries)} entries and {len(queries)} queries for {len(pairs)} layer/pooling pairs")
    dense_by_pair = _dense_scores(base, pairs, entries, texts, field_choices)
    for (layer, pooling), dense in dense_by_pair.items():
        for f in field_choices:
            for weight in weight_choices:
                ranking = dense[f] if weight <= 0 else pool_ranking(dense[f], texts, lexicons[f])
                rr[Candidate(layer, pooling, f, weight)] = reciprocal_ranks(ranking, relevant)

    candidates = list(rr)
    matrix = np.stack([rr[c] for c in candidates])  # [candidates, queries]
    held_out, picks = _cross_validate(matrix, folds, seed)
    choices = [candidates[pick] for pick in picks]
    means = matrix.mean(axis=1)
    results = tuple(
        sorted(
            (CandidateResult(c, float(m)) for c, m in zip(candidates, means, strict=True)), key=lambda r: -r.mrr_at_10
        )
    )
    default_result = next(r for r in results if r.candidate == default)
    return TuneReport(
        results=results,
        default=default_result,
        best=results[0].candidate,
        cross_validated_mrr=float(held_out.mean()),
        default_mrr=default_result.mrr_at_10,
        fold_choices=tuple(choices),
        folds=folds,
    )


def pool_ranking(dense: np.ndarray, queries: Sequence[str], lexicon: PoolLexicon) -> np.ndarray:
    """``[queries, entries]`` ranking scores as ``ask`` computes them with fusion; -inf outside each pool."""
    weight = default_model().fusion_weight
    out = np.full(dense.shape, -np.inf)
    for q, query in enumerate(queries):
        pool = candidate_pool(dense[q], POOL)
        out[q, pool] = fuse(dense[q, pool], lexicon.scores(query, pool.tolist(), POOL), weight)
    return out


def _cross_validate(matrix: np.ndarray, folds: int, seed: int) -> tuple[np.ndarray, list[int]]:
    """Per-query held-out scores and each fold's pick: the candidate best on the other folds.

    ``matrix`` is ``[candidates, queries]`` of per-query scores; the queries are shuffled by ``seed``.
    """
    order = np.random.default_rng(seed).permutation(matrix.shape[1])
    held_out = np.zeros(matrix.shape[1])
    picks = []
    for fold in np.array_split(order, folds):
        train = np.setdiff1d(order, fold)
        pick = int(np.argmax(matrix[:, train].mean(axis=1)))
        picks.append(pick)
        held_out[fold] = matrix[pick, fold]
    return held_out, picks


def tune_index(
    entries: Sequence[FaqEntry],
    queries: Sequence[LabelledQuery],
    *,
    layers: Sequence[str] = DEFAULT_LAYERS,
    poolings: Sequence[Pooling | str] = DEFAULT_POOLINGS,
    fields: Sequence[Fields | str] = DEFAULT_FIELDS,
    weights: Sequence[float] = DEFAULT_WEIGHTS,
    folds: int = 5,
    seed: int = 0,
    source: str | None = None,
    on_step: Callable[[str], None] | None = None,
) -> tuple[FaqIndex, TuneReport]:
    """Run :func:`tune` and index ``entries`` with the winning settings (``faq-search tune``).

    ``source`` (the FAQ file's name) is recorded in the manifest. The index is
    returned unsaved, like :func:`faq_search.quality.adapt.adapt_index`'s.
    """
    report = tune(
        entries, queries, layers=layers, poolings=poolings, fields=fields, weights=weights, folds=folds, seed=seed,
        on_step=on_step,
    )  # fmt: skip
    best = report.best
    index = FaqIndex.build(
        entries,
        settings=EncoderSettings(layer=best.layer, pooling=best.pooling),
        fields=best.fields,
        hybrid=HybridSettings(weight=best.weight),
    )
    if source is not None:
        index.revise(source=source)
    return index, report


def _dense_scores(
    base: EncoderSettings,
    pairs: Sequence[tuple[str, Pooling]],
    entries: Sequence[FaqEntry],
    queries: Sequence[str],
    field_choices: Sequence[Fields],
) -> dict[tuple[str, Pooling], dict[Fields, np.ndarray]]:
    """Entry scores [queries, entries] per (layer, pooling) pair and fields choice.

    One model run serves every pair: the encoder keeps the blocks the deepest
    requested layer needs, and each pair pools its own layers from the same
    hidden states. An entry's score is the max cosine over its rows.
    """
    from faq_search.index.ranking import best_row_scores, entry_starts  # the index's own best-row kernel

    probe = BertEncoder(dataclasses.replace(base, layer="-1"))
    deepest = max(max(LayerSpec.parse(layer).absolute(probe.num_layers)) for layer, _ in pairs)
    encoder = probe if deepest == probe.num_layers else BertEncoder(dataclasses.replace(base, layer=str(deepest)))
    texts, row_entry, row_field = embedding_rows(entries, Fields.QUESTION_ANSWER, encoder.windows)
    unique = list(dict.fromkeys(texts))
    position = {t: n for n, t in enumerate(unique)}
    where = [position[t] for t in texts]
    vectors = _encode_pairs(encoder, [*unique, *queries], pairs)
    entry_of = np.asarray(row_entry)
    out: dict[tuple[str, Pooling], dict[Fields, np.ndarray]] = {}
    for pair, matrix in vectors.items():
        rows, query_vectors = matrix[: len(unique)][where], matrix[len(unique) :]
        scores = query_vectors @ rows.T
        out[pair] = {}
        for f in field_choices:
            keep = np.ones(len(texts), dtype=bool) if f is Fields.QUESTION_ANSWER else np.asarray(row_field) == ANSWER
            out[pair][f] = best_row_scores(scores[:, keep], entry_starts(entry_of[keep], len(entries)))
    return out


def _encode_pairs(
    encoder: BertEncoder, texts: Sequence[str], pairs: Sequence[tuple[str, Pooling]]
) -> dict[tuple[str, Pooling], np.ndarray]:
    """Unit vectors of ``texts`` for every (layer, pooling) pair from one pass of the model."""
    import torch

    from faq_search.encoding.pooling import sentence_vectors

    specs = {pair: LayerSpec.parse(pair[0]) for pair in pairs}
    indices = {pair: spec.absolute(encoder.num_layers) for pair, spec in specs.items()}
    out = {pair: np.zeros((len(texts), 1), dtype=np.float32) for pair in pairs}
    ids, special = encoder.tokenize(texts)
    for batch in encoder.batches([len(row) for row in ids]):
        states, mask = encoder.hidden_states([ids[i] for i in batch])
        if special is not None:
            flags = torch.zeros_like(mask)
            for row, i in enumerate(batch):
                flags[row, : len(special[i])] = torch.tensor(special[i])
            mask = mask * (1 - flags)
        with torch.inference_mode():
            for pair in pairs:
                unit = sentence_vectors(states, indices[pair], mask, pair[1], specs[pair].combine).numpy()
                if out[pair].shape[1] != unit.shape[1]:
                    out[pair] = np.zeros((len(texts), unit.shape[1]), dtype=np.float32)
                out[pair][batch] = unit
    return out
