"""One pooled, unit-length vector per text from hidden states: the quality layer's single pool + normalise.

Tune (many layer/pooling pairs from one model pass) and adapt (with
gradients, for training) pool hidden states they computed themselves; both
use this helper so the pooling is :func:`faq_search.encoding.pooling.pool_layers`
and the normalisation is written once. It is not a second encoder: the
encoder's own ``encode`` stays the reference for everything else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from faq_search.encoding.settings import Pooling

if TYPE_CHECKING:
    import torch


def unit_pooled(
    hidden_states: Sequence[torch.Tensor], indices: Sequence[int], mask: torch.Tensor, pooling: Pooling, combine: str
) -> torch.Tensor:
    """Pool the chosen layers under ``mask`` and scale each row to unit length (float32, gradients kept)."""
    import torch

    from faq_search.encoding.pooling import pool_layers

    pooled = pool_layers(hidden_states, indices, mask, pooling, combine)
    return torch.nn.functional.normalize(pooled.float(), dim=-1)
