"""Adapting the encoder to the FAQ it serves, keeping its layer and pooling.

Contrastive training (in-batch negatives) of the transformer blocks the
chosen layer uses, on the FAQ's own question -> answer pairs (every question
or paraphrase of an answer is one pair), optionally plus labelled queries.
Pairs that share a question or an answer are never used as each other's
negatives.

Guarded: a held-out slice of the FAQ's questions (and of the labelled queries,
if given) is scored before and after, answer retrieval only, so a held-out
question never finds itself. Training stops early when that score stops
rising, and the adapted weights are kept only when they beat the base model.

What it is not: a general fine-tuning tool. It trains one encoder for one
FAQ, with fixed, conservative hyper-parameters, on the CPU.
"""

from __future__ import annotations

import dataclasses
import math
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
from faq_search.quality.metrics import mean_and_error, reciprocal_ranks, relevance_matrix
from faq_search.quality.queries import LabelledQuery

if TYPE_CHECKING:
    import torch

    from faq_search.encoding.encoder import BertEncoder
    from faq_search.index.faq_index import FaqIndex


@dataclass(frozen=True)
class AdaptSettings:
    """Training choices; recorded in the bundle's manifest."""

    epochs: int | None = None  # None: one pass, or about ``min_steps`` steps if that is more (<= max_auto_epochs)
    max_pairs: int | None = None
    time_budget: float | None = None  # seconds of training, then stop
    seed: int = 0
    batch_size: int = 32
    learning_rate: float = 5e-5
    scale: float = 20.0  # cosine -> logits
    held_out: float = 0.1  # share of the distinct questions kept for the guard
    guard_answers: int = 300  # the guard ranks against the held-out answers and at most this many others
    max_question_tokens: int = 64
    max_answer_tokens: int = 128
    min_steps: int = 90  # FAQs of a few hundred pairs need several passes to move the encoder at this rate
    max_auto_epochs: int = 50
    evaluations: int = 8  # guard checks over the run (early stopping)
    patience: int = 3  # checks in a row more than a standard error below the best score before stopping

    def __post_init__(self) -> None:
        if (self.epochs is not None and self.epochs < 1) or self.batch_size < 2:
            raise InputError("adapt needs at least 1 epoch and a batch size of at least 2")
        if self.max_pairs is not None and self.max_pairs < 4:
            raise InputError("--max-pairs must be at least 4")
        if not 0.0 < self.held_out < 0.5:
            raise InputError("the held-out share must be between 0 and 0.5")
        if self.guard_answers < 1:
            raise InputError("the guard needs at least 1 other answer to rank against")


@dataclass(frozen=True)
class AdaptReport:
    """What adaptation did. ``kept`` says whether the adapted weights won."""

    pairs: int
    held_out_questions: int
    steps: int
    seconds: float
    before: float  # held-out MRR@10, base encoder
    after: float  # held-out MRR@10, best adapted checkpoint
    kept: bool
    stopped: str  # "epochs", "early stop", "time budget"
    peak_memory_mb: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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


def _split_held_out(
    pairs: Sequence[_Pair], settings: AdaptSettings, rng: np.random.Generator
) -> tuple[list[_Pair], set[str]]:
    """The training pairs (at most ``max_pairs``, sampled) and the held-out questions (a ``held_out`` share)."""
    questions = sorted({p.question for p in pairs})
    held_count = max(1, round(len(questions) * settings.held_out)) if len(questions) >= 4 else 0
    if held_count == 0:
        raise InputError(
            f"adaptation needs at least 4 distinct questions to hold some out; the FAQ has {len(questions)}"
        )
    held = set(rng.permutation(questions)[:held_count].tolist())
    train = [p for p in pairs if p.question not in held]
    if settings.max_pairs is not None and len(train) > settings.max_pairs:
        train = [train[i] for i in sorted(rng.permutation(len(train))[: settings.max_pairs])]
    return train, held


def _schedule(train_pairs: int, settings: AdaptSettings) -> tuple[int, int]:
    """Total training steps and the passes they take: ``epochs`` passes, else one pass or about ``min_steps``.

    Example: 40 pairs in batches of 32 are 2 steps a pass; by default 90 steps -> (90, 45).
    """
    batches_per_epoch = math.ceil(train_pairs / settings.batch_size)
    if settings.epochs is not None:
        total = batches_per_epoch * settings.epochs
    else:  # one pass, or about min_steps steps for a small FAQ (at most max_auto_epochs passes)
        total = min(max(batches_per_epoch, settings.min_steps), batches_per_epoch * settings.max_auto_epochs)
    return total, math.ceil(total / batches_per_epoch)


