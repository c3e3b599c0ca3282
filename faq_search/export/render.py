"""The readable summary of exported embeddings, for a terminal.

Text only, for people: the first few values of each vector and, when asked,
every token or word with its offsets and norm. Files for programs are written
by :mod:`faq_search.export.writers`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faq_search.export.records import Embeddings, Record, SentenceEmbedding, TokenEmbedding, WordEmbedding

if TYPE_CHECKING:
    import numpy as np

PAD = "     "


def summary(result: Embeddings, *, show_tokens: bool = False, values: int = 4) -> str:
    """What was embedded and, per text, the first ``values`` values (and its tokens with ``show_tokens``)."""
    head = f"{result.model_name}, layer {result.layer}"
    if result.pooling is not None:
        head += f", {result.pooling.value} pooling"
    if result.merge is not None:
        head += f", words merged by {result.merge.value} piece"
    norm = "unit length" if result.normalized else "not normalised"
    lines = [f"{head}: {result.vector_count} {result.level.value} vectors of {result.dimension} dims ({norm})"]
    for number, record in enumerate(result.records, 1):
        lines.append(f"{number:>3}. {_clip(record.text, 90)}")
        lines += _record_lines(record, show_tokens, values)
    return "\n".join(lines)


def _clip(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with ``...``."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _values(vector: np.ndarray, count: int) -> str:
    shown = " ".join(f"{v:+.4f}" for v in vector[:count].tolist())
    return f"[{shown}{' ...' if len(vector) > count else ''}]"


def _record_lines(record: Record, show_tokens: bool, values: int) -> list[str]:
    if isinstance(record, SentenceEmbedding):
        cut = ", truncated" if record.truncated else ""
        lines = [f"{PAD}{_values(record.vector, values)}  ({len(record.tokens)} pieces{cut})"]
        if show_tokens:
            lines.append(f"{PAD}tokens: {' '.join(record.tokens)}")
        return lines
    if isinstance(record, TokenEmbedding):
        labels, offsets = record.tokens, record.offsets
        info = f"{_count(len(labels), 'token')}, {_count(record.windows, 'window')}"
        if record.dropped_tokens:
            info += f", {record.dropped_tokens} pieces past the window not embedded"
    else:
        labels, offsets = record.words, record.offsets
        info = f"{_count(len(labels), 'word')}, {_count(record.windows, 'window')}"
        if record.dropped_words:
            info += f", {len(record.dropped_words)} words past the window not embedded"
    lines = [f"{PAD}({info})"]
    if show_tokens:
        lines += _vector_lines(record, labels, offsets, values)
    if isinstance(record, WordEmbedding) and record.dropped_words:
        lines.append(f"{PAD}not embedded: {_clip(' '.join(record.dropped_words), 80)}")
    return lines


def _vector_lines(
    record: TokenEmbedding | WordEmbedding,
    labels: tuple[str, ...],
    offsets: tuple[tuple[int, int], ...],
    values: int,
) -> list[str]:
    """One line per token or word: its label, character span, norm and first values."""
    import numpy as np

    width = min(max((len(label) for label in labels), default=1), 24)
    lines = []
    for index, (label, (start, end)) in enumerate(zip(labels, offsets, strict=True)):
        vector = record.vectors[index]
        norm = float(np.linalg.norm(vector))
        lines.append(f"{PAD}{label:<{width}}  {start:>4}:{end:<4}  |v|={norm:7.3f}  {_values(vector, values)}")
    return lines
