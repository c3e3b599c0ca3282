"""Windows over one text's word pieces, for token and word vectors, and which window each piece takes.

A text longer than the model's window runs as several windows of word-piece
ranges (*spans*). Each piece then takes its vector from the window where it
has the most context on its poorer side (the "max context" rule of BERT's
SQuAD code), so every piece gets exactly one vector.

Why this is not :func:`faq_search.encoding.windows.split_windows`, which cuts
long FAQ answers into index rows: the two serve different ends and so differ
in three ways, on purpose.

- Overlap. Here each next window starts about **half** a window in: with half
  overlap every piece (but those at the text's two ends) lies at least a
  quarter of a window from the edge of some window, so its vector has context
  on both sides. Index rows overlap by a quarter: each row is a whole passage
  to be matched, and more overlap would only add near-duplicate rows.
- Units. Here windows are ranges of the token ids already computed (their
  vectors are sliced back to pieces); index rows are substrings of the text,
  re-tokenized by the encoder like any other text.
- A word longer than a window is cut at the window's full width here (its
  pieces still each get a vector); and with ``windows=False`` only the first
  window runs (the rest is reported as dropped), which index rows never do.

Pure code over lists of ints: no model, no numpy beyond the stored vectors.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Span:
    """Content pieces ``[start, end)`` of one text, run as model window ``window``."""

    window: int
    start: int
    end: int


@dataclass(frozen=True)
class TextRun:
    """One text tokenized whole, cut into windows, and the vectors of every window."""

    text: str
    tokens: list[str]  # content pieces, no specials
    offsets: list[tuple[int, int]]
    word_ids: list[int | None]
    prefix: list[str]  # special pieces before the content ([CLS])
    suffix: list[str]  # special pieces after the content ([SEP])
    spans: list[Span]
    window_vectors: dict[int, np.ndarray]  # window -> float32 [pieces incl. specials, width]
    width: int

    @property
    def kept(self) -> int:
        """Content pieces that get a vector: all of them unless truncated."""
        return self.spans[-1].end

    @property
    def truncated_at(self) -> int | None:
        return self.offsets[self.kept][0] if self.kept < len(self.tokens) else None

    def word_spans(self) -> list[tuple[int, int]]:
        """Piece ranges ``[start, end)`` of each word, in order."""
        starts = word_starts(self.word_ids)
        return list(zip(starts, [*starts[1:], len(self.tokens)], strict=True))

    def owners(self) -> list[Span]:
        """For each kept piece, the window it takes its vector from: where its word has most context.

        All pieces of a word come from one window when a window holds the whole
        word (windows are cut at word starts, so that is the rule); only a word
        longer than a window is split, each piece then taking its own best window.
        """
        starts = [s.start for s in self.spans]  # both increase: spans are in text order
        ends = [s.end for s in self.spans]

        def best(first: int, last: int) -> Span | None:
            """The span holding pieces [first, last) with the most context on its poorer side."""
            holding = self.spans[bisect.bisect_left(ends, last) : bisect.bisect_right(starts, first)]
            return max(holding, key=lambda s: min(first - s.start, s.end - last), default=None)

        owners: list[Span] = []
        for start, end in self.word_spans():
            if start >= self.kept:
                break
            whole = best(start, end)
            if whole is not None:
                owners += [whole] * (end - start)
                continue
            for piece in range(start, min(end, self.kept)):
                owners.append(best(piece, piece + 1) or self.spans[-1])
        return owners

    def vector_of(self, piece: int, span: Span) -> np.ndarray:
        """The vector of content piece ``piece`` in the window of ``span``."""
        return self.window_vectors[span.window][len(self.prefix) + piece - span.start]


def word_starts(word_ids: Sequence[int | None]) -> list[int]:
    """Positions where a word begins; a piece of no word (None) stands alone.

    ``[0, 0, 1, None, 2, 2]`` -> ``[0, 2, 3, 4]``.
    """
    return [i for i, word in enumerate(word_ids) if i == 0 or word is None or word != word_ids[i - 1]]


def plan_spans(word_ids: Sequence[int | None], budget: int, windows: bool) -> list[tuple[int, int]]:
    """Content ranges of the windows: cut at word starts, each next window starting about half-way in.

    ``budget`` is the pieces one window holds besides [CLS]/[SEP]. A word
    longer than ``budget`` is cut at the full width. With ``windows=False``
    only the first window is planned. Ten words of two pieces, budget 6::

        plan_spans([0, 0, 1, 1, ..., 9, 9], 6, True) -> [(0, 6), (2, 8), (4, 10), ..., (14, 20)]
        plan_spans([0, 0, 1, 1, ..., 9, 9], 6, False) -> [(0, 6)]
    """
    count = len(word_ids)
    if count <= budget:
        return [(0, count)]
    starts = word_starts(word_ids)
    step = max(1, budget // 2)
    spans: list[tuple[int, int]] = []
    start = 0
    while True:
        end = start + budget
        if end >= count:
            spans.append((start, count))
            return spans
        cut = starts[bisect.bisect_right(starts, end) - 1]  # the last word start at or before the end
        end = cut if cut > start else end
        spans.append((start, end))
        if not windows:
            return spans
        turn = starts[bisect.bisect_right(starts, start + step) - 1]
        start = turn if turn > start else end
