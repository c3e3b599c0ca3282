"""Sentence, token and word vectors from an encoder: the computation behind ``faq-search embed``.

What people used bert-as-service and the BERT token-level embedding scripts
for, on the same encoder (and so the same model, layer choice and precision)
that indexes an FAQ:

- sentence level: :func:`sentence_embeddings`, one unit-length vector per text,
  exactly the encoder's own ``encode``. Texts longer than the window are cut at
  ``max_seq_len`` and flagged.
- token level: :func:`token_embeddings`, one vector per word piece with its
  token string and character offsets. [CLS]/[SEP] are returned when asked for
  (bert-as-service's ``pooling_strategy=NONE`` with ``show_tokens_to_client``);
  padding never is.
- word level: :func:`word_embeddings`, one vector per word of the tokenizer's
  pre-tokenizer (whitespace and punctuation split, as BERT's), its word pieces
  merged by the first, last or mean piece.

Token and word vectors are the raw hidden states, the chosen layers combined
per piece exactly as sentence vectors combine them
(:func:`faq_search.encoding.pooling.pool_layers`): they are **not**
normalised. Long texts run in overlapping windows (:mod:`faq_search.export.spans`);
with ``windows=False`` the text is cut at a word boundary instead and the
dropped words are reported.

What this module is not: a second encoder. It reads only what
:class:`TokenEncoder` declares, all of it public on
:class:`~faq_search.encoding.encoder.BertEncoder`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

from faq_search.encoding.settings import Pooling, choice
from faq_search.errors import InputError
from faq_search.export.inputs import check_options, check_texts
from faq_search.export.records import (
    Embeddings,
    Level,
    Record,
    SentenceEmbedding,
    TokenEmbedding,
    WordEmbedding,
    WordMerge,
)
from faq_search.export.spans import Span, TextRun, plan_spans

if TYPE_CHECKING:
    import numpy as np
    import torch

    from faq_search.encoding.settings import EncoderIdentity, EncoderSettings


class TokenEncoder(Protocol):
    """What export reads from an encoder: the :class:`~faq_search.encoding.protocol.Encoder` part plus hidden states.

    Token vectors need the layers before pooling and the tokenizer's offsets
    and word ids, which the index's ``Encoder`` protocol does not (and should
    not) declare; :class:`~faq_search.encoding.encoder.BertEncoder` has them all.
    """

    @property
    def settings(self) -> EncoderSettings: ...

    @property
    def identity(self) -> EncoderIdentity: ...

    @property
    def dimension(self) -> int: ...

    @property
    def batch_size(self) -> int:
        """Texts (here: windows) per forward pass."""
        ...

    @property
    def layer_indices(self) -> Sequence[int]:
        """The ``hidden_states`` indices of the chosen layers, in output order."""
        ...

    @property
    def combine(self) -> str:
        """How several layers combine: ``concat`` or ``sum``."""
        ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...

    def tokenize(self, texts: Sequence[str]) -> tuple[list[list[int]], list[list[int]] | None]:
        """Word-piece ids per text, truncated at ``max_seq_len`` (and special-token masks, or None)."""
        ...

    def hidden_states(self, ids: Sequence[Sequence[int]]) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """Every layer's float32 ``[batch, width, hidden]`` for one padded batch, and its mask."""
        ...

    def tokenizer_session(self) -> AbstractContextManager[Any]:
        """transformers' fast tokenizer, held under the encoder's lock while in use."""
        ...


def _first(pieces: np.ndarray) -> np.ndarray:
    return pieces[0].copy()


def _last(pieces: np.ndarray) -> np.ndarray:
    return pieces[-1].copy()


def _mean(pieces: np.ndarray) -> np.ndarray:
    return pieces.mean(axis=0, dtype=pieces.dtype)


MERGERS: dict[WordMerge, Callable[[np.ndarray], np.ndarray]] = {
    WordMerge.FIRST: _first,
    WordMerge.LAST: _last,
    WordMerge.MEAN: _mean,
}
"""One pure function per merge: ``[pieces, width] -> [width]``."""


def embed(
    encoder: TokenEncoder,
    texts: Sequence[str],
    level: Level | str = Level.SENTENCE,
    *,
    merge: WordMerge | str | None = None,
    windows: bool | None = None,
    special: bool | None = None,
    batch_size: int | None = None,
) -> Embeddings:
    """Embed ``texts`` at one level; the one entry point for the CLI and the server.

    ``merge`` (word level, default mean), ``windows`` (token and word level,
    default True) and ``special`` (token level: return [CLS]/[SEP]; default the
    encoder's ``include_special``) are refused where they do not apply.
    ``batch_size`` (windows per forward pass) defaults to the encoder's.
    """
    chosen = check_options(level, merge=merge, windows=windows)
    check_texts(texts)
    batch = batch_size or encoder.batch_size
    settings = encoder.settings
    records: tuple[Record, ...]
    pooling: Pooling | None = None
    word_merge: WordMerge | None = None
    if chosen is Level.SENTENCE:
        records = tuple(sentence_embeddings(encoder, texts))
        pooling = settings.pooling
        dimension = encoder.dimension
    elif chosen is Level.TOKEN:
        tokens = token_embeddings(encoder, texts, special=special, windows=windows is not False, batch_size=batch)
        records, dimension = tuple(tokens), tokens[0].vectors.shape[1]
    else:
        word_merge = choice(WordMerge, merge or WordMerge.MEAN, "word merge")
        words = word_embeddings(encoder, texts, merge=word_merge, windows=windows is not False, batch_size=batch)
        records, dimension = tuple(words), words[0].vectors.shape[1]
    return Embeddings(
        level=chosen,
        model_name=encoder.identity.model_name,
        layer=settings.layer,
        pooling=pooling,
        merge=word_merge,
        dimension=dimension,
        normalized=chosen is Level.SENTENCE,
        max_seq_len=settings.max_seq_len,
        records=records,
    )


