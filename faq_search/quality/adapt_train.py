"""The training loop of ``faq-search adapt``: contrastive steps on question/answer pairs, and its memory hygiene.

:mod:`faq_search.quality.adapt` decides what to train on and whether to keep
the result (with :mod:`faq_search.quality.adapt_guard`); this module only runs
the schedule: in-batch negatives, symmetric loss, AdamW with warm-up and linear
decay, gradient clipping, an optional gradient cache (``micro_batch``), and the
return of freed heap pages to the system after every step.
"""

from __future__ import annotations

import functools
import math
import resource
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from faq_search.encoding.encoder import BertEncoder
    from faq_search.quality.adapt import AdaptSettings, _Pair

Progress = Callable[[int, int, float], None]


class Trainer:
    """Runs the training schedule on a set of pairs; counts steps over every run (for progress and the report)."""

    def __init__(
        self,
        encoder: BertEncoder,
        settings: AdaptSettings,
        rng: np.random.Generator,
        budget: float | None,
        on_progress: Progress | None,
    ) -> None:
        self.encoder, self.settings, self.rng = encoder, settings, rng
        self.budget, self.on_progress = budget, on_progress
        self.steps, self.out_of_time = 0, False

    def sample(self, pairs: list[_Pair]) -> list[_Pair]:
        """At most ``max_pairs`` of ``pairs`` (drawn by the seed), in their order."""
        limit = self.settings.max_pairs
        if limit is None or len(pairs) <= limit:
            return pairs
        return [pairs[i] for i in sorted(self.rng.permutation(len(pairs))[:limit])]

    def planned(self, count: int) -> int:
        """Steps of one run over ``count`` pairs: one pass, or about ``min_steps`` for a small FAQ."""
        settings = self.settings
        per_epoch = math.ceil(count / settings.batch_size)
        if settings.epochs is not None:
            total = per_epoch * settings.epochs
        else:
            total = min(max(per_epoch, settings.min_steps), per_epoch * settings.max_auto_epochs)
        return min(total, settings.max_steps) if settings.max_steps is not None else total

    def run(self, train: Sequence[_Pair]) -> None:
        """Train ``encoder.model`` in place: AdamW, warm-up then linear decay, clipped gradients."""
        import torch

        settings, model = self.settings, self.encoder.model
        total = self.planned(len(train))
        torch.manual_seed(settings.seed)
        optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=0.01)
        warmup = max(1, total // 10)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: min((step + 1) / warmup, max(0.0, (total - step) / max(1, total - warmup)))
        )
        started, done = time.perf_counter(), 0
        try:
            while done < total:
                order = self.rng.permutation(len(train))
                for start in range(0, len(order), settings.batch_size):
                    batch = [train[i] for i in order[start : start + settings.batch_size]]
                    if done >= total or len(batch) < 2:
                        continue
                    model.train()
                    optimizer.zero_grad(set_to_none=True)
                    loss = _backward(self.encoder, batch, settings)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    optimizer.step()
                    scheduler.step()
                    done += 1
                    self.steps += 1
                    release_freed_memory()
                    if self.on_progress:
                        self.on_progress(done, total, loss)
                    if self.budget is not None and time.perf_counter() - started > self.budget:
                        self.out_of_time = True
                        return
                if len(train) < 2:
                    return
        finally:
            optimizer.zero_grad(set_to_none=True)
            model.eval()


def _embed(encoder: BertEncoder, texts: Sequence[str], max_tokens: int) -> torch.Tensor:
    """Pooled, normalised vectors with gradients, at the encoder's layer and pooling."""
    from faq_search.encoding.pooling import sentence_vectors

    with encoder.tokenizer_session() as tokenizer:
        encoded = tokenizer(
            list(texts), truncation=True, max_length=max_tokens, padding=True, return_tensors="pt",
            return_special_tokens_mask=not encoder.settings.include_special, return_token_type_ids=False,
        )  # fmt: skip
    mask = encoded["attention_mask"]
    with encoder.autocast():
        states = encoder.model(
            input_ids=encoded["input_ids"], attention_mask=mask, output_hidden_states=True
        ).hidden_states
    if not encoder.settings.include_special:
        mask = mask * (1 - encoded["special_tokens_mask"])
    return sentence_vectors(states, encoder.layer_indices, mask, encoder.settings.pooling, encoder.combine)


