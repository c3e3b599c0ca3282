"""Adapting the encoder to the FAQ it serves, keeping its layer and pooling.

Contrastive training (in-batch negatives) of the transformer blocks the
chosen layer uses, on the FAQ's own question -> answer pairs (every question
or paraphrase of an answer is one pair), optionally plus labelled queries.
Pairs that share a question or an answer are never used as each other's
negatives.

Guarded (:mod:`faq_search.quality.adapt_guard`): held-out questions are asked
of the served ranking (an index with the command's fields and fusion) before
and after training, and the adapted weights are kept only when the paired gain
in MRR@10 is larger than its standard error.

Which questions are held out, and what is kept (see
:func:`~faq_search.quality.adapt_guard.held_out_folds`):

- FAQs with enough questions (a slice of max(50, 10%) is at most a quarter of
  them, i.e. 200 or more): one slice is held out, the encoder is trained once
  on the other pairs, and that encoder (which never saw the slice) is the one
  kept or refused. One training: affordable at any size.
- Smaller FAQs: a slice of 50 would take too much of the training data, and a
  10% slice (5-19 questions) is too small to tell a gain from noise. The
  questions are split into 2 folds; for each fold the base encoder is trained
  on the other fold's pairs and scored on it, so every question is held out
  once and the pooled slice is the whole FAQ. That estimates what *this
  training procedure* gains on questions it has not seen (cross-validation);
  the encoder then kept is trained the same way on all pairs, which is what
  the estimate is about. Small FAQs train fast, so 3 trainings (folds +
  final) stay affordable; more folds would be closer to the final training
  set but cost more, and training on half the questions makes the estimate,
  if anything, pessimistic.

The guard is measured once, after training (no early stopping on the slice):
choosing a checkpoint on the slice and then judging it on the same slice
would flatter the adapted encoder.

What it is not: a general fine-tuning tool. It trains one encoder for one
FAQ, with fixed, conservative hyper-parameters, on the CPU.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from faq_search.corpus import FaqEntry
from faq_search.encoding.settings import ADAPTED_MODEL, ENCODER_DIR, EncoderSettings, Fields
from faq_search.errors import InputError, ModelError
from faq_search.index.lexical import HybridSettings
from faq_search.quality.adapt_guard import (
    GuardResult,
    guard_result,
    held_out_folds,
    held_out_queries,
    served_reciprocal_ranks,
    without_questions,
)
from faq_search.quality.adapt_train import Progress, Trainer, map_large_blocks, release_freed_memory, rss_mb
from faq_search.quality.queries import LabelledQuery

if TYPE_CHECKING:
    from faq_search.encoding.encoder import BertEncoder
    from faq_search.index.faq_index import FaqIndex


@dataclass(frozen=True)
class AdaptSettings:
    """Training choices; recorded in the bundle's manifest."""

    epochs: int | None = None  # None: one pass, or about ``min_steps`` steps if that is more (<= max_auto_epochs)
    max_pairs: int | None = None
    max_steps: int | None = None  # cap on the steps of each training run
    time_budget: float | None = None  # seconds of training in all, shared by the runs
    seed: int = 0
    batch_size: int = 32
    micro_batch: int | None = None  # texts per autograd graph (gradient caching, ~3x the CPU); None: whole batch
    learning_rate: float = 5e-5
    scale: float = 20.0  # cosine -> logits
    held_out: float = 0.1  # share of the distinct questions held out (at least min_held_out) ...
    min_held_out: int = 50  # ... unless that takes more than a quarter of them: then k-fold over all questions
    folds: int = 2
    max_question_tokens: int = 64
    max_answer_tokens: int = 128
    min_steps: int = 90  # FAQs of a few hundred pairs need several passes to move the encoder at this rate
    max_auto_epochs: int = 50

    def __post_init__(self) -> None:
        if (self.epochs is not None and self.epochs < 1) or self.batch_size < 2:
            raise InputError("adapt needs at least 1 epoch and a batch size of at least 2")
        if self.max_pairs is not None and self.max_pairs < 4:
            raise InputError("--max-pairs must be at least 4")
        if self.micro_batch is not None and self.micro_batch < 1:
            raise InputError("the micro-batch needs at least 1 text")
        if self.max_steps is not None and self.max_steps < 1:
            raise InputError("--max-steps must be at least 1")
        if not 0.0 < self.held_out < 0.5:
            raise InputError("the held-out share must be between 0 and 0.5")
        if self.folds < 2 or self.min_held_out < 1:
            raise InputError("the guard needs at least 2 folds and a held-out slice of at least 1 question")


