"""Long texts -> overlapping windows that fit the encoder, so nothing is cut off.

BERT sees at most ``max_seq_len`` word pieces. An answer longer than that is
embedded as several windows of whole words that overlap by a quarter of a
window; each window is a row of the index, and the entry scores its best row.

This is one of two window splitters, on purpose. Token and word vectors
(``faq-search embed``) plan their own windows over word-piece ids in
:mod:`faq_search.export.spans`, and the two differ where their ends differ:

- overlap: a quarter here, because each window is a whole passage to be
  matched and more overlap only adds near-duplicate index rows; half there,
  because every piece needs one window where it has context on both sides
  (at least about a quarter of a window each way) for its own vector;
- units: substrings here, which the encoder tokenizes again like any text;
  ranges of the already computed piece ids there, whose vectors are sliced
  back to pieces;
- a word longer than the window: cut at the full width there; here the window
  is shrunk to keep words whole, which leaves windows of a single piece until
  the word's end fits (see :func:`split_windows`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any


def special_tokens(tokenizer: Any) -> int:
    """How many special tokens ([CLS], [SEP]) the model adds to one text."""
    if hasattr(tokenizer, "encode_batch"):  # a bare tokenizers.Tokenizer
        processor = tokenizer.post_processor
        return 0 if processor is None else int(processor.num_special_tokens_to_add(False))
    return int(tokenizer.num_special_tokens_to_add(pair=False))


def piece_counts(tokenizer: Any, texts: Sequence[str]) -> list[int]:
    """Word pieces of each text, without special tokens or truncation."""
    if hasattr(tokenizer, "encode_batch"):
        return [len(e.ids) for e in tokenizer.encode_batch(list(texts), add_special_tokens=False)]
    encoded = tokenizer(list(texts), add_special_tokens=False, truncation=False)
    return [len(ids) for ids in encoded["input_ids"]]


def _pieces(tokenizer: Any, text: str) -> tuple[list[tuple[int, int]], list[int | None]]:
    """Character offsets and word index of each word piece of ``text``."""
    if hasattr(tokenizer, "encode_batch"):
        encoding = tokenizer.encode(text, add_special_tokens=False)
        return list(encoding.offsets), list(encoding.word_ids)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False)
    return list(encoded["offset_mapping"]), list(encoded.word_ids())


def split_windows(tokenizer: Any, text: str, max_seq_len: int, overlap: float = 0.25) -> list[str]:
    """``text`` itself when it fits, else overlapping substrings that each fit.

    Windows start and end on word boundaries (never inside a word's pieces) and
    cover the whole text; consecutive windows share about ``overlap`` of a window
    (a quarter for index rows; token vectors use half, see the module docstring).
    ``tokenizer`` is transformers' fast tokenizer or a bare ``tokenizers.Tokenizer``
    without truncation (the same pieces, offsets and words). With the bundled
    model's uncased WordPiece, one piece per word::

        split_windows(tok, "one two three ... twenty", 10)  # 8 pieces a window, 6 a step
        -> ["one two ... eight", "seven eight ... fourteen", "thirteen fourteen ... twenty"]

    Limit: a word longer than a window cannot stay whole, and the window then
    shrinks to a single piece: ``"Hello " + "qzxjvk" * 6 + " world"`` at 32 gives
    ``["Hello", "q", "z", "x", ...]`` until the rest fits. The export planner
    (:func:`faq_search.export.spans.plan_spans`) cuts such a word at the full width.
    """
    offsets, words = _pieces(tokenizer, text)
    budget = max_seq_len - special_tokens(tokenizer)
    if len(offsets) <= budget:
        return [text]
    step = max(1, int(budget * (1.0 - overlap)))
    windows: list[str] = []
    start = 0
    while True:
        end = min(start + budget, len(offsets))
        while end < len(offsets) and end > start + 1 and words[end] is not None and words[end] == words[end - 1]:
            end -= 1  # do not cut a word's pieces apart
        windows.append(text[offsets[start][0] : offsets[end - 1][1]])
        if end >= len(offsets):
            return windows
        nxt = max(start + 1, min(start + step, end))
        while nxt > start + 1 and words[nxt] is not None and words[nxt] == words[nxt - 1]:
            nxt -= 1  # start on a word's first piece
        start = nxt


def split_texts(tokenizer: Any, texts: Sequence[str], window: int, max_seq_len: int) -> list[list[str]]:
    """Each text whole when it fits ``window`` tokens (at most ``max_seq_len``), else its overlapping windows.

    The one rule both encoders (torch and ONNX Runtime) split index texts by, so
    that a bundle's rows do not depend on the runtime. Not thread-safe: the
    caller holds its tokenizer's lock.
    """
    if not texts:
        return []
    window = min(window, max_seq_len)
    lengths = piece_counts(tokenizer, texts)
    budget = window - special_tokens(tokenizer)
    return [
        split_windows(tokenizer, text, window) if n > budget else [text] for text, n in zip(texts, lengths, strict=True)
    ]


def length_batches(lengths: Sequence[int], batch_size: int, max_batch_tokens: int) -> Iterator[list[int]]:
    """Indices grouped longest first, each group within ``batch_size`` texts and ``max_batch_tokens`` padded tokens.

    The one batching rule of both encoders (torch and ONNX Runtime): texts of
    similar length share a forward pass, so little of it is padding.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batch: list[int] = []
    for index in order:
        width = lengths[batch[0]] if batch else lengths[index]
        if batch and (len(batch) >= batch_size or (len(batch) + 1) * width > max_batch_tokens):
            yield batch
            batch = []
        batch.append(index)
    if batch:
        yield batch
