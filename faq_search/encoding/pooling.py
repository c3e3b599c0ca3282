"""Pooling: token vectors of one layer -> one sentence vector.

Pure functions over ``hidden [batch, tokens, dim]`` and a 0/1 ``mask [batch,
tokens]`` of the tokens that count; they return new tensors and never write
into their inputs. One dispatch table maps each :class:`Pooling` choice to its
function. The ``cls`` choice ignores the mask: it is always position 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from faq_search.encoding.settings import Pooling

PoolFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of the masked-in token vectors (zero where a row has no token)."""
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    total = (hidden * weights).sum(dim=1)
    count = weights.sum(dim=1).clamp(min=1.0)
    return total / count


def max_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Element-wise maximum over the masked-in tokens (zero where a row has no token)."""
    keep = mask.bool().unsqueeze(-1)
    lowest = torch.finfo(hidden.dtype).min
    pooled = hidden.masked_fill(~keep, lowest).max(dim=1).values
    return torch.where(keep.any(dim=1), pooled, torch.zeros_like(pooled))


def mean_max_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Concatenation of mean and max pooling (bert-as-service's REDUCE_MEAN_MAX)."""
    return torch.cat([mean_pool(hidden, mask), max_pool(hidden, mask)], dim=-1)


def cls_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The first position's vector ([CLS] for BERT), whatever the mask says."""
    return hidden[:, 0].clone()


def last_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The vector of the last masked-in token ([SEP] when special tokens count)."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    last = torch.where(mask.bool(), positions, torch.zeros_like(positions)).max(dim=1).values
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


POOLERS: dict[Pooling, PoolFn] = {
    Pooling.MEAN: mean_pool,
    Pooling.MAX: max_pool,
    Pooling.MEAN_MAX: mean_max_pool,
    Pooling.CLS: cls_pool,
    Pooling.LAST: last_pool,
}


def pooled_width(pooling: Pooling, hidden_size: int, layers: int, combine: str) -> int:
    """Width of the sentence vector for these choices."""
    width = hidden_size * (2 if pooling is Pooling.MEAN_MAX else 1)
    return width * layers if combine == "concat" else width


def pool_layers(
    hidden_states: Sequence[torch.Tensor],
    indices: Sequence[int],
    mask: torch.Tensor,
    pooling: Pooling,
    combine: str,
) -> torch.Tensor:
    """Pool each chosen layer and combine them (concatenate, or sum before pooling)."""
    pool = POOLERS[pooling]
    if combine == "sum" and len(indices) > 1:
        summed = torch.stack([hidden_states[i].float() for i in indices]).sum(dim=0)
        return pool(summed, mask)
    return torch.cat([pool(hidden_states[i].float(), mask) for i in indices], dim=-1)


def sentence_vectors(
    hidden_states: Sequence[torch.Tensor],
    indices: Sequence[int],
    mask: torch.Tensor,
    pooling: Pooling,
    combine: str,
) -> torch.Tensor:
    """Unit-length float32 sentence vectors: :func:`pool_layers`, then L2 normalisation.

    The one place a sentence vector is finished: the encoder, tuning, adaptation
    and exports all call it, so their vectors agree bit for bit.
    """
    pooled = pool_layers(hidden_states, indices, mask, pooling, combine)
    return torch.nn.functional.normalize(pooled.float(), dim=-1)