@dataclass(frozen=True)
class AdaptReport:
    """What adaptation did. ``kept`` says whether the adapted weights won.

    ``before``/``after`` are the held-out MRR@10 of the served ranking (pooled
    over the folds when ``folds > 1``); ``gain`` is their difference, the mean
    paired (per-question) gain. Each ``*_error`` is a standard error over the
    held-out questions. The guard's fields come last, with defaults, so callers
    written before them still construct a report.
    """

    pairs: int
    held_out_questions: int
    steps: int
    seconds: float
    before: float
    after: float
    kept: bool
    stopped: str  # "schedule" (all planned steps) or "time budget"
    peak_memory_mb: float
    folds: int = 1
    before_error: float = 0.0
    after_error: float = 0.0
    gain_error: float = 0.0

    @property
    def gain(self) -> float:
        return self.after - self.before

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "gain": self.gain}


@dataclass(frozen=True)
class _Pair:
    question: str
    answer: str
    entry: int


def training_pairs(entries: Sequence[FaqEntry], queries: Sequence[LabelledQuery] = ()) -> list[_Pair]:
    """Every (question, answer) of the FAQ, plus (labelled query, relevant answer)."""
    position = {entry.id: i for i, entry in enumerate(entries)}
    pairs = [_Pair(q, entry.answer, i) for i, entry in enumerate(entries) for q in entry.questions]
    for query in queries:
        pairs += [
            _Pair(query.query, entries[position[r]].answer, position[r])
            for r in sorted(query.relevant)
            if r in position
        ]
    return pairs


def checked_pairs(entries: Sequence[FaqEntry], queries: Sequence[LabelledQuery] = ()) -> list[_Pair]:
    """:func:`training_pairs`, or an InputError when there are none to train on."""
    pairs = training_pairs(entries, queries)
    if not pairs:
        raise InputError(
            "adaptation needs question/answer pairs: the FAQ has no questions (map one with --question-column) "
            "and no labelled queries were given (--queries)"
        )
    return pairs


def adapt(
    encoder: BertEncoder,
    entries: Sequence[FaqEntry],
    settings: AdaptSettings | None = None,
    *,
    queries: Sequence[LabelledQuery] = (),
    fields: Fields | str = Fields.QUESTION_ANSWER,
    hybrid: HybridSettings | None = None,
    on_progress: Progress | None = None,
) -> AdaptReport:
    """Train ``encoder.model`` in place on the FAQ's pairs; restore the base weights unless the guard keeps them.

    ``fields`` and ``hybrid`` must be those the FAQ will be indexed with: the
    guard scores that ranking.
    """
    settings = settings or AdaptSettings()
    pairs = checked_pairs(entries, queries)
    rng = np.random.default_rng(settings.seed)
    questions = sorted({p.question for p in pairs})
    if len(questions) < 4:
        raise InputError(
            f"adaptation needs at least 4 distinct questions to hold some out; the FAQ has {len(questions)}"
        )
    folds = held_out_folds(questions, settings.held_out, settings.min_held_out, settings.folds, rng)
    runs = len(folds) + (1 if len(folds) > 1 else 0)
    budget = None if settings.time_budget is None else settings.time_budget / runs
    model = encoder.model
    base_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    map_large_blocks()
    trainer = Trainer(encoder, settings, rng, budget, on_progress)
    started = time.perf_counter()
    before, after, used = [], [], 0
    for held in folds:
        model.load_state_dict(base_state)
        asked = held_out_queries(entries, pairs, held)
        served = without_questions(entries, held)
        before.append(served_reciprocal_ranks(encoder, served, asked, fields, hybrid))
        release_freed_memory()  # the guard's index is gone: its pages go back before training
        held_set = set(held)
        train = trainer.sample([p for p in pairs if p.question not in held_set])
        used = len(train)
        trainer.run(train)
        after.append(served_reciprocal_ranks(encoder, served, asked, fields, hybrid))
    result = guard_result(np.concatenate(before), np.concatenate(after), len(folds))
    if len(folds) > 1 and result.improved:  # cross-validated: the kept encoder is trained the same way on all pairs
        model.load_state_dict(base_state)
        train = trainer.sample(pairs)
        used = len(train)
        trainer.run(train)
    if not result.improved:
        model.load_state_dict(base_state)
    return _report(result, used, trainer, time.perf_counter() - started)