def adapt(
    encoder: BertEncoder,
    entries: Sequence[FaqEntry],
    settings: AdaptSettings | None = None,
    *,
    queries: Sequence[LabelledQuery] = (),
    on_progress: Callable[[int, int, float], None] | None = None,
) -> AdaptReport:
    """Train ``encoder.model`` in place on the FAQ's pairs; restore the base weights unless they were beaten."""
    import torch

    settings = settings or AdaptSettings()
    pairs = checked_pairs(entries, queries)
    rng = np.random.default_rng(settings.seed)
    train, held = _split_held_out(pairs, settings, rng)
    held_count = len(held)
    guard_rng = np.random.default_rng((settings.seed, 1))  # its own stream: the training order stays as it was
    guard = HeldOutScorer(encoder, entries, [p for p in pairs if p.question in held], settings.guard_answers, guard_rng)

    model = encoder.model
    base_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    before = guard.score()
    best, best_error, kept_score, best_state = before, 0.0, before, None
    torch.manual_seed(settings.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=0.01)
    total, epochs = _schedule(len(train), settings)
    warmup = max(1, total // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (total - step) / max(1, total - warmup)))
    )
    check_every = max(1, math.ceil(total / settings.evaluations))
    started = time.perf_counter()
    steps, stopped, stale = 0, "epochs", 0
    peak = _rss_mb()
    try:
        for _epoch in range(epochs):
            order = rng.permutation(len(train))
            for start in range(0, len(order), settings.batch_size):
                if steps >= total:
                    break
                batch = [train[i] for i in order[start : start + settings.batch_size]]
                if len(batch) < 2:
                    continue
                model.train()
                loss = _loss(encoder, batch, settings)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                steps += 1
                peak = max(peak, _rss_mb())
                if on_progress:
                    on_progress(steps, total, float(loss.detach()))
                if steps % check_every == 0 or steps == total:
                    model.eval()
                    score, error = guard.measure()
                    # Within one standard error of the best score is as good as the best (the guard slice is
                    # small and noisy): keep the longer-trained weights. Only a clear drop counts towards stopping.
                    if score > before and score >= best - best_error:
                        if score > best:
                            best, best_error = score, error
                        kept_score, stale = score, 0
                        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    else:
                        stale += 1
                    if stale >= settings.patience and steps < total:
                        stopped = "early stop"
                        break
                if settings.time_budget is not None and time.perf_counter() - started > settings.time_budget:
                    stopped = "time budget"
                    break
            if stopped != "epochs":
                break
    finally:
        model.eval()
    kept = best_state is not None and kept_score > before
    model.load_state_dict(best_state if kept and best_state is not None else base_state)
    return AdaptReport(
        pairs=len(train),
        held_out_questions=held_count,
        steps=steps,
        seconds=time.perf_counter() - started,
        before=before,
        after=kept_score,
        kept=kept,
        stopped=stopped,
        peak_memory_mb=peak,
    )


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
    """In-batch negatives, symmetric; pairs sharing a question or an answer are not negatives."""
    import torch

    questions = _embed(encoder, [p.question for p in batch], settings.max_question_tokens)
    answers = _embed(encoder, [p.answer for p in batch], settings.max_answer_tokens)
    logits = settings.scale * questions @ answers.T
    same = torch.tensor(
        [[a.question == b.question or a.answer == b.answer for b in batch] for a in batch], dtype=torch.bool
    )
    logits = logits.masked_fill(same & ~torch.eye(len(batch), dtype=torch.bool), float("-inf"))
    labels = torch.arange(len(batch))
    return (torch.nn.functional.cross_entropy(logits, labels) + torch.nn.functional.cross_entropy(logits.T, labels)) / 2


class HeldOutScorer:
    """Held-out questions retrieving their answers (answers only): MRR@10.

    The candidates are the held-out questions' answers and at most ``others``
    other answers of the FAQ, drawn once: each check re-embeds them, which
    would otherwise dominate the time of adapting a large FAQ.
    """

    def __init__(
        self,
        encoder: BertEncoder,
        entries: Sequence[FaqEntry],
        held: Sequence[_Pair],
        others: int,
        rng: np.random.Generator,
    ) -> None:
        self.encoder = encoder
        answers = list(dict.fromkeys(e.answer for e in entries))
        wanted = {pair.answer for pair in held}
        rest = [i for i, answer in enumerate(answers) if answer not in wanted]
        if len(rest) > others:
            dropped = set(rng.permutation(rest)[others:].tolist())
            answers = [a for i, a in enumerate(answers) if i not in dropped]
        self.answers = answers
        index = {a: i for i, a in enumerate(self.answers)}
        relevant: dict[str, set[int]] = {}
        for pair in held:
            relevant.setdefault(pair.question, set()).add(index[pair.answer])
        self.questions = sorted(relevant)
        self.relevant = [relevant[q] for q in self.questions]

    def score(self) -> float:
        return self.measure()[0]

    def measure(self) -> tuple[float, float]:
        """MRR@10 of the held-out questions and its standard error."""
        answers = self.encoder.encode(self.answers)
        questions = self.encoder.encode(self.questions)
        relevant = relevance_matrix(self.relevant, len(self.answers))
        return mean_and_error(reciprocal_ranks(questions @ answers.T, relevant))


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


def _rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


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
    report = adapt(encoder, entries, adapt_settings, queries=queries, on_progress=on_progress)
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