def sentence_embeddings(encoder: TokenEncoder, texts: Sequence[str]) -> list[SentenceEmbedding]:
    """One unit-length vector per text, exactly the encoder's ``encode``, with its pieces and a cut flag."""
    check_texts(texts)
    vectors = encoder.encode(texts)
    vectors.flags.writeable = False
    ids, _ = encoder.tokenize(texts)
    with encoder.tokenizer_session() as tokenizer:
        whole = tokenizer(list(texts), truncation=False, return_attention_mask=False, return_token_type_ids=False)[
            "input_ids"
        ]
        tokens = [tuple(tokenizer.convert_ids_to_tokens(row)) for row in ids]
    return [
        SentenceEmbedding(text=text, vector=vectors[i], tokens=tokens[i], truncated=len(whole[i]) > len(ids[i]))
        for i, text in enumerate(texts)
    ]


def token_embeddings(
    encoder: TokenEncoder,
    texts: Sequence[str],
    *,
    special: bool | None = None,
    windows: bool = True,
    batch_size: int = 32,
) -> list[TokenEmbedding]:
    """One vector per word piece (several layers concatenated or summed per piece), never for padding.

    ``special``: also return [CLS] (first) and [SEP] (last), as bert-as-service
    did; default the encoder's ``include_special``. With several windows the
    [CLS] vector comes from the first window and the [SEP] vector from the last.
    """
    check_texts(texts)
    keep_special = encoder.settings.include_special if special is None else special
    out: list[TokenEmbedding] = []
    for run in _run_texts(encoder, texts, windows, batch_size):
        owners = run.owners()
        kept = run.kept
        content = [run.vector_of(p, owners[p]) for p in range(kept)]
        tokens = list(run.tokens[:kept])
        offsets = list(run.offsets[:kept])
        word_index: list[int | None] = list(run.word_ids[:kept])
        if keep_special:
            first, last = run.spans[0], run.spans[-1]
            head = [run.window_vectors[first.window][i] for i in range(len(run.prefix))]
            tail_start = len(run.prefix) + last.end - last.start
            tail = [run.window_vectors[last.window][tail_start + i] for i in range(len(run.suffix))]
            content = head + content + tail
            tokens = list(run.prefix) + tokens + list(run.suffix)
            offsets = [(0, 0)] * len(run.prefix) + offsets + [(0, 0)] * len(run.suffix)
            word_index = [None] * len(run.prefix) + word_index + [None] * len(run.suffix)
        out.append(
            TokenEmbedding(
                text=run.text,
                tokens=tuple(tokens),
                offsets=tuple(offsets),
                word_index=tuple(word_index),
                vectors=_stack(content, run.width),
                windows=len(run.spans),
                dropped_tokens=len(run.tokens) - kept,
                truncated_at=run.truncated_at,
            )
        )
    return out


def word_embeddings(
    encoder: TokenEncoder,
    texts: Sequence[str],
    *,
    merge: WordMerge | str = WordMerge.MEAN,
    windows: bool = True,
    batch_size: int = 32,
) -> list[WordEmbedding]:
    """One vector per word, merging its pieces' token-level vectors by ``merge``.

    Words are the tokenizer's pre-tokenizer words: BERT splits on whitespace and
    on every punctuation character (``don't`` is three words). A word's vector
    is built from the same piece vectors :func:`token_embeddings` returns.
    """
    check_texts(texts)
    merge = choice(WordMerge, merge, "word merge")
    merger = MERGERS[merge]
    out: list[WordEmbedding] = []
    for run in _run_texts(encoder, texts, windows, batch_size):
        owners = run.owners()
        words: list[str] = []
        offsets: list[tuple[int, int]] = []
        pieces: list[tuple[str, ...]] = []
        vectors = []
        dropped: list[str] = []
        truncated_at: int | None = None
        for start, end in run.word_spans():
            span = (run.offsets[start][0], run.offsets[end - 1][1])
            if end > run.kept:  # past the window (or cut by it): reported, never half-merged
                truncated_at = span[0] if truncated_at is None else truncated_at
                dropped.append(run.text[span[0] : span[1]])
                continue
            words.append(run.text[span[0] : span[1]])
            offsets.append(span)
            pieces.append(tuple(run.tokens[start:end]))
            vectors.append(merger(_stack([run.vector_of(p, owners[p]) for p in range(start, end)], run.width)))
        out.append(
            WordEmbedding(
                text=run.text,
                words=tuple(words),
                offsets=tuple(offsets),
                pieces=tuple(pieces),
                vectors=_stack(vectors, run.width),
                merge=merge,
                windows=len(run.spans),
                dropped_words=tuple(dropped),
                truncated_at=truncated_at,
            )
        )
    return out


