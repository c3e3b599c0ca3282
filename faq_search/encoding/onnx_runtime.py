"""The torch-free query encoder: a bundle's exported graph run by onnxruntime, tokenized by ``tokenizers``.

:class:`OnnxEncoder` implements :class:`~faq_search.encoding.protocol.Encoder`
(and :class:`~faq_search.encoding.protocol.TextWindows`) from the ``onnx/``
files :mod:`faq_search.encoding.onnx_export` writes, so ``ask``, ``serve`` and
``eval`` answer without importing torch or transformers: imports, session and
first question take a fraction of a second where torch alone takes about one.

Its vectors are the torch encoder's fp32 ones to float noise (the agreement is
tested and benchmarked); its identity is the exported encoder's, so a bundle
accepts it exactly where it would accept the torch encoder. Texts are
tokenized and batched as :class:`~faq_search.encoding.encoder.BertEncoder`
does (length-sorted, padded per batch, within a padded-token budget).

What it is not: a trainer or a token-vector exporter (``adapt``, ``tune``,
``embed`` need torch), and it computes in fp32 only.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from faq_search.encoding.onnx_export import GRAPH_FILE, INPUTS, META_FILE, OUTPUT, TOKENIZER_FILE, read_meta
from faq_search.encoding.protocol import TextWindows
from faq_search.encoding.settings import EncoderIdentity, EncoderSettings, Precision
from faq_search.encoding.windows import length_batches, split_texts
from faq_search.errors import InputError, ModelError

DEFAULT_BATCH_TOKENS = 2048
"""Padded tokens per run, as the torch encoder's budget."""


def has_onnx_files(files: Mapping[str, bytes]) -> bool:
    """Whether a bundle's extra files hold an exported query encoder."""
    return all(name in files for name in (GRAPH_FILE, TOKENIZER_FILE, META_FILE))


class OnnxEncoder:
    """An exported query encoder on onnxruntime's CPU provider; safe to call from several threads.

    ``threads`` sets the session's intra-op threads (default: onnxruntime's
    choice, one per core); ``batch_size`` and ``max_batch_tokens`` bound one run.
    """

    def __init__(
        self,
        files: Mapping[str, bytes],
        *,
        threads: int | None = None,
        batch_size: int = 64,
        max_batch_tokens: int = DEFAULT_BATCH_TOKENS,
    ) -> None:
        if not has_onnx_files(files):
            raise ModelError("this index carries no ONNX query encoder; add it with: faq-search onnx INDEX")
        if threads is not None and threads < 1:
            raise InputError(f"threads {threads} must be at least 1")
        if batch_size < 1:
            raise InputError(f"batch size {batch_size} must be at least 1")
        try:
            import onnxruntime
            import tokenizers
        except ImportError as exc:
            raise ModelError(f"the ONNX runtime needs {exc.name}; pip install onnxruntime tokenizers") from None
        self._identity, self.settings = read_meta(files[META_FILE])
        self.batch_size = batch_size
        self.max_batch_tokens = max(max_batch_tokens, self.settings.max_seq_len)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # warnings about the graph are not the user's business
        # Idle worker threads sleep instead of spinning: spinning ones take the CPU from the server's own threads
        # (measured: a served bundle answered several times fewer questions per second with spinning on).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self._session = onnxruntime.InferenceSession(
                files[GRAPH_FILE], sess_options=options, providers=["CPUExecutionProvider"]
            )
            self._tokenizer = tokenizers.Tokenizer.from_str(files[TOKENIZER_FILE].decode("utf-8"))
        except Exception as exc:  # onnxruntime and tokenizers raise their own plain exception types
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise ModelError(
                f"cannot load the bundle's ONNX query encoder ({first}); export it again with faq-search onnx INDEX"
            ) from None
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(self.settings.max_seq_len)
        self._window_tokenizer = tokenizers.Tokenizer.from_str(self._tokenizer.to_str())
        self._window_tokenizer.no_truncation()
        self._lock = threading.Lock()  # the tokenizer is not re-entrant

    @property
    def dimension(self) -> int:
        return self._identity.dimension

    @property
    def identity(self) -> EncoderIdentity:
        return self._identity

    @property
    def precision(self) -> Precision:
        return Precision.FP32

    @property
    def windows(self) -> TextWindows:
        return self

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text runs with: special tokens included, truncated at ``max_seq_len``."""
        ids, _ = self._tokenize(texts)
        return [len(row) for row in ids]

    def split(self, texts: Sequence[str], window: int) -> list[list[str]]:
        """Each text whole when it fits ``window`` tokens (at most ``max_seq_len``), else its overlapping windows."""
        if not texts:
            return []
        tokenizer = self._window_tokenizer
        with self._lock:
            return split_texts(tokenizer, texts, window, self.settings.max_seq_len)

    def _tokenize(self, texts: Sequence[str]) -> tuple[list[list[int]], list[list[int]]]:
        with self._lock:
            encodings = self._tokenizer.encode_batch(list(texts))
        return [e.ids for e in encodings], [e.special_tokens_mask for e in encodings]

    def _batches(self, lengths: Sequence[int]) -> Iterator[list[int]]:
        """Indices grouped longest first, each group within the count and the padded-token budget."""
        return length_batches(lengths, self.batch_size, self.max_batch_tokens)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Sentence vectors in input order: float32 ``[len(texts), dimension]``, unit length."""
        result = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return result
        ids, special = self._tokenize(texts)
        for batch in self._batches([len(row) for row in ids]):
            result[batch] = self._run([ids[i] for i in batch], [special[i] for i in batch])
        return result

    def _run(self, ids: Sequence[Sequence[int]], special: Sequence[Sequence[int]]) -> np.ndarray:
        width = max(len(row) for row in ids)
        input_ids = np.zeros((len(ids), width), dtype=np.int64)
        attention = np.zeros((len(ids), width), dtype=np.int64)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = seq
            attention[row, : len(seq)] = 1
        pool_mask = attention
        if not self.settings.include_special:
            pool_mask = attention.copy()
            for row, mask in enumerate(special):
                pool_mask[row, : len(mask)] -= np.asarray(mask, dtype=np.int64)
        feeds: dict[str, Any] = dict(zip(INPUTS, (input_ids, attention, pool_mask), strict=True))
        vectors: np.ndarray = self._session.run([OUTPUT], feeds)[0]
        return vectors


def onnx_settings(files: Mapping[str, bytes]) -> EncoderSettings:
    """The settings of the encoder a bundle's ONNX files were exported from."""
    return read_meta(files[META_FILE])[1]
