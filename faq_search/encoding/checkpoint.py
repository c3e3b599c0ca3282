"""Reading a plain BERT checkpoint without transformers: its shape, its tensors, and a digest of its weights.

:func:`read_checkpoint` takes a model directory's ``config.json`` and
``model.safetensors`` and returns exactly what ``BertModel.state_dict()`` would,
or None for anything it does not recognise (another architecture, sharded or
pickle weights, extra tensors), so the caller falls back to transformers.
The digest identifies an encoder by its weights, not by its name or path.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu")
"""The ``hidden_act`` values the lean forward implements (see :mod:`faq_search.encoding.bert`)."""

# Buffers some checkpoints carry that are not part of the model's state.
BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")
BLOCK_KEYS = (
    "attention.self.query.weight",
    "attention.self.query.bias",
    "attention.self.key.weight",
    "attention.self.key.bias",
    "attention.self.value.weight",
    "attention.self.value.bias",
    "attention.output.dense.weight",
    "attention.output.dense.bias",
    "attention.output.LayerNorm.weight",
    "attention.output.LayerNorm.bias",
    "intermediate.dense.weight",
    "intermediate.dense.bias",
    "output.dense.weight",
    "output.dense.bias",
    "output.LayerNorm.weight",
    "output.LayerNorm.bias",
)
EMBEDDING_KEYS = (
    "embeddings.word_embeddings.weight",
    "embeddings.position_embeddings.weight",
    "embeddings.token_type_embeddings.weight",
    "embeddings.LayerNorm.weight",
    "embeddings.LayerNorm.bias",
)
POOLER_KEYS = ("pooler.dense.weight", "pooler.dense.bias")


@dataclass(frozen=True)
class BertShape:
    """The sizes of a plain BERT, from its ``config.json``."""

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    activation: str
    hidden_dropout: float = 0.1  # used only when training
    attention_dropout: float = 0.1

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> BertShape | None:
        """The shape of a plain BERT, or None when the config describes anything else."""
        plain = (
            config.get("model_type") == "bert"
            and config.get("position_embedding_type", "absolute") == "absolute"
            and not config.get("is_decoder", False)
            and not config.get("add_cross_attention", False)
            and config.get("hidden_act", "gelu") in ACTIVATIONS
        )
        if not plain:
            return None
        try:
            shape = cls(
                vocab_size=int(config["vocab_size"]),
                hidden_size=int(config["hidden_size"]),
                num_layers=int(config["num_hidden_layers"]),
                num_heads=int(config["num_attention_heads"]),
                intermediate_size=int(config["intermediate_size"]),
                max_positions=int(config.get("max_position_embeddings", 512)),
                type_vocab_size=int(config.get("type_vocab_size", 2)),
                layer_norm_eps=float(config.get("layer_norm_eps", 1e-12)),
                activation=str(config.get("hidden_act", "gelu")),
                hidden_dropout=float(config.get("hidden_dropout_prob", 0.1)),
                attention_dropout=float(config.get("attention_probs_dropout_prob", 0.1)),
            )
        except (KeyError, TypeError, ValueError):
            return None
        return shape if shape.hidden_size % shape.num_heads == 0 and shape.type_vocab_size > 0 else None

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every tensor of ``BertModel``'s state (pooler included), by name."""
        h, i = self.hidden_size, self.intermediate_size
        shapes: dict[str, tuple[int, ...]] = {
            "embeddings.word_embeddings.weight": (self.vocab_size, h),
            "embeddings.position_embeddings.weight": (self.max_positions, h),
            "embeddings.token_type_embeddings.weight": (self.type_vocab_size, h),
            "embeddings.LayerNorm.weight": (h,),
            "embeddings.LayerNorm.bias": (h,),
            "pooler.dense.weight": (h, h),
            "pooler.dense.bias": (h,),
        }
        per_block = {
            "attention.self.query.weight": (h, h),
            "attention.self.query.bias": (h,),
            "attention.self.key.weight": (h, h),
            "attention.self.key.bias": (h,),
            "attention.self.value.weight": (h, h),
            "attention.self.value.bias": (h,),
            "attention.output.dense.weight": (h, h),
            "attention.output.dense.bias": (h,),
            "attention.output.LayerNorm.weight": (h,),
            "attention.output.LayerNorm.bias": (h,),
            "intermediate.dense.weight": (i, h),
            "intermediate.dense.bias": (i,),
            "output.dense.weight": (h, i),
            "output.dense.bias": (h,),
            "output.LayerNorm.weight": (h,),
            "output.LayerNorm.bias": (h,),
        }
        for block in range(self.num_layers):
            shapes.update({f"encoder.layer.{block}.{name}": size for name, size in per_block.items()})
        return shapes


def read_checkpoint(directory: str | Path) -> tuple[BertShape, dict[str, torch.Tensor]] | None:
    """The shape and state of a plain BERT stored as ``config.json`` + ``model.safetensors``.

    The state holds exactly what ``BertModel.state_dict()`` would (same names,
    stored dtypes and values; the pooler only if the file has it). Returns None
    for anything this module does not run -- another architecture, sharded or
    pickle weights, prefixed or extra tensors -- so the caller can use
    transformers instead.
    """
    folder = Path(directory)
    config_file, weights_file = folder / "config.json", folder / "model.safetensors"
    if not config_file.is_file() or not weights_file.is_file():
        return None
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    shape = BertShape.from_config(config) if isinstance(config, dict) else None
    if shape is None:
        return None
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(weights_file))
    except (OSError, SafetensorError):
        return None
    expected = shape.tensor_shapes()
    names = set(tensors) - set(BUFFERS)
    required = set(expected) - set(POOLER_KEYS)
    if not required <= names <= set(expected):
        return None
    if any(tuple(tensors[name].shape) != expected[name] for name in names):
        return None
    if any(not tensors[name].is_floating_point() for name in names):
        return None
    return shape, {name: tensors[name] for name in sorted(names)}


def weights_digest(state: Iterable[tuple[str, torch.Tensor]]) -> str:
    """SHA-256 over a model state: each tensor's name, dtype and bytes, in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(state, key=lambda item: item[0]):
        digest.update(name.encode("utf-8"))
        digest.update(str(tensor.dtype).encode("ascii"))
        data = tensor.detach().contiguous().cpu().reshape(-1).view(torch.uint8).numpy()
        digest.update(data.data)  # the bytes in place, no copy
    return digest.hexdigest()


def required_names(blocks: int) -> list[str]:
    """The state names the first ``blocks`` blocks and the embeddings need (no pooler)."""
    return [*EMBEDDING_KEYS, *(f"encoder.layer.{n}.{name}" for n in range(blocks) for name in BLOCK_KEYS)]