def _run_texts(encoder: TokenEncoder, texts: Sequence[str], windows: bool, batch_size: int) -> list[TextRun]:
    """Tokenize each text whole, cut it into windows, and run every window through the encoder."""
    if batch_size < 1:
        raise InputError(f"batch size {batch_size} must be at least 1")
    with encoder.tokenizer_session() as tokenizer:
        encoded = tokenizer(
            list(texts),
            truncation=False,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        pieces: list[list[str]] = [list(tokenizer.convert_ids_to_tokens(row)) for row in encoded["input_ids"]]
    plans = []
    window_ids: list[list[int]] = []
    for i in range(len(texts)):
        ids = list(encoded["input_ids"][i])
        special = list(encoded["special_tokens_mask"][i])
        content = [p for p, flag in enumerate(special) if not flag]
        # Everything between the first and last ordinary piece is content; with no
        # ordinary piece at all (a text of characters the normaliser drops), the
        # specials split evenly: [CLS] | [SEP].
        first, last = (content[0], content[-1] + 1) if content else (len(ids) // 2, len(ids) // 2)
        word_ids = encoded.word_ids(i)[first:last]
        prefix_ids, body_ids, suffix_ids = ids[:first], ids[first:last], ids[last:]
        budget = encoder.settings.max_seq_len - len(prefix_ids) - len(suffix_ids)
        spans = []
        for start, end in plan_spans(word_ids, budget, windows):
            spans.append(Span(len(window_ids), start, end))
            window_ids.append(prefix_ids + body_ids[start:end] + suffix_ids)
        plans.append((first, last, word_ids, spans))
    vectors = _window_vectors(encoder, window_ids, batch_size)
    width = next(iter(vectors.values())).shape[1]
    return [
        TextRun(
            text=text,
            tokens=pieces[i][first:last],
            offsets=[(int(a), int(b)) for a, b in encoded["offset_mapping"][i][first:last]],
            word_ids=word_ids,
            prefix=pieces[i][:first],
            suffix=pieces[i][last:],
            spans=spans,
            window_vectors=vectors,
            width=width,
        )
        for i, (text, (first, last, word_ids, spans)) in enumerate(zip(texts, plans, strict=True))
    ]


def _window_vectors(encoder: TokenEncoder, window_ids: list[list[int]], batch_size: int) -> dict[int, np.ndarray]:
    """Per window, float32 ``[pieces, width]``: the chosen layers combined per piece (padding dropped)."""
    import torch

    out: dict[int, np.ndarray] = {}
    order = sorted(range(len(window_ids)), key=lambda i: -len(window_ids[i]))
    for first in range(0, len(order), batch_size):
        batch = order[first : first + batch_size]
        states, _ = encoder.hidden_states([window_ids[i] for i in batch])
        with torch.inference_mode():
            combined = combine_layers(states, encoder.layer_indices, encoder.combine)
        for row, window in enumerate(batch):
            out[window] = combined[row, : len(window_ids[window])].numpy().copy()
    return out


def combine_layers(states: Sequence[torch.Tensor], indices: Sequence[int], combine: str) -> torch.Tensor:
    """Each piece's chosen layers combined: ``[batch, pieces, hidden]`` per layer -> ``[batch, pieces, width]``.

    The rule is pooling's own, not a copy of it: every piece is viewed as a
    sequence of one piece, whose mean pool is the piece itself, and
    :func:`~faq_search.encoding.pooling.pool_layers` then concatenates the
    chosen layers (in ``indices`` order) or sums them, as it does for sentence
    vectors. Two layers of width 384 give 768 wide pieces concatenated, 384 summed.
    """
    import torch

    from faq_search.encoding.pooling import pool_layers

    batch, pieces = states[indices[0]].shape[:2]
    chosen = set(indices)
    single = [state.reshape(batch * pieces, 1, -1) if i in chosen else state for i, state in enumerate(states)]
    ones = torch.ones(batch * pieces, 1, dtype=torch.int64)
    return pool_layers(single, indices, ones, Pooling.MEAN, combine).reshape(batch, pieces, -1)


def _stack(vectors: Sequence[np.ndarray], width: int) -> np.ndarray:
    import numpy as np

    array = np.stack(vectors).astype(np.float32, copy=False) if vectors else np.zeros((0, width), np.float32)
    array.flags.writeable = False
    return array
