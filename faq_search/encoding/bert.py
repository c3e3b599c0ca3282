"""A lean BERT forward: Hugging Face ``BertModel``'s numbers with less work.

What it is: the embeddings and transformer blocks of a plain BERT (post-LayerNorm
blocks, absolute positions, GELU or ReLU), read straight from a model directory's
``config.json`` and ``model.safetensors`` -- without importing transformers, which
costs seconds at start-up. Without gradients it runs a fast path:

- the query, key and value projections are one matmul, with the attention scale
  folded into the query weights;
- the weights are cast once at load (autocast recasts every weight on every
  call) and reordered once into oneDNN's blocked layout (each call would
  otherwise redo it: the main cost of a one-question batch); GELU and the
  residual additions run inside oneDNN's matmuls; in bf16 the residual stream
  stays in bf16 while LayerNorm accumulates in fp32;
- the linear layers see only real tokens: padding is dropped before them and
  restored only around attention ("packed" batches);
- attention is torch's fused CPU kernel (SDPA) on the padded grid.

With gradients (fine-tuning, see faq_search.quality.adapt) it computes BertLayer's
formulas on the parameters, with dropout in training mode. Module and
parameter names are ``BertModel``'s (``encoder.layer.3.attention.self.query.weight``),
so ``state_dict()`` and ``load_state_dict()`` are interchangeable with it.

What it is not: a general transformer. :func:`~faq_search.encoding.checkpoint.read_checkpoint` returns None
for anything else, and the encoder then uses transformers' own classes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from faq_search.encoding.checkpoint import BLOCK_KEYS, EMBEDDING_KEYS, BertShape, required_names

# Activations we implement, by config name: the name of oneDNN's fused post-op and its algorithm.
_ACTIVATIONS: dict[str, tuple[str, str]] = {
    "gelu": ("gelu", "none"),  # erf GELU, BERT's
    "gelu_new": ("gelu", "tanh"),
    "gelu_pytorch_tanh": ("gelu", "tanh"),
    "relu": ("relu", ""),
}


class _Named(nn.Module):
    """A module that only carries children and parameters, to reproduce BertModel's names."""