def _report(result: GuardResult, pairs: int, trainer: Trainer, seconds: float) -> AdaptReport:
    return AdaptReport(
        pairs=pairs,
        held_out_questions=result.questions,
        folds=result.folds,
        steps=trainer.steps,
        seconds=seconds,
        before=result.before,
        before_error=result.before_error,
        after=result.after,
        after_error=result.after_error,
        gain_error=result.gain_error,
        kept=result.improved,
        stopped="time budget" if trainer.out_of_time else "schedule",
        peak_memory_mb=rss_mb(),
    )


def save_encoder(encoder: BertEncoder, directory: Path) -> Path:
    """Write the adapted model as a Hugging Face directory (safetensors), full depth.

    The blocks above the pooled layer are never trained or run; they are
    written back from the base model so that layer indices keep their meaning.
    """
    import transformers

    from faq_search.encoding.encoder import resolve_model

    source, _ = resolve_model(encoder.settings.model)
    full = transformers.AutoModel.from_pretrained(source, local_files_only=True, trust_remote_code=False)
    _missing, unexpected = full.load_state_dict(encoder.model.state_dict(), strict=False)
    if unexpected:
        raise ModelError(f"the adapted weights do not fit the base model ({unexpected[:3]}); rebuild without adapting")
    directory.mkdir(parents=True, exist_ok=True)
    full.save_pretrained(directory, safe_serialization=True)
    encoder.tokenizer.save_pretrained(directory)
    return directory


def adapt_index(
    entries: Sequence[FaqEntry],
    *,
    settings: EncoderSettings | None = None,
    adapt_settings: AdaptSettings | None = None,
    queries: Sequence[LabelledQuery] = (),
    fields: Fields | str = Fields.QUESTION_ANSWER,
    hybrid: HybridSettings | None = None,
    source: str | None = None,
    on_progress: Callable[[int, int, float], None] | None = None,
) -> tuple[FaqIndex, AdaptReport]:
    """Adapt the encoder to ``entries`` and index them with it (or with the base encoder, if it did not help).

    An adapted index carries its encoder's weights (``encoder/``, safetensors)
    and loads them automatically; its manifest records the base model, the
    adaptation settings and the before/after scores, and ``source`` (the FAQ
    file's name) when given. The index is returned unsaved.
    """
    import tempfile

    from faq_search.encoding.encoder import BertEncoder
    from faq_search.index.faq_index import FaqIndex

    settings = settings or EncoderSettings()
    adapt_settings = adapt_settings or AdaptSettings()
    checked_pairs(entries, queries)  # before loading the model
    encoder = BertEncoder(settings)
    report = adapt(
        encoder, entries, adapt_settings, queries=queries, fields=fields, hybrid=hybrid, on_progress=on_progress
    )
    record = {
        "base_model": settings.model,
        "base_weights_sha256": encoder.weights_sha256,
        "settings": dataclasses.asdict(adapt_settings),
        "report": report.to_dict(),
    }
    if not report.kept:
        index = FaqIndex.build(entries, encoder=encoder, fields=fields, hybrid=hybrid)
        index.revise(adaptation=record, source=index.manifest.source if source is None else source)
        return index, report
    with tempfile.TemporaryDirectory(prefix="faq-search-adapt-") as scratch:
        directory = save_encoder(encoder, Path(scratch) / ENCODER_DIR)
        adapted = BertEncoder(dataclasses.replace(settings, model=str(directory)))
        index = FaqIndex.build(entries, encoder=adapted, fields=fields, hybrid=hybrid)
        index.extra_files = {
            f"{ENCODER_DIR}/{path.relative_to(directory).as_posix()}": path.read_bytes()
            for path in sorted(directory.rglob("*"))
            if path.is_file()
        }
    base_name = encoder.identity.model_name
    index.revise(
        source=index.manifest.source if source is None else source,
        identity=dataclasses.replace(index.identity, model_name=f"{Path(base_name).name} (adapted)"),
        settings=dataclasses.replace(index.settings, model=ADAPTED_MODEL),
        adaptation=record,
    )
    return index, report