def _loss(encoder: BertEncoder, batch: Sequence[_Pair], settings: AdaptSettings) -> torch.Tensor:
    """The batch's loss in one autograd graph (every text's activations alive at once)."""
    questions = _embed(encoder, [p.question for p in batch], settings.max_question_tokens)
    answers = _embed(encoder, [p.answer for p in batch], settings.max_answer_tokens)
    return _pair_loss(questions, answers, batch, settings)


def _pair_loss(
    questions: torch.Tensor, answers: torch.Tensor, batch: Sequence[_Pair], settings: AdaptSettings
) -> torch.Tensor:
    """In-batch negatives, symmetric; pairs sharing a question or an answer are not negatives."""
    import torch

    logits = settings.scale * questions @ answers.T
    same = torch.tensor(
        [[a.question == b.question or a.answer == b.answer for b in batch] for a in batch], dtype=torch.bool
    )
    logits = logits.masked_fill(same & ~torch.eye(len(batch), dtype=torch.bool), float("-inf"))
    labels = torch.arange(len(batch))
    return (torch.nn.functional.cross_entropy(logits, labels) + torch.nn.functional.cross_entropy(logits.T, labels)) / 2


def _backward(encoder: BertEncoder, batch: Sequence[_Pair], settings: AdaptSettings) -> float:
    """``_loss(...).backward()`` with the activations of at most ``micro_batch`` texts alive at once.

    Gradient caching: the vectors of every text are computed chunk by chunk
    and detached (each chunk's graph is freed), the in-batch loss is
    back-propagated to the vectors only, then each chunk is run again with its
    saved random state (the same dropout) and its vectors' gradient is pushed
    through it. The gradients equal the one-graph ones up to float noise; the
    cost is one more forward pass, the gain that the biggest tensors (attention
    over 128-token answers) exist for ``micro_batch`` texts, not the batch.
    """
    import torch

    chunk = settings.micro_batch or len(batch)
    groups = [
        ([p.question for p in batch], settings.max_question_tokens),
        ([p.answer for p in batch], settings.max_answer_tokens),
    ]
    saved: list[list[tuple[list[str], int, torch.Tensor]]] = []
    vectors: list[torch.Tensor] = []
    for texts, limit in groups:
        parts, pooled = [], []
        for start in range(0, len(texts), chunk):
            part = texts[start : start + chunk]
            parts.append((part, limit, torch.get_rng_state()))
            pooled.append(_embed(encoder, part, limit).detach())
        saved.append(parts)
        vectors.append(torch.cat(pooled).requires_grad_())
    loss = _pair_loss(vectors[0], vectors[1], batch, settings)
    loss.backward()
    for parts, cached in zip(saved, vectors, strict=True):
        grads = cached.grad
        if grads is None:
            continue
        offset = 0
        for part, limit, rng_state in parts:
            torch.set_rng_state(rng_state)
            _embed(encoder, part, limit).backward(grads[offset : offset + len(part)])
            offset += len(part)
    return float(loss.detach())


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    import ctypes.util

    try:
        trim: Callable[[int], int] = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


MMAP_THRESHOLD = 1 << 20
"""Heap blocks of this many bytes or more are mapped on their own (and unmapped when freed) during adapt."""


def map_large_blocks() -> None:
    """Make glibc map every block of :data:`MMAP_THRESHOLD` bytes or more on its own (``mallopt``); elsewhere nothing.

    glibc raises its mmap threshold each time a mapped block is freed (up to 32 MiB), so after the first steps
    a step's activations (1-4 MiB tensors) come from the heap, where freed blocks of ever-different shapes
    fragment and the resident set creeps up between trims (about 15 MiB a step, 2.84 GiB peak over a 90-step
    run of a 1,000-entry FAQ). A fixed threshold returns each activation's pages when it is freed.
    """
    import ctypes.util

    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    mallopt(-3, MMAP_THRESHOLD)  # M_MMAP_THRESHOLD: setting it also stops the dynamic raising


def release_freed_memory() -> None:
    """Hand the heap's freed pages back to the OS (glibc's ``malloc_trim``); elsewhere nothing.

    Every training step allocates its activations in new shapes (batches of
    different lengths); glibc keeps the freed blocks, fragmented, and the
    resident set crept up by ~75 MiB a step here (2.4 GiB after 8 steps, 5-6 GiB
    over a full run). Trimming after each step keeps it at the model, the
    optimizer and one step's activations (see docs/adapt.md). It costs
    milliseconds a step and changes no result.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