def _attach(root: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Register each tensor of ``state`` as a parameter of ``root`` under its dotted name.

    The tensors are used as they are: no module initialisation runs (it would
    cost time and, on the meta device, import torch's compiler stack).
    """
    for name, tensor in state.items():
        *path, leaf = name.split(".")
        module = root
        for part in path:
            child = module._modules.get(part)
            if child is None:
                child = _Named()
                module.add_module(part, child)
            module = child
        module.register_parameter(leaf, nn.Parameter(tensor))


@dataclass(frozen=True)
class _Layout:
    """Where a batch's real tokens sit in its padded ``[batch, width]`` grid."""

    batch: int
    width: int
    rows: torch.Tensor | None  # flat positions of the real tokens; None when nothing is padding
    key_mask: torch.Tensor | None  # [batch, 1, 1, width], True where a key is a real token; None likewise

    def pad(self, rows: torch.Tensor) -> torch.Tensor:
        """Real-token rows ``[tokens, n]`` as the padded grid's rows ``[batch * width, n]`` (zeros at padding)."""
        if self.rows is None:
            return rows
        grid = rows.new_zeros(self.batch * self.width, rows.shape[-1])
        if torch.is_grad_enabled():
            return grid.index_copy(0, self.rows, rows)
        return grid.index_copy_(0, self.rows, rows)

    def unpad(self, grid: torch.Tensor) -> torch.Tensor:
        """The padded grid's rows ``[batch * width, n]`` back to the real tokens' rows."""
        return grid if self.rows is None else grid.index_select(0, self.rows)


@dataclass(frozen=True)
class _FastWeights:
    """One block's weights as the fast forward pass uses them (see :meth:`LeanBert.prepare`)."""

    qkv_weight: torch.Tensor
    qkv_bias: torch.Tensor
    out_weight: torch.Tensor
    out_bias: torch.Tensor
    norm1: tuple[torch.Tensor, torch.Tensor]
    up_weight: torch.Tensor
    up_bias: torch.Tensor
    down_weight: torch.Tensor
    down_bias: torch.Tensor
    norm2: tuple[torch.Tensor, torch.Tensor]


class Block(nn.Module):
    """One post-LayerNorm transformer block with ``BertLayer``'s parameter names.

    Two ways through it: without gradients, the fast copies of the weights
    (:meth:`prepare`); with gradients (training), the parameters themselves,
    with BertLayer's dropout when in training mode.
    """

    def __init__(self, shape: BertShape, state: Mapping[str, torch.Tensor]) -> None:
        """``state``: the block's tensors by ``BertLayer`` name (``attention.self.query.weight``, ...)."""
        super().__init__()
        self.shape = shape
        _attach(self, state)
        self.fast: _FastWeights | None = None
        self.fused = False

    def prepare(self, dtype: torch.dtype, fused: bool) -> None:
        """Take the fast copies of the weights in ``dtype``."""
        attention: Any = self.attention
        intermediate: Any = self.intermediate
        output: Any = self.output
        scale = (self.shape.hidden_size // self.shape.num_heads) ** -0.5

        def cast(tensor: torch.Tensor) -> torch.Tensor:
            return tensor.detach().float().to(dtype).contiguous()

        def matrix(tensor: torch.Tensor) -> torch.Tensor:
            return _packed(cast(tensor)) if fused else cast(tensor)

        with torch.no_grad():
            query = attention.self.query
            qkv_weight = torch.cat([query.weight * scale, attention.self.key.weight, attention.self.value.weight])
            qkv_bias = torch.cat([query.bias * scale, attention.self.key.bias, attention.self.value.bias])
            self.fast = _FastWeights(
                qkv_weight=matrix(qkv_weight),
                qkv_bias=cast(qkv_bias),
                out_weight=matrix(attention.output.dense.weight),
                out_bias=cast(attention.output.dense.bias),
                norm1=(cast(attention.output.LayerNorm.weight), cast(attention.output.LayerNorm.bias)),
                up_weight=matrix(intermediate.dense.weight),
                up_bias=cast(intermediate.dense.bias),
                down_weight=matrix(output.dense.weight),
                down_bias=cast(output.dense.bias),
                norm2=(cast(output.LayerNorm.weight), cast(output.LayerNorm.bias)),
            )
        self.fused = fused

    def forward(self, hidden: torch.Tensor, layout: _Layout) -> torch.Tensor:
        """``hidden``: ``[tokens, hidden]`` for the real tokens of a batch; returns the same shape."""
        if torch.is_grad_enabled():
            return self._trainable(hidden, layout)
        fast = self.fast
        if fast is None:
            raise RuntimeError("LeanBert.prepare() must run before the forward pass")
        width, eps = hidden.shape[-1], self.shape.layer_norm_eps
        if self.fused:
            # The query/key/value projection runs on the padded grid: padding the narrow input costs less
            # than padding the three times wider output. The attention scale is folded into the query weights.
            qkv = _linear(layout.pad(hidden), fast.qkv_weight, fast.qkv_bias)
            context = self._attention(qkv, layout, scale=1.0, padded=True)
            hidden = F.layer_norm(
                _linear_add(context, hidden, fast.out_weight, fast.out_bias), (width,), *fast.norm1, eps
            )
            up = _linear_activation(hidden, fast.up_weight, fast.up_bias, self.shape.activation)
            return F.layer_norm(_linear_add(up, hidden, fast.down_weight, fast.down_bias), (width,), *fast.norm2, eps)
        qkv = F.linear(hidden, fast.qkv_weight, fast.qkv_bias)
        context = self._attention(qkv, layout, scale=1.0)
        hidden = F.layer_norm(F.linear(context, fast.out_weight, fast.out_bias) + hidden, (width,), *fast.norm1, eps)
        up = _activation(F.linear(hidden, fast.up_weight, fast.up_bias), self.shape.activation)
        return F.layer_norm(F.linear(up, fast.down_weight, fast.down_bias) + hidden, (width,), *fast.norm2, eps)

    def _trainable(self, hidden: torch.Tensor, layout: _Layout) -> torch.Tensor:
        """BertLayer's computation on the parameters: differentiable, with dropout in training mode."""
        attention: Any = self.attention
        intermediate: Any = self.intermediate
        output: Any = self.output
        shape, dropout = self.shape, self.shape.hidden_dropout if self.training else 0.0
        qkv = F.linear(
            hidden,
            torch.cat([attention.self.query.weight, attention.self.key.weight, attention.self.value.weight]),
            torch.cat([attention.self.query.bias, attention.self.key.bias, attention.self.value.bias]),
        )
        context = self._attention(qkv, layout, dropout=shape.attention_dropout if self.training else 0.0)
        projected = F.dropout(F.linear(context, attention.output.dense.weight, attention.output.dense.bias), dropout)
        norm = attention.output.LayerNorm
        hidden = F.layer_norm(projected + hidden, (shape.hidden_size,), norm.weight, norm.bias, shape.layer_norm_eps)
        up = _activation(F.linear(hidden, intermediate.dense.weight, intermediate.dense.bias), shape.activation)
        down = F.dropout(F.linear(up, output.dense.weight, output.dense.bias), dropout)
        norm = output.LayerNorm
        return F.layer_norm(down + hidden, (shape.hidden_size,), norm.weight, norm.bias, shape.layer_norm_eps)

    def _attention(
        self,
        qkv: torch.Tensor,
        layout: _Layout,
        scale: float | None = None,
        dropout: float = 0.0,
        padded: bool = False,
    ) -> torch.Tensor:
        """Self-attention on the padded grid (torch's fused kernel, or batched matmuls for many short texts).

        ``qkv`` holds real-token rows, or the padded grid's rows when ``padded``; returns real-token rows.
        """
        batch, width, heads = layout.batch, layout.width, self.shape.num_heads
        channels = qkv.shape[-1] // 3
        grid = (qkv if padded else layout.pad(qkv)).view(batch, width, 3, heads, channels // heads)
        query, key, value = grid.permute(2, 0, 3, 1, 4).unbind(0)
        if width <= _SHORT_ATTENTION and batch >= _SHORT_ATTENTION_BATCH and not torch.is_grad_enabled():
            context = _short_attention(query, key, value, layout.key_mask, scale)
        else:
            context = F.scaled_dot_product_attention(
                query, key, value, attn_mask=layout.key_mask, dropout_p=dropout, scale=scale
            )
        return layout.unpad(context.transpose(1, 2).reshape(batch * width, channels))


# For batches of many short texts, attention as two batched matmuls beats torch's fused CPU kernel,
# whose per-block overhead dominates there (measured here: 2x faster at 64 texts of 16 tokens, even at
# 32 texts of 64); for a few texts, as when one question is asked, the fused kernel is faster.
_SHORT_ATTENTION = 64
_SHORT_ATTENTION_BATCH = 24


def _short_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, key_mask: torch.Tensor | None, scale: float | None
) -> torch.Tensor:
    """Softmax attention on ``[batch, heads, width, channels]`` tensors, the softmax in float32."""
    scores = torch.matmul(query, key.transpose(-1, -2))
    factor = query.shape[-1] ** -0.5 if scale is None else scale  # scale=None: SDPA's default
    if factor != 1.0:
        scores = scores * factor
    if key_mask is not None:
        scores = scores.masked_fill(~key_mask, float("-inf"))
    weights = scores.softmax(-1, dtype=torch.float32).to(value.dtype)
    return torch.matmul(weights, value)


def _activation(values: torch.Tensor, name: str) -> torch.Tensor:
    op, algorithm = _ACTIVATIONS[name]
    if op == "relu":
        return F.relu(values)
    return F.gelu(values, approximate=algorithm)


def _packed(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` reordered once into oneDNN's blocked layout (each matmul would otherwise redo it), or as is."""
    try:
        packed: torch.Tensor = torch.ops.mkldnn._reorder_linear_weight(weight)
    except (AttributeError, RuntimeError, NotImplementedError):
        return weight
    return packed


def _linear(values: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    out: torch.Tensor = torch.ops.mkldnn._linear_pointwise(values, weight, bias, "none", [], "")
    return out


def _linear_activation(values: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, name: str) -> torch.Tensor:
    op, algorithm = _ACTIVATIONS[name]
    out: torch.Tensor = torch.ops.mkldnn._linear_pointwise(values, weight, bias, op, [], algorithm)
    return out


def _linear_add(values: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    out: torch.Tensor = torch.ops.mkldnn._linear_pointwise.binary(values, residual, weight, bias, "add")
    return out


def fused_ops_work(dtype: torch.dtype) -> bool:
    """True when oneDNN's fused linear ops exist here and agree with the plain ops in ``dtype``."""
    try:
        generator = torch.Generator().manual_seed(0)
        values = torch.randn(5, 16, generator=generator).to(dtype)
        residual = torch.randn(5, 8, generator=generator).to(dtype)
        weight = torch.randn(8, 16, generator=generator).to(dtype)
        bias = torch.randn(8, generator=generator).to(dtype)
        with torch.inference_mode():
            plain = F.linear(values.float(), weight.float(), bias.float())
            packed = _packed(weight)
            checks = [
                (_linear(values, weight, bias), plain),
                (_linear(values, packed, bias), plain),
                (_linear_activation(values, packed, bias, "gelu"), F.gelu(plain)),
                (_linear_add(values, residual, packed, bias), plain + residual.float()),
            ]
        return all(torch.allclose(got.float(), want, atol=0.1, rtol=0.05) for got, want in checks)
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


@dataclass(frozen=True)
class LeanOutput:
    """What ``LeanBert(...)`` returns, shaped like transformers' ``BaseModelOutput``."""

    last_hidden_state: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None


class LeanBert(nn.Module):
    """BertModel's embeddings and its first ``blocks`` transformer blocks.

    :meth:`states` is the fast inference entry point. Called like a
    transformers model (``model(input_ids=..., attention_mask=...,
    output_hidden_states=True)``) it returns a :class:`LeanOutput`; with
    gradients enabled it computes on the parameters, so it can be trained
    (``parameters()``, ``state_dict()``, ``train()`` work as on BertModel).
    The fast weight copies follow the parameters: any in-place change to them
    (an optimizer step, ``load_state_dict``) is noticed through the tensors'
    version counters and the copies are taken again before the next fast pass.
    (Parameters replaced by new tensor objects need an explicit :meth:`prepare`.)
    """

    def __init__(self, shape: BertShape, state: Mapping[str, torch.Tensor], blocks: int) -> None:
        """The embeddings and first ``blocks`` blocks of ``state`` (BertModel names), in fp32, not yet prepared."""
        super().__init__()
        self.shape = shape
        missing = [name for name in required_names(blocks) if name not in state]
        if missing:
            raise KeyError(f"the checkpoint lacks {missing[:3]}")
        self.embeddings = _Named()
        _attach(self.embeddings, {name.split(".", 1)[1]: state[name].float() for name in EMBEDDING_KEYS})
        self.encoder = _Named()
        self.encoder.layer = nn.ModuleList(
            Block(shape, {name: state[f"encoder.layer.{n}.{name}"].float() for name in BLOCK_KEYS})
            for n in range(blocks)
        )
        self.dtype = torch.float32
        self.fused = False
        self._fused_wanted: bool | None = None
        self._position_bias: torch.Tensor | None = None
        self._versions: tuple[int, ...] = ()
        self._watched: list[nn.Parameter] = []
        self.eval()

    @property
    def blocks(self) -> nn.ModuleList:
        layers: nn.ModuleList = self.encoder.layer  # type: ignore[assignment]
        return layers

    def prepare(self, dtype: torch.dtype, fused: bool | None = None) -> None:
        """Fix the compute dtype of the fast pass and take the fast weight copies.

        ``fused`` (default: wherever oneDNN's fused ops work here) runs the
        matmuls on oneDNN with the activation and residual additions inside
        them; otherwise they are plain torch ops.
        """
        self.dtype = dtype
        self._fused_wanted = fused
        self.fused = (fused is None or fused) and fused_ops_work(dtype)
        embeddings: Any = self.embeddings
        with torch.no_grad():
            # BERT gives every token of a single segment token type 0: fold that row into the positions.
            self._position_bias = (
                embeddings.position_embeddings.weight.float() + embeddings.token_type_embeddings.weight[0].float()
            ).contiguous()
        for block in self.blocks:
            block_: Any = block
            block_.prepare(dtype, self.fused)
        self._watched = list(self.parameters())
        self._versions = self._parameter_versions()

    def _parameter_versions(self) -> tuple[int, ...]:
        return tuple(parameter._version for parameter in self._watched)

    def states(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, keep: Iterable[int] | None = None
    ) -> dict[int, torch.Tensor]:
        """Hidden states of one padded batch as ``{layer: [batch, width, hidden] float32}``.

        Layer 0 is the embedding output and ``n`` the output of block ``n``
        (``output_hidden_states`` numbering). ``keep`` lists the layers wanted
        (default all); no block above the deepest of them runs. Padded
        positions hold zeros.
        """
        wanted = set(range(len(self.blocks) + 1)) if keep is None else set(keep)
        layout = _layout(attention_mask)
        fast = not torch.is_grad_enabled()
        if fast and (self._position_bias is None or self._versions != self._parameter_versions()):
            self.prepare(self.dtype, self._fused_wanted)
        hidden = self._embed(input_ids, layout, fast)
        states: dict[int, torch.Tensor] = {}
        if 0 in wanted:
            states[0] = _unpack(hidden, layout)
        deepest = max(wanted, default=0)
        for number, block in enumerate(self.blocks, start=1):
            if number > deepest:
                break
            hidden = block(hidden, layout)
            if number in wanted:
                states[number] = _unpack(hidden, layout)
        return states

    def _embed(self, input_ids: torch.Tensor, layout: _Layout, fast: bool) -> torch.Tensor:
        """The embedding output for the real tokens, ``[tokens, hidden]``."""
        batch, width = input_ids.shape
        flat_ids = input_ids.reshape(-1)
        positions = torch.arange(width, device=input_ids.device).repeat(batch)
        if layout.rows is not None:
            flat_ids, positions = flat_ids.index_select(0, layout.rows), positions.index_select(0, layout.rows)
        embeddings: Any = self.embeddings
        if fast and self._position_bias is not None:
            position_bias = self._position_bias.index_select(0, positions)
        else:
            position_bias = F.embedding(positions, embeddings.position_embeddings.weight)
            position_bias = position_bias + embeddings.token_type_embeddings.weight[0]
        hidden = F.embedding(flat_ids, embeddings.word_embeddings.weight) + position_bias
        norm = embeddings.LayerNorm
        hidden = F.layer_norm(hidden, (hidden.shape[-1],), norm.weight, norm.bias, self.shape.layer_norm_eps)
        if fast:
            return hidden.to(self.dtype)
        return F.dropout(hidden, self.shape.hidden_dropout if self.training else 0.0)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        **_: Any,
    ) -> LeanOutput:
        """transformers' calling convention: ``last_hidden_state`` and, if asked, all ``hidden_states``."""
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        deepest = len(self.blocks)
        found = self.states(input_ids, mask, None if output_hidden_states else (deepest,))
        every = tuple(found[layer] for layer in range(deepest + 1)) if output_hidden_states else None
        return LeanOutput(last_hidden_state=found[deepest], hidden_states=every)


def _layout(attention_mask: torch.Tensor) -> _Layout:
    batch, width = attention_mask.shape
    real = attention_mask.bool()
    if bool(real.all()):
        return _Layout(batch, width, None, None)
    rows = real.reshape(-1).nonzero().squeeze(1)
    return _Layout(batch, width, rows, real[:, None, None, :])


def _unpack(hidden: torch.Tensor, layout: _Layout) -> torch.Tensor:
    """Real-token rows back to a float32 ``[batch, width, hidden]`` grid (zeros at padding)."""
    return layout.pad(hidden.float()).view(layout.batch, layout.width, -1)
