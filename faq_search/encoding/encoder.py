"""The BERT encoder: texts -> L2-normalised float32 vectors.

By default a text's vector is the attention-mask-aware mean over its tokens of
the second-to-last hidden layer of the bundled all-MiniLM-L6-v2. Layer, pooling
and special-token policy are :class:`~faq_search.encoding.settings.EncoderSettings`.

How it is fast: a plain BERT stored as ``model.safetensors`` runs on
:class:`~faq_search.encoding.bert.LeanBert` (read without importing transformers; bf16
weights cast once where the CPU has native bf16; padding dropped before the
linear layers), texts are tokenized by the ``tokenizers`` library directly,
and batches are formed by a token budget over length-sorted texts. Any other
BERT-family model runs on transformers' own classes, as before. See
docs/performance.md for the measurements.

What the encoder does not do: it never runs the transformer blocks above the
deepest layer it pools (they are dropped at load time), never downloads
weights (``local_files_only``), and never executes model code from a model
repository (no ``trust_remote_code``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from faq_search.encoding.loading import (
    block_list,
    fast_tokenizer,
    loaded_weights_digest,
    native_bf16,
    resolve_model,
    resolve_precision,
    with_transformers,
)
from faq_search.encoding.protocol import Encoder, TextWindows
from faq_search.encoding.settings import (
    EncoderIdentity,
    EncoderSettings,
    Precision,
)
from faq_search.encoding.windows import length_batches, split_texts
from faq_search.errors import InputError, ModelError
from faq_search.progress import progress_bar

if TYPE_CHECKING:
    import tokenizers
    import torch

DEFAULT_BATCH_TOKENS = 2048
"""Padded tokens per forward pass: large enough for efficient matmuls, small enough to stay in cache."""


__all__ = ["BertEncoder", "Encoder", "TextWindows", "native_bf16", "resolve_model", "resolve_precision"]


class BertEncoder:
    """A BERT-family model cut to the layers it pools; implements :class:`Encoder` and :class:`TextWindows`.

    Safe to call from several threads at once: tokenisation is serialised by
    the encoder's own lock (the fast tokenizer is not re-entrant), the forward
    pass is not.

    ``batch_size`` caps the texts per forward pass and ``max_batch_tokens``
    their padded tokens; ``threads`` sets torch's (process-wide) thread count.
    """

    def __init__(
        self,
        settings: EncoderSettings | None = None,
        *,
        batch_size: int = 64,
        max_batch_tokens: int = DEFAULT_BATCH_TOKENS,
        threads: int | None = None,
        progress: bool = False,
    ) -> None:
        from faq_search.encoding.runtime import require_torch

        require_torch("the torch encoder (faq-search index, adapt, embed, tune, check)")
        import torch

        self.settings = settings or EncoderSettings()
        if batch_size < 1:
            raise InputError(f"batch size {batch_size} must be at least 1")
        self.batch_size = batch_size
        self.max_batch_tokens = max(max_batch_tokens, self.settings.max_seq_len)
        self.progress = progress
        if threads is not None:
            if threads < 1:
                raise InputError(f"threads {threads} must be at least 1")
            torch.set_num_threads(threads)
        self.precision = resolve_precision(self.settings.precision)
        source, self.model_name = resolve_model(self.settings.model)
        self._source = source
        self._lock = threading.Lock()  # serialises tokenizer calls
        self._load_lock = threading.Lock()
        self._hf_tokenizer: Any = None
        self._fast: tokenizers.Tokenizer | None = None
        self._window_tokenizer: tokenizers.Tokenizer | None = None
        self._hf_model: Any = None
        self.lean: Any = None  # a LeanBert when the model is a plain BERT

        checkpoint = None
        if Path(source).is_dir():
            from faq_search.encoding.checkpoint import read_checkpoint

            checkpoint = read_checkpoint(source)
        if checkpoint is not None:
            from faq_search.encoding.checkpoint import weights_digest

            shape, state = checkpoint
            self.weights_sha256 = weights_digest(state.items())
            self.num_layers = shape.num_layers
            self.hidden_size = shape.hidden_size
            max_positions = shape.max_positions
            self._fast = fast_tokenizer(source, self.settings.max_seq_len)
        else:
            model, state_shape = self._load_transformers_model(source)
            self.weights_sha256 = loaded_weights_digest(model)
            config = model.config
            self.num_layers = int(config.num_hidden_layers)
            self.hidden_size = int(config.hidden_size)
            max_positions = int(getattr(config, "max_position_embeddings", 512))
            if state_shape is not None:  # a plain BERT in another file layout: run it lean all the same
                shape, state = state_shape, dict(model.state_dict())
            else:
                self._hf_model = model
        if self._fast is None:
            self.tokenizer  # noqa: B018 - load transformers' tokenizer now: it is the only one

        spec = self.settings.layer_spec
        self.layer_indices = spec.absolute(self.num_layers)
        self.combine = spec.combine
        if self.settings.max_seq_len > max_positions:
            raise InputError(
                f"max_seq_len {self.settings.max_seq_len} exceeds the model's window of {max_positions} tokens"
            )
        needed = max(self.layer_indices)
        if self._hf_model is None:
            from faq_search.encoding.bert import LeanBert

            self.lean = LeanBert(shape, state, needed)
            self.lean.prepare(torch.bfloat16 if self.precision is Precision.BF16 else torch.float32)
            self.blocks_run = needed
            self.model: torch.nn.Module = self.lean
        else:
            self.blocks_run = self._drop_unused_blocks(self._hf_model, needed)
            if hasattr(self._hf_model, "pooler"):
                self._hf_model.pooler = None
            self.model = self._hf_model
        from faq_search.encoding.pooling import pooled_width

        self._dimension = pooled_width(self.settings.pooling, self.hidden_size, len(self.layer_indices), self.combine)

    def _load_transformers_model(self, source: str) -> tuple[Any, Any]:
        """transformers' model for ``source``, and its lean shape when it is a plain ``BertModel``."""
        import transformers

        from faq_search.encoding.checkpoint import BertShape

        model = with_transformers(
            lambda: transformers.AutoModel.from_pretrained(source, local_files_only=True, trust_remote_code=False),
            f"model {self.settings.model!r}",
            "pass a local Hugging Face model directory with --model, or download the model first",
        )
        model.eval()
        shape = BertShape.from_config(model.config.to_dict()) if type(model).__name__ == "BertModel" else None
        if shape is not None and set(model.state_dict()) - set(shape.tensor_shapes()):
            shape = None
        return model, shape

    def _drop_unused_blocks(self, model: torch.nn.Module, needed: int) -> int:
        """Keep only the first ``needed`` transformer blocks; returns how many run."""
        import torch

        found = block_list(model)
        if found is None:
            return self.num_layers  # unknown layout: run it all, pool the right layer anyway
        owner, attr = found
        blocks = getattr(owner, attr)
        setattr(owner, attr, torch.nn.ModuleList(list(blocks)[:needed]))
        config: Any = model.config
        config.num_hidden_layers = needed
        return needed

    @property
    def window_tokenizer(self) -> Any:
        """A tokenizer without truncation, for measuring and splitting long texts into windows.

        The bare ``tokenizers`` one where it tokenizes as transformers would
        (importing transformers costs seconds), else transformers' own.
        """
        if self._fast is None:
            return self.tokenizer
        if self._window_tokenizer is None:
            with self._load_lock:
                if self._window_tokenizer is None:
                    import tokenizers

                    clone = tokenizers.Tokenizer.from_str(self._fast.to_str())
                    clone.no_truncation()
                    clone.no_padding()
                    self._window_tokenizer = clone
        return self._window_tokenizer

    @property
    def tokenizer(self) -> Any:
        """transformers' fast tokenizer for the model (loaded on first use: importing it takes seconds)."""
        if self._hf_tokenizer is None:
            with self._load_lock:
                if self._hf_tokenizer is None:
                    import transformers

                    tokenizer = with_transformers(
                        lambda: transformers.AutoTokenizer.from_pretrained(self._source, local_files_only=True),
                        f"the tokenizer of model {self.settings.model!r}",
                        "pass a local Hugging Face model directory with --model",
                    )
                    if not getattr(tokenizer, "is_fast", False):
                        raise ModelError(
                            f"model {self.settings.model!r} has no fast tokenizer (tokenizer.json); convert it first"
                        )
                    self._hf_tokenizer = tokenizer
        return self._hf_tokenizer

    def tokenizer_json(self) -> str:
        """The ``tokenizers`` JSON that gives this encoder's word pieces: truncation at ``max_seq_len``, no padding.

        What a torch-free runtime tokenizes with (:mod:`faq_search.encoding.onnx_runtime`).
        """
        import tokenizers

        source = self._fast if self._fast is not None else self.tokenizer.backend_tokenizer
        clone = tokenizers.Tokenizer.from_str(source.to_str())
        clone.no_padding()
        clone.enable_truncation(self.settings.max_seq_len)
        return str(clone.to_str())

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def identity(self) -> EncoderIdentity:
        return EncoderIdentity(
            model_name=self.model_name,
            weights_sha256=self.weights_sha256,
            layer=self.settings.layer,
            pooling=self.settings.pooling.value,
            include_special=self.settings.include_special,
            max_seq_len=self.settings.max_seq_len,
            dimension=self.dimension,
        )

    @property
    def windows(self) -> TextWindows:
        """This encoder measures and splits long texts itself."""
        return self

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text runs with: special tokens included, truncated at ``max_seq_len``."""
        ids, _ = self.tokenize(texts)
        return [len(row) for row in ids]

    def split(self, texts: Sequence[str], window: int) -> list[list[str]]:
        """Each text whole when it fits ``window`` tokens (at most ``max_seq_len``), else its overlapping windows."""
        if not texts:
            return []
        tokenizer = self.window_tokenizer
        with self._lock:
            return split_texts(tokenizer, texts, window, self.settings.max_seq_len)

    def tokenize(self, texts: Sequence[str]) -> tuple[list[list[int]], list[list[int]] | None]:
        """Word-piece ids per text (truncated to the window) and, when specials are excluded, their masks."""
        with_special_mask = not self.settings.include_special
        if self._fast is not None:
            with self._lock:
                encodings = self._fast.encode_batch(list(texts))
            ids = [e.ids for e in encodings]
            return ids, ([e.special_tokens_mask for e in encodings] if with_special_mask else None)
        tokenizer = self.tokenizer
        with self._lock:
            encoded = tokenizer(
                list(texts),
                truncation=True,
                max_length=self.settings.max_seq_len,
                return_attention_mask=False,
                return_token_type_ids=False,
                return_special_tokens_mask=with_special_mask,
            )
        special = encoded["special_tokens_mask"] if with_special_mask else None
        return encoded["input_ids"], special

    def batches(self, lengths: Sequence[int]) -> Iterator[list[int]]:
        """Indices grouped longest first, each group within the count and the padded-token budget."""
        return length_batches(lengths, self.batch_size, self.max_batch_tokens)

    @contextmanager
    def tokenizer_session(self) -> Iterator[Any]:
        """transformers' tokenizer, held under the encoder's lock while in use (it is not re-entrant)."""
        tokenizer = self.tokenizer
        with self._lock:
            yield tokenizer

    def autocast(self) -> AbstractContextManager[object]:
        """bf16 autocast when the encoder runs in bf16, else nothing: wrap every forward pass of ``model`` in it."""
        import torch

        if self.precision is Precision.BF16:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return nullcontext()

    def _padded(self, ids: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch as padded ``input_ids`` and its 0/1 attention mask (int64)."""
        import torch

        width = max(len(row) for row in ids)
        # The lean model never looks at padding ids; transformers' models get the real pad id.
        pad = 0 if self.lean is not None else int(self.tokenizer.pad_token_id or 0)
        input_ids = np.full((len(ids), width), pad, dtype=np.int64)
        attention = np.zeros((len(ids), width), dtype=np.int64)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = seq
            attention[row, : len(seq)] = 1
        return torch.from_numpy(input_ids), torch.from_numpy(attention)

    def _states(self, input_ids: torch.Tensor, mask: torch.Tensor, keep: Sequence[int] | None) -> list[torch.Tensor]:
        """Hidden states by ``output_hidden_states`` index; with ``keep``, layers not in it are empty tensors."""
        import torch

        with torch.inference_mode():
            if self.lean is not None:
                found = self.lean.states(input_ids, mask, keep)
                empty = torch.empty(0)
                return [found.get(layer, empty) for layer in range(self.blocks_run + 1)]
            with self.autocast():
                out = self.model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True)
            return [state.float() for state in out.hidden_states]

    def hidden_states(self, ids: Sequence[Sequence[int]]) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """Run the kept blocks on one padded batch; returns (hidden states, attention mask).

        ``hidden_states[i]`` is ``output_hidden_states[i]`` as float32 ``[batch,
        width, hidden]`` for ``i`` up to the deepest kept layer; the mask is int64.
        """
        input_ids, mask = self._padded(ids)
        return tuple(self._states(input_ids, mask, None)), mask

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Sentence vectors in input order: float32 ``[len(texts), dimension]``, unit length."""
        import torch

        from faq_search.encoding.pooling import sentence_vectors

        result = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return result
        ids, special = self.tokenize(texts)
        bar = progress_bar(len(texts), self.progress)
        try:
            for batch in self.batches([len(row) for row in ids]):
                input_ids, mask = self._padded([ids[i] for i in batch])
                states = self._states(input_ids, mask, self.layer_indices)
                if special is not None:
                    counted = mask.numpy().copy()
                    for row, i in enumerate(batch):
                        counted[row, : len(special[i])] -= np.asarray(special[i], dtype=np.int64)
                    mask = torch.from_numpy(counted)
                with torch.inference_mode():
                    pooled = sentence_vectors(states, self.layer_indices, mask, self.settings.pooling, self.combine)
                result[batch] = pooled.numpy()
                bar.update(len(batch))
        finally:
            bar.close()
        return result
